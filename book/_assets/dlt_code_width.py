"""Sphinx extension: show 79 columns of code at 1280 px.

The book keeps notebook code within 79 characters (``book/ruff.toml``), but
with the theme's 14 px monospace a code cell at a 1280 px window shows about
77 characters, and a code block inside an exercise's solution about 75: the
last columns of a full line were cut off behind a scrollbar.  At 13 px a
line of 79 characters fits both (``tests/test_browser.py`` measures it in
Chromium).  Outputs keep the theme's size.
"""

from __future__ import annotations

_CSS = """
div.cell_input pre, div.highlight pre { font-size: 13px; }
"""


def _add_style(app, pagename, templatename, context, doctree):
    context["metatags"] = (
        context.get("metatags", "") + f"\n<style>{_CSS}</style>\n"
    )


def setup(app):
    app.connect("html-page-context", _add_style)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

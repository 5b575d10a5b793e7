"""Sphinx extension: keep the built book free of CDN references.

MathJax, RequireJS and the widget manager are served from the book itself
(``_config.yml`` points ``mathjax_path`` and ``nb_ipywidgets_js`` at the files
``scripts/fetch_web_assets.py`` fetches).  What is left is sphinx-thebe,
which Jupyter Book always loads: even with ``launch_buttons.thebe: false`` it
writes ``const THEBE_JS_URL = "<a CDN>"`` into every page.  Nothing calls it
in this book (there is no Thebe button), so we blank the URL instead of
shipping a CDN address in every page.  If the book ever turns Thebe on, drop
this extension: Thebe needs a Binder server, and so the network, anyway.
"""

from __future__ import annotations

import re

_THEBE_URL = re.compile(r'const THEBE_JS_URL = "[^"]*"')


def _blank_thebe_url(app, pagename, templatename, context, doctree):
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", None)
        if not attributes:
            continue
        body = attributes.get("body")
        if body and "THEBE_JS_URL" in body:
            attributes["body"] = _THEBE_URL.sub('const THEBE_JS_URL = ""', body)


def setup(app):
    app.connect("html-page-context", _blank_thebe_url)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

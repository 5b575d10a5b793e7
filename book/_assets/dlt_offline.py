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
    scripts, seen_thebe = [], False
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", None)
        body = attributes.get("body") if attributes else None
        if body and "THEBE_JS_URL" in body:
            # sphinx-thebe registers this inline script twice under Jupyter Book; the second
            # `const` declaration is a console error ("already been declared"): keep one.
            if seen_thebe:
                continue
            seen_thebe = True
            attributes["body"] = _THEBE_URL.sub(
                'const THEBE_JS_URL = ""', body
            )
        scripts.append(script)
    if "script_files" in context:
        context["script_files"][:] = scripts


# pydata-sphinx-theme's inline head script sets the colour mode from localStorage or to
# "" on a first visit, which its bundle then reports as a console error ("Got invalid theme
# mode: .").  Start first-time readers in light mode: figures are drawn on white.
_DEFAULT_MODE = 'if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "light"; }'


# The widget manager (@jupyter-widgets/html-manager) typesets widget labels with
# MathJax 2's API, ``MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])``; the
# book serves MathJax 3, which has no ``Hub``, so every widget logged a console
# error ("Cannot read properties of undefined (reading 'Queue')").  This shim
# answers that call with MathJax 3's ``typesetPromise``.  MathJax (deferred) has
# loaded by DOMContentLoaded; the widgets render later, on ``load``.
_MATHJAX2_SHIM = """
document.addEventListener("DOMContentLoaded", function () {
  var mj = window.MathJax;
  if (!mj || mj.Hub) { return; }
  mj.Hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (typeof job === "function") { job(); }
        else if (Array.isArray(job) && job[0] === "Typeset" && window.MathJax.typesetPromise) {
          window.MathJax.typesetPromise(job[2] ? [job[2]] : undefined).catch(function () {});
        }
      }
    }
  };
});
"""


def setup(app):
    # priority 900: after the extensions that add scripts
    app.connect("html-page-context", _blank_thebe_url, priority=900)
    app.add_js_file(None, body=_DEFAULT_MODE, priority=1)
    app.add_js_file(None, body=_MATHJAX2_SHIM, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

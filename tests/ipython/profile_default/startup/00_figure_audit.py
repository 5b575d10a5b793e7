"""Figure audit, loaded into every kernel of the book build (``make book``).

The Makefile points ``IPYTHONDIR`` here and sets ``DLT_FIGURE_AUDIT`` to a
folder.  After each cell (before the inline backend shows and closes the
figures) this notes how many Matplotlib figures the cell made that are still
open, i.e. the ones the page should show, as one JSON line keyed by the
cell's source.  ``tests/test_notebook_pages.py`` compares them with the
images in ``_build/jupyter_execute``, so the check costs no extra execution.
Without ``DLT_FIGURE_AUDIT`` it does nothing.
"""

import os

if os.environ.get("DLT_FIGURE_AUDIT"):
    import hashlib as _hashlib
    import json as _json
    from pathlib import Path as _Path

    import matplotlib.figure as _figure
    from matplotlib._pylab_helpers import Gcf as _Gcf

    _dlt_audit = _Path(os.environ["DLT_FIGURE_AUDIT"])
    _dlt_audit.mkdir(parents=True, exist_ok=True)
    _dlt_log = _dlt_audit / f"{os.getpid()}.jsonl"
    _dlt_made = []
    _dlt_cell = {"source": ""}
    _dlt_init = _figure.Figure.__init__

    def _dlt_counting_init(self, *args, **kwargs):
        _dlt_init(self, *args, **kwargs)
        _dlt_made.append(self)

    def _dlt_before_cell(info):
        _dlt_cell["source"] = info.raw_cell or ""

    def _dlt_after_cell():
        shown = {manager.canvas.figure for manager in _Gcf.get_all_fig_managers()}
        figures = sum(fig in shown for fig in _dlt_made)
        _dlt_made.clear()
        digest = _hashlib.sha1(_dlt_cell["source"].encode()).hexdigest()
        with open(_dlt_log, "a") as log:
            log.write(_json.dumps({"source": digest, "figures": figures}) + "\n")

    _figure.Figure.__init__ = _dlt_counting_init
    get_ipython().events.register("pre_run_cell", _dlt_before_cell)  # noqa: F821
    get_ipython().events.register("post_execute", _dlt_after_cell)  # noqa: F821

"""What a chapter puts on the page: every figure it makes is shown (once), no cell shows an error.

The executed-notebook test runs each chapter itself (nbclient, the
``python3`` kernel of this environment, ``DLT_OFFLINE`` as the caller set
it) with a small recorder loaded first: it counts the Matplotlib figures each
cell makes and that are still open when the cell ends, which are exactly the
ones the notebook should show.  Executing is reliable where reading
``_build/jupyter_execute`` is not: the outputs alone cannot say that a cell
made a figure which never reached the page.  It is marked ``notebooks``, so
``make check`` leaves it out and ``make test`` runs it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re

import book_toc
import nbformat
import pytest

NOTEBOOKS = book_toc.notebooks()

# Loaded into the kernel before the chapter's first cell.  After each cell
# (before the inline backend shows and closes the figures), it notes how many
# figures the cell made that are still open; the last cell prints the list.
RECORDER = """
import json as _json
import matplotlib.figure as _figure
from matplotlib._pylab_helpers import Gcf as _Gcf

_dlt_made, _dlt_open = [], []
_dlt_init = _figure.Figure.__init__


def _dlt_counting_init(self, *args, **kwargs):
    _dlt_init(self, *args, **kwargs)
    _dlt_made.append(self)


def _dlt_after_cell():
    shown = {manager.canvas.figure for manager in _Gcf.get_all_fig_managers()}
    _dlt_open.append(sum(fig in shown for fig in _dlt_made))
    _dlt_made.clear()


_figure.Figure.__init__ = _dlt_counting_init
get_ipython().events.register("post_execute", _dlt_after_cell)
"""
REPORT = "print(_json.dumps(_dlt_open))"
IMAGE = "image/png"
WIDGET = "application/vnd.jupyter.widget-view+json"


def _execute(path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    nb.cells = [nbformat.v4.new_code_cell(RECORDER), *nb.cells, nbformat.v4.new_code_cell(REPORT)]
    client = NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True)
    client.execute(cwd=str(path.parent))
    report = "".join(out.get("text", "") for out in nb.cells[-1].outputs if out.output_type == "stream")
    # One count per executed cell: the recorder's own cell first, the report's not yet.
    figures = json.loads(report)[1:]
    return list(zip(code_cells, figures, strict=True))


def _problems(name, cells):
    problems = []
    for number, (cell, figures) in enumerate(cells):
        outputs = cell.get("outputs", [])
        where = f"{name}, code cell {number} ({cell.source.strip().splitlines()[0][:60]!r}...)"
        errors = [out for out in outputs if out.output_type == "error"]
        if errors and "raises-exception" not in cell.metadata.get("tags", []):
            problems.append(f"{where}: {errors[0].ename}: {errors[0].evalue}")
        images = sum(IMAGE in out.get("data", {}) for out in outputs)
        widgets = sum(WIDGET in out.get("data", {}) for out in outputs)
        if figures and not images and not widgets:
            problems.append(f"{where}: made {figures} figure(s) and shows none")
        if figures and images > figures:
            problems.append(f"{where}: shows {images} images of {figures} figure(s): one is drawn twice")
    return problems


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_shows_every_figure_it_makes_and_no_error(path):
    problems = _problems(path.name, _execute(path))
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_hidden_figure_a_double_one_and_an_error(tmp_path):
    """The rules above, on a notebook made to break each of them (no kernel needed)."""
    image = nbformat.v4.new_output("display_data", data={IMAGE: "iVBOR"})
    cells = [
        (nbformat.v4.new_code_cell("fig, ax = plt.subplots()"), 1),  # made, never shown
        (nbformat.v4.new_code_cell("fig = plot.show_tiles(X)\nfig", outputs=[image, image]), 1),
        (
            nbformat.v4.new_code_cell(
                "1 / 0",
                outputs=[
                    nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero")
                ],
            ),
            0,
        ),
        (nbformat.v4.new_code_cell("fig = plot.show_tiles(X)", outputs=[image]), 1),  # right
    ]
    problems = _problems("made.ipynb", cells)
    assert len(problems) == 3
    assert "cell 0" in problems[0] and "shows none" in problems[0]
    assert "cell 1" in problems[1] and "drawn twice" in problems[1]
    assert "cell 2" in problems[2] and "ZeroDivisionError" in problems[2]


# ----------------------------------------------------------------------------
# Library code printed on a page
# ----------------------------------------------------------------------------
_GETSOURCE = re.compile(r"inspect\.getsource\(\s*([\w.]+)\s*\)")
PAGE_COLUMNS = 79  # what the page's code column shows at 1280 px (book/ruff.toml)


def _shown_sources():
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                for dotted in _GETSOURCE.findall(cell.source):
                    yield path.name, dotted


@pytest.mark.parametrize(("chapter", "dotted"), list(_shown_sources()))
def test_library_source_shown_in_a_chapter_fits_the_page(chapter, dotted):
    module, _, attribute = dotted.rpartition(".")
    name = module if module.startswith("dlt_lib") else f"dlt_lib.{module}"
    source = inspect.getsource(getattr(importlib.import_module(name), attribute))
    long = [line for line in source.splitlines() if len(line) > PAGE_COLUMNS]
    assert not long, f"{chapter} prints {dotted}, whose lines run past {PAGE_COLUMNS} columns: {long}"

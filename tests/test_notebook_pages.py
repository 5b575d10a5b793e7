"""What a chapter puts on the page: every figure it makes is shown (once), no cell shows an error.

The book build (``make book``) loads a small recorder into every kernel
(``tests/ipython/profile_default/startup/00_figure_audit.py``, through
``IPYTHONDIR`` and ``DLT_FIGURE_AUDIT`` set by the Makefile): after each cell
it notes how many Matplotlib figures the cell made that are still open, which
are exactly the ones the page should show.  This test compares those counts
with the outputs the build stored in ``_build/jupyter_execute``.  Reading the
outputs alone could not tell that a cell made a figure which never reached the
page; recording during the build costs no extra execution of the book.  It is
marked ``notebooks`` (``make check`` leaves it out; ``make test`` builds the
book first); without a build it skips locally and fails under CI.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re

import book_toc
import nbformat
import pytest
from support import require

NOTEBOOKS = book_toc.notebooks()
BUILD = book_toc.ROOT / "_build"
EXECUTED = BUILD / "jupyter_execute"
AUDIT = BUILD / "figure-audit"
IMAGE = "image/png"
WIDGET = "application/vnd.jupyter.widget-view+json"


def _digest(source):
    return hashlib.sha1(source.encode()).hexdigest()


def _figures_by_source():
    """Figures still open after each executed cell, by the sha1 of the cell's source."""
    counts = {}
    for log in AUDIT.glob("*.jsonl"):
        for line in log.read_text().splitlines():
            record = json.loads(line)
            counts[record["source"]] = record["figures"]
    return counts


def _executed(path):
    """The build's executed copy of a chapter, each code cell with the figures it left open."""
    executed = EXECUTED / path.relative_to(book_toc.ROOT).with_suffix(".ipynb")
    require(
        executed.exists() and AUDIT.is_dir(),
        f"{executed} or {AUDIT} is missing: run `make book` first (it records the figures)",
    )
    require(
        executed.stat().st_mtime >= path.stat().st_mtime,
        f"{executed} is older than {path}: run `make book` again",
    )
    nb = nbformat.read(executed, as_version=4)
    counts = _figures_by_source()
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    missing = [cell.source[:60] for cell in cells if _digest(cell.source) not in counts]
    assert not missing, f"{path.name}: the figure audit has no record of cells {missing}"
    return [(cell, counts[_digest(cell.source)]) for cell in cells]


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
    problems = _problems(path.name, _executed(path))
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


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_page_hides_nbval_markers_and_linter_pragmas(path):
    """``# NBVAL_CHECK_OUTPUT``, ``# fmt: skip``, ``# noqa``: the notebook keeps them, the page leaves them out."""
    html = BUILD / "html" / path.relative_to(book_toc.ROOT).with_suffix(".html")
    require(html.exists(), f"{html} is missing: run `make book` first")
    code = "\n".join(
        cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"
    )
    page = html.read_text(encoding="utf-8")
    for marker in ("NBVAL_", "fmt: skip", "noqa"):
        shown = page.count(marker)
        assert shown == 0, (
            f"{html.name} shows {marker!r} {shown} times ({code.count(marker)} in the notebook)"
        )


def test_markers_and_pragmas_are_removed_and_nothing_else():
    spec = importlib.util.spec_from_file_location(
        "markers", book_toc.ROOT / "book/_assets/dlt_nbval_markers.py"
    )
    markers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(markers)
    code = (
        "# NBVAL_CHECK_OUTPUT\n"
        "rates = [0.1,  0.01]  # fmt: skip\n"
        "f = lambda x: x  # noqa: E731\n"
        "# the formatter and the linter read the notebook\n"
        "print('# noqa')\n"
    )
    assert markers.clean(code) == (
        "rates = [0.1,  0.01]\nf = lambda x: x\n# the formatter and the linter read the notebook\nprint('# noqa')\n"
    )

"""Copies of the book's notebooks without the solutions: homework without nbgrader.

The nbgrader route (``python -m dlt_lib.homework source``) grades the
homework too; this one only hands it out, for a lecturer without nbgrader::

    python -m dlt_lib.homework student-copy                  # -> student/<chapter>.ipynb
    python -m dlt_lib.homework student-copy --out handout/   # another folder
    python -m dlt_lib.homework student-copy book/losses.ipynb --out handout/   # some chapters only

(``python scripts/student_copy.py`` is the same command.)

Without arguments it copies every notebook listed in ``_toc.yml`` (Markdown
pages such as ``book/intro.md`` hold no exercises and are skipped).  In each
copy:

- every ``{solution}`` directive in a Markdown cell is removed: the whole
  fenced block, from its opening fence (```` ```{solution} ```` or
  ``:::{solution}``) to the matching closing fence, including any code
  blocks nested in it;
- every *gated* solution is removed: everything from a ``{solution-start}``
  directive to the next ``{solution-end}`` directive, both included, across
  cells, so the code cells between them go too (text before the start in the
  same cell, and after the end, is kept);
- Markdown cells left empty by this are dropped;
- the outputs and execution counts of all code cells are cleared (a stored
  output could give an answer away), and saved widget state is dropped.

Everything else -- the exercises (``{exercise}`` directives), the prose, the
code cells a student runs or completes -- is kept as it is.

For each notebook it prints what it removed.  It fails loudly, writing
nothing, if a ``{solution-start}`` has no ``{solution-end}`` (or an end has no
start, or two starts nest), since a copy made from such a notebook would
either keep an answer or lose the rest of the chapter.

See ``CONTRIBUTING.md`` for how exercises and solutions are written.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from dlt_lib.homework.book import book_root, toc_notebooks
from dlt_lib.homework.myst import SolutionError, split_directives

__all__ = ["ANSWER_CELL", "Report", "SolutionError", "make_copies", "strip_solutions", "toc_notebooks"]


@dataclass
class Report:
    """What :func:`strip_solutions` removed from one notebook.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """

    solution_blocks: int = 0  # {solution} directives removed from Markdown cells
    gated_solutions: int = 0  # {solution-start} ... {solution-end} spans removed
    cells_removed: int = 0  # whole cells dropped (inside a gated span, or left empty)
    code_cells_removed: int = 0
    answer_cells: int = 0  # empty "your answer" code cells put where gated solutions were
    exercises_kept: int = 0
    labels: list = field(default_factory=list)  # labels of the solutions removed, where given

    def __str__(self) -> str:
        parts = [
            f"{self.solution_blocks} {{solution}} block{'s' * (self.solution_blocks != 1)}",
            f"{self.gated_solutions} gated solution{'s' * (self.gated_solutions != 1)}",
            f"{self.cells_removed} cell{'s' * (self.cells_removed != 1)} ({self.code_cells_removed} code)",
        ]
        text = "removed " + ", ".join(parts) + f"; kept {self.exercises_kept} exercise"
        text += "s" * (self.exercises_kept != 1)
        if self.labels:
            text += " (solutions: " + ", ".join(self.labels) + ")"
        return text


ANSWER_CELL = "# Your answer here\n"


class _Stripper:
    """Walks the cells once (see :func:`strip_solutions`), keeping the open gated solution, if any."""

    def __init__(self, name: str):
        self.name, self.report, self.cells = name, Report(), []
        self.inside = None  # (cell number, label) of the open {solution-start}

    def code(self, cell) -> None:
        if self.inside is not None:
            self.report.cells_removed += 1
            self.report.code_cells_removed += cell.cell_type == "code"
            return
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        self.cells.append(cell)

    def markdown(self, number: int, cell) -> None:
        kept, removed, answer_due = [], False, False
        for segment in split_directives(cell.source, f"{self.name}, cell {number}"):
            if self.inside is not None or segment.kind in ("solution", "solution-start", "solution-end"):
                answer_due |= self._solution_segment(number, segment)
                removed = True
                continue
            self.report.exercises_kept += segment.kind == "exercise"
            kept.append(segment.text.strip("\n"))
        if answer_due:  # where a worked solution was, leave the student an empty cell to work in
            self.cells.append(nbformat.v4.new_code_cell(ANSWER_CELL))
            self.report.answer_cells += 1
        if removed and not kept:
            self.report.cells_removed += 1
            return
        if removed:
            cell.source = "\n\n".join(kept)
        self.cells.append(cell)

    def _solution_segment(self, number: int, segment) -> bool:
        """Account for a removed piece; True when it closes a gated solution."""
        where = f"{self.name}, cell {number}"
        if self.inside is not None:
            if segment.kind in ("solution-start", "exercise"):
                raise SolutionError(
                    f"{where}: a {{{segment.kind}}} inside the solution opened in cell {self.inside[0]} "
                    f"({self.inside[1] or 'no label'}); close the first one with {{solution-end}} before."
                )
            if segment.kind == "solution-end":
                self.inside = None
                return True
            return False
        if segment.kind == "solution-end":
            raise SolutionError(f"{where}: a {{solution-end}} without a {{solution-start}} before it.")
        if segment.kind == "solution":
            self.report.solution_blocks += 1
        else:
            self.inside = (number, segment.label)
            self.report.gated_solutions += 1
        if segment.label:
            self.report.labels.append(segment.label)
        return False


def strip_solutions(nb, name: str = "notebook") -> tuple[nbformat.NotebookNode, Report]:
    """Return ``(copy of nb without solutions and outputs, Report)``.

    Raises :class:`SolutionError` when a gated solution is not closed, or a
    ``{solution}`` fence is never closed.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    nb = copy.deepcopy(nb)
    stripper = _Stripper(name)
    for number, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            stripper.markdown(number, cell)
        else:
            stripper.code(cell)
    if stripper.inside is not None:
        number, label = stripper.inside
        raise SolutionError(
            f"{name}: the {{solution-start}} in cell {number} ({label or 'no label'}) has no "
            "{solution-end}: add one after the solution's last cell."
        )
    nb.cells = stripper.cells
    nb.metadata.pop("widgets", None)
    return nb, stripper.report


def _relative_name(path: Path) -> Path:
    """``book/losses.ipynb`` -> ``losses.ipynb``: the copy keeps the path below ``book/``."""
    path = path.resolve()
    book = book_root() / "book"
    try:
        return path.relative_to(book)
    except ValueError:
        return Path(path.name)


def make_copies(notebooks: list[Path], out: Path) -> dict[Path, Report]:
    """Strip every notebook in memory first, then write them all to ``out``; returns the reports.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    results = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        stripped, report = strip_solutions(nb, name=str(path))
        results.append((path, stripped, report))
    written = {}
    for path, stripped, report in results:
        target = out / _relative_name(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(stripped, target)
        written[target] = report
    return written


def main(argv=None) -> int:
    """The command line.  Taught in ``book/homework.md`` (the appendix for lecturers)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See the module docstring for what is removed."
    )
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="notebooks to copy (default: every notebook in _toc.yml)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("student"), help="folder for the copies (default: student/)"
    )
    args = parser.parse_args(argv)
    notebooks = args.notebooks or toc_notebooks()
    if not notebooks:
        print("no notebooks to copy (_toc.yml lists none that exist)", file=sys.stderr)
        return 1
    try:
        written = make_copies(notebooks, args.out)
    except SolutionError as exc:
        print(f"error: {exc}\nNothing was written.", file=sys.stderr)
        return 1
    for target, report in written.items():
        print(f"{target}: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write copies of the book's notebooks without the solutions, for students.

A lecturer who assigns a chapter as homework hands out the exercises and
keeps the answers::

    python scripts/student_copy.py                  # -> student/<chapter>.ipynb
    python scripts/student_copy.py --out handout/   # another folder
    python scripts/student_copy.py book/losses.ipynb --out handout/   # some chapters only

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
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import book_toc  # the one reader of _toc.yml, next to this script
import nbformat

ROOT = Path(__file__).resolve().parents[1]

# The opening line of a fenced block: three or more backticks, tildes or colons,
# then, for a MyST directive, {name}.  Any fenced block that is not a solution
# (a code sample, an exercise) is kept whole, unread: a ```` ```md ```` sample
# that shows how to write a solution is not a solution.
_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,}|:{3,})[ \t]*(?:\{(?P<name>[A-Za-z0-9_-]+)\})?(?P<rest>.*)$")


class SolutionError(ValueError):
    """A notebook's solutions are not well formed (e.g. a solution-start without a solution-end)."""


@dataclass
class Report:
    """What :func:`strip_solutions` removed from one notebook."""

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


def _closes(line: str, fence: str) -> bool:
    """True if ``line`` closes a block opened with ``fence`` (same character, at least as long)."""
    stripped = line.strip()
    return bool(stripped) and set(stripped) == {fence[0]} and len(stripped) >= len(fence)


def _find_close(lines: list[str], start: int, fence: str) -> int | None:
    """Index of the line closing the fence opened at ``lines[start]``, or None."""
    for j in range(start + 1, len(lines)):
        if _closes(lines[j], fence):
            return j
    return None


def _after_removal(lines: list[str], i: int, kept: list[str]) -> int:
    """Where to go on after removing a block that ended before ``lines[i]``.

    Blank lines right after it are skipped when the text kept so far ends
    with a blank line (or is empty), so a removal leaves no double gap.
    """
    if not kept or not kept[-1].strip():
        while i < len(lines) and not lines[i].strip():
            i += 1
    return i


def _label(rest: str) -> str:
    return rest.strip().split()[0] if rest.strip() else ""


ANSWER_CELL = "# Your answer here\n"


def strip_solutions(nb, name: str = "notebook") -> tuple[nbformat.NotebookNode, Report]:
    """Return ``(copy of nb without solutions and outputs, Report)``.

    Raises :class:`SolutionError` when a gated solution is not closed, or a
    ``{solution}`` fence is never closed.
    """
    nb = copy.deepcopy(nb)
    report = Report()
    cells = []
    inside = None  # (cell number, label) of the open {solution-start}, if any

    for number, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            if inside is not None:
                report.cells_removed += 1
                report.code_cells_removed += cell.cell_type == "code"
                continue
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
                cell.metadata.pop("execution", None)
            cells.append(cell)
            continue

        lines = cell.source.splitlines(keepends=True)
        kept: list[str] = []
        answer_cell_due = False
        i = 0
        while i < len(lines):
            match = _OPEN.match(lines[i].rstrip("\r\n"))
            directive = match["name"] if match else None  # None for a plain fence or text
            close = _find_close(lines, i, match["fence"]) if match else None
            where = f"{name}, cell {number}"
            if inside is not None:
                # Skipping a gated solution: look only for its end.
                if directive == "solution-end":
                    if close is None:
                        raise SolutionError(f"{where}: the {{solution-end}} fence is never closed.")
                    inside = None
                    answer_cell_due = True
                    i = _after_removal(lines, close + 1, kept)
                elif directive == "solution-start":
                    raise SolutionError(
                        f"{where}: a {{solution-start}} inside the solution opened in cell {inside[0]} "
                        f"({inside[1] or 'no label'}); close the first one with {{solution-end}} before."
                    )
                elif match and close is not None:
                    i = close + 1  # a whole fenced block inside the solution: skip it unread
                else:
                    i += 1
                continue
            if directive == "solution":
                if close is None:
                    raise SolutionError(f"{where}: the {{solution}} block opened here is never closed.")
                report.solution_blocks += 1
                if _label(match["rest"]):
                    report.labels.append(_label(match["rest"]))
                i = _after_removal(lines, close + 1, kept)
            elif directive == "solution-start":
                if close is None:
                    raise SolutionError(f"{where}: the {{solution-start}} fence is never closed.")
                inside = (number, _label(match["rest"]))
                report.gated_solutions += 1
                if inside[1]:
                    report.labels.append(inside[1])
                i = _after_removal(lines, close + 1, kept)
            elif directive == "solution-end":
                raise SolutionError(f"{where}: a {{solution-end}} without a {{solution-start}} before it.")
            else:
                if directive in ("exercise", "exercise-start"):
                    report.exercises_kept += 1
                if match and close is not None:
                    kept.extend(lines[i : close + 1])  # keep a whole fenced block, unread
                    i = close + 1
                else:
                    kept.append(lines[i])
                    i += 1
        if answer_cell_due:
            # Where a worked solution was, leave the student an empty cell to work in.
            cells.append(nbformat.v4.new_code_cell(ANSWER_CELL))
            report.answer_cells += 1
        text = "".join(kept)
        if text != cell.source:
            if not text.strip():
                report.cells_removed += 1
                continue
            cell.source = text.strip("\n")
        cells.append(cell)

    if inside is not None:
        raise SolutionError(
            f"{name}: the {{solution-start}} in cell {inside[0]} ({inside[1] or 'no label'}) has no "
            "{solution-end}: add one after the solution's last cell."
        )
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    return nb, report


def toc_notebooks(toc: Path = ROOT / "_toc.yml") -> list[Path]:
    """The notebooks ``_toc.yml`` lists, in reading order (entries without an .ipynb are skipped)."""
    return book_toc.notebooks(toc)


def _relative_name(path: Path) -> Path:
    """``book/losses.ipynb`` -> ``losses.ipynb``: the copy keeps the path below ``book/``."""
    path = path.resolve()
    book = ROOT / "book"
    try:
        return path.relative_to(book)
    except ValueError:
        return Path(path.name)


def make_copies(notebooks: list[Path], out: Path) -> dict[Path, Report]:
    """Strip every notebook in memory first, then write them all to ``out``; returns the reports."""
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

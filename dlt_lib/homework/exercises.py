"""A chapter as the homework tools see it: prose, code, exercises and their solutions.

:func:`read_chapter` turns a notebook into a list of items in reading order:
:class:`Cell` (a code cell, or a piece of Markdown, outside any exercise),
:class:`Exercise` (the statement) and :class:`Solution` (what its solution
holds: prose, code cells, and the ``dlt_lib.check`` calls those cells make).
Markdown cells are split where a directive starts or ends, so an exercise
that shares a cell with prose is an item of its own.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field

import nbformat

from dlt_lib.homework.myst import SolutionError, split_directives

# A solution cell tagged so is handed to students as it is, and its checks are not
# graded: it demonstrates (e.g. the naive formula failing a check), it is not an answer.
KEEP_TAG = "homework-keep"


@dataclass
class Cell:
    """A cell outside the exercises' solutions (a code cell, or Markdown text).

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """

    cell: nbformat.NotebookNode


@dataclass
class Exercise:
    """An ``{exercise}`` directive.  Taught in ``book/homework.md`` (the appendix for lecturers)."""

    label: str
    title: str
    body: str  # the statement, MyST, without the directive's options


@dataclass(frozen=True)
class CheckCall:
    """``check.<check>(<function>, ...)`` in a solution: what the autograder will test.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """

    check: str  # the name in dlt_lib.check, e.g. "zero_one_loss"
    function: str  # the name of the reader's function, e.g. "my_zero_one_loss"


@dataclass
class Solution:
    """An exercise's solution.  Taught in ``book/homework.md`` (the appendix for lecturers)."""

    label: str
    prose: list[str] = field(default_factory=list)  # Markdown pieces, in order
    code: list[nbformat.NotebookNode] = field(default_factory=list)  # code cells, in order

    @property
    def checks(self) -> list[CheckCall]:
        """Every ``check.*(name)`` call in the solution's code, in order, each once.

        Cells tagged :data:`KEEP_TAG` are left out: their checks are demonstrations.
        """
        calls: list[CheckCall] = []
        for cell in self.code:
            if KEEP_TAG in cell.metadata.get("tags", []):
                continue
            for call in check_calls(cell.source):
                if call not in calls:
                    calls.append(call)
        return calls


def _is_check_module(node: ast.expr) -> bool:
    """``check`` or ``dlt_lib.check``."""
    if isinstance(node, ast.Name):
        return node.id == "check"
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "check"
        and isinstance(node.value, ast.Name)
        and node.value.id == "dlt_lib"
    )


def check_calls(source: str) -> list[CheckCall]:
    """The ``check.<name>(<function name>, ...)`` calls in a code cell's source.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    try:
        tree = ast.parse(_without_magics(source))
    except SyntaxError:
        return []
    calls = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and _is_check_module(node.func.value)
            and node.args
            and isinstance(node.args[0], ast.Name)
        ):
            calls.append(CheckCall(node.func.attr, node.args[0].id))
    return sorted(set(calls), key=calls.index)


def _without_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _markdown(text: str) -> Cell:
    return Cell(nbformat.v4.new_markdown_cell(text))


class _Reader:
    """Walks the cells once, keeping the open gated solution, if any."""

    def __init__(self, name: str):
        self.name = name
        self.items: list = []
        self.open: Solution | None = None
        self.opened_in = -1

    def code(self, cell):
        cell = copy.deepcopy(cell)
        if self.open is not None:
            self.open.code.append(cell)
        else:
            self.items.append(Cell(cell))

    def markdown(self, number: int, cell):
        for segment in split_directives(cell.source, f"{self.name}, cell {number}"):
            where = f"{self.name}, cell {number}"
            if segment.kind == "solution-end":
                if self.open is None:
                    raise SolutionError(
                        f"{where}: a {{solution-end}} without a {{solution-start}} before it."
                    )
                self.items.append(self.open)
                self.open = None
            elif self.open is not None:
                if segment.kind in ("solution-start", "exercise"):
                    raise SolutionError(
                        f"{where}: a {{{segment.kind}}} inside the solution opened in cell {self.opened_in}; "
                        "close that one with {solution-end} first."
                    )
                self.open.prose.append(segment.body if segment.kind == "solution" else segment.text)
            elif segment.kind == "exercise":
                self.items.append(Exercise(segment.label, segment.argument, segment.body))
            elif segment.kind == "solution":
                self.items.append(Solution(segment.label, prose=[segment.body] if segment.body else []))
            elif segment.kind == "solution-start":
                self.open, self.opened_in = Solution(segment.label), number
            else:
                self.items.append(_markdown(segment.text))


def read_chapter(nb, name: str = "notebook") -> list:
    """The items of a chapter (see the module docstring); raises :class:`SolutionError` if malformed.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    reader = _Reader(name)
    for number, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            reader.markdown(number, cell)
        elif cell.cell_type == "code":
            reader.code(cell)
    if reader.open is not None:
        raise SolutionError(
            f"{name}: the {{solution-start}} in cell {reader.opened_in} ({reader.open.label or 'no label'}) has "
            "no {solution-end}: add one after the solution's last cell."
        )
    _pair(reader.items, name)
    return reader.items


def _pair(items: list, name: str) -> None:
    """Every solution names an exercise that comes before it."""
    seen = set()
    for item in items:
        if isinstance(item, Exercise):
            seen.add(item.label)
        elif isinstance(item, Solution) and item.label not in seen:
            raise SolutionError(
                f"{name}: the solution of {item.label!r} comes before any exercise with that label."
            )


def exercises(items: list) -> list[tuple[Exercise, Solution | None]]:
    """Each exercise with its solution (None if it has none).

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    solutions = {item.label: item for item in items if isinstance(item, Solution)}
    return [(item, solutions.get(item.label)) for item in items if isinstance(item, Exercise)]

"""A chapter as an nbgrader *source* assignment, and the course directory around it.

For every exercise of a chapter (see :mod:`.exercises`):

- the statement becomes a Markdown cell that Jupyter keeps read-only;
- the solution's code becomes nbgrader *solution* cells.  Where a solution
  defines a function that it passes to ``dlt_lib.check``, only that function's
  body is the solution (``### BEGIN SOLUTION`` / ``### END SOLUTION``): the
  student gets its signature and docstring, and the check call stays, so the
  student sees the diagnosis while working.  Any other code cell of the
  solution is a solution as a whole, unless it only prints check results or
  is tagged ``homework-keep``;
- each checked function gets an autograded, read-only test cell:
  ``check.<name>(function, strict=True)``, then *hidden* tests that reload
  ``dlt_lib.check`` (undoing any change a submission made to it) and check again
  on other random cases (``### BEGIN HIDDEN TESTS``);
- whatever part of the exercise no check covers is graded by a person: a
  Markdown answer cell holding the solution's prose (the release replaces it
  by "YOUR ANSWER HERE"), or, where the solution has no prose, the student's
  first code cell that no check covers.

Everything else in the chapter is kept, without outputs.  Points come from
:class:`Grading` (a lecturer's ``homework.yml``); the defaults are 1 point per
test cell and 1 per answer cell.
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

from dlt_lib import check as check_module
from dlt_lib.homework.exercises import (
    KEEP_TAG,
    Cell,
    CheckCall,
    Exercise,
    Solution,
    check_calls,
    read_chapter,
)
from dlt_lib.homework.myst import plain_markdown

TIMEOUTS_FILE = "homework_timeouts.json"  # per-cell time limits, read by nbgrader_config.py


@dataclass
class Grading:
    """What counts, and for how much: a lecturer's choices (``homework.yml``).

    ``points`` maps an exercise label to ``{"tests": p, "answer": q}`` (points of
    each of its test cells and of its answer cell) or to 0 (not graded: the
    exercise stays, as practice).  Labels not named get the defaults.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """

    tests: float = 1
    answer: float = 1
    points: dict = field(default_factory=dict)
    student_cell_timeout: float = 30  # seconds a student's code cell may run
    other_cell_timeout: float = 300

    @classmethod
    def from_file(cls, path: Path) -> Grading:
        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(data) - {"tests", "answer", "points", "student_cell_timeout", "other_cell_timeout"}
        if unknown:
            raise ValueError(
                f"{path}: unknown keys {sorted(unknown)}; see the lecturers' appendix of the book."
            )
        return cls(**data)

    def of(self, label: str) -> tuple[float, float]:
        """``(points per test cell, points of the answer cell)`` of an exercise; (0, 0) if not graded."""
        chosen = self.points.get(label, {})
        if chosen == 0 or chosen is None:
            return 0, 0
        if not isinstance(chosen, dict):
            raise ValueError(f"points of {label}: expected 0 or {{tests: p, answer: q}}, got {chosen!r}")
        return float(chosen.get("tests", self.tests)), float(chosen.get("answer", self.answer))


def _nbgrader(cell, grade_id: str, *, grade=False, solution=False, locked=False, points=None):
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    return cell


def _clean_code(cell) -> nbformat.NotebookNode:
    cell = copy.deepcopy(cell)
    cell.outputs, cell.execution_count = [], None
    cell.metadata.pop("execution", None)
    lines = [line for line in cell.source.splitlines() if line.strip() != "# NBVAL_CHECK_OUTPUT"]
    cell.source = "\n".join(lines).strip("\n")
    return cell


def _wrap(lines: list[str], indent: str) -> list[str]:
    return [f"{indent}### BEGIN SOLUTION", *lines, f"{indent}### END SOLUTION"]


def _kept_for_students(stmt: ast.stmt) -> bool:
    """Imports, and the statements that call a check (the student's feedback while working)."""
    return isinstance(stmt, (ast.Import, ast.ImportFrom)) or bool(check_calls(ast.unparse(stmt)))


def stub_function_bodies(source: str, names: set[str]) -> tuple[str, bool] | None:
    """``source`` with the solution marked, in a cell that defines the checked functions ``names``.

    The bodies of those functions are the solution; their signatures and
    docstrings stay.  Imports and check calls stay too.  Any other statement
    (another function, a computation) is part of the solution as well.
    Returns ``(source, True if such other statements exist)``, or None if the
    cell defines none of ``names``.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    if not any(isinstance(n, ast.FunctionDef) and n.name in names for n in tree.body):
        return None
    lines = source.splitlines()
    regions, run = [], []  # (first line, last line, indent) to wrap, 0-based, inclusive
    for stmt in tree.body:
        first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))]) - 1
        if isinstance(stmt, ast.FunctionDef) and stmt.name in names:
            body = stmt.body[1:] if ast.get_docstring(stmt) is not None and len(stmt.body) > 1 else stmt.body
            line = lines[body[0].lineno - 1]
            regions.append((body[0].lineno - 1, stmt.end_lineno - 1, line[: len(line) - len(line.lstrip())]))
        elif not _kept_for_students(stmt):
            run.append((first, stmt.end_lineno - 1))
            continue
        if run:
            regions.append((run[0][0], run[-1][1], ""))
            run = []
    if run:
        regions.append((run[0][0], run[-1][1], ""))
    others = any(indent == "" for _, _, indent in regions)
    for first, last, indent in sorted(regions, reverse=True):
        lines[first : last + 1] = _wrap(lines[first : last + 1], indent)
    return "\n".join(lines), others


def _only_shows(source: str, names: set[str]) -> bool:
    """True if every statement only prints or shows ``names`` (e.g. ``print(sgd_step_check)``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - {"print", "display"}
    return bool(tree.body) and all(isinstance(s, ast.Expr) for s in tree.body) and used <= names


def _check_results(solution: Solution) -> set[str]:
    """Names the solution assigns from a check call (``result = check.sgd_step(...)``)."""
    names = set()
    for cell in solution.code:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and check_calls(ast.unparse(stmt.value)):
                names |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
    return names


@dataclass
class _Built:
    cells: list = field(default_factory=list)
    timeouts: dict = field(default_factory=dict)  # grade_id -> seconds, for student cells that need longer
    uncovered: list = field(default_factory=list)  # solution cells holding code no check covers


def _solution_code(solution: Solution, graded: bool, built: _Built) -> None:
    """The solution's code cells, as nbgrader solution cells (or kept as they are)."""
    checked = {c.function for c in solution.checks} if graded else set()
    shown = _check_results(solution)
    for k, original in enumerate(solution.code, start=1):
        cell = _clean_code(original)
        grade_id = f"{solution.label}-code-{k}"
        if KEEP_TAG in cell.metadata.get("tags", []) or (graded and _only_shows(cell.source, shown)):
            built.cells.append(cell)
            continue
        stubbed = stub_function_bodies(cell.source, checked)
        if stubbed is None:
            cell.source, others = "\n".join(_wrap(cell.source.splitlines(), "")), True
        else:
            cell.source, others = stubbed
        built.cells.append(_nbgrader(cell, grade_id, solution=True))
        if others:
            built.uncovered.append(cell)
        timeout = original.metadata.get("homework", {}).get("timeout")
        if timeout:
            built.timeouts[grade_id] = float(timeout)


def hidden_seed(label: str, function: str) -> int:
    """A fixed seed for the hidden tests of one function, other than the visible tests' 0.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    return zlib.crc32(f"{label}/{function}".encode()) % 9973 + 1


def test_source(label: str, call: CheckCall) -> str:
    """The source of the test cell for one checked function.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    checker = getattr(check_module, call.check, None)
    if checker is None:
        raise ValueError(
            f"{label}: the solution calls check.{call.check}, which dlt_lib.check does not have."
        )
    seeded = "seed" in inspect.signature(checker).parameters
    again = f"seed={hidden_seed(label, call.function)}, " if seeded else ""
    return "\n".join(
        [
            f"# Tests of {call.function} (exercise {label}): run this cell to see your score's diagnosis.",
            "from dlt_lib import check",
            "",
            f"print(check.{call.check}({call.function}, strict=True))",
            "### BEGIN HIDDEN TESTS",
            "import importlib",
            "",
            "import dlt_lib.check",
            "",
            "check = importlib.reload(dlt_lib.check)  # the checks as shipped, whatever the notebook did to them",
            f"print(check.{call.check}({call.function}, {again}strict=True))",
            "### END HIDDEN TESTS",
        ]
    )


def _exercise_cells(exercise: Exercise, solution: Solution | None, grading: Grading, built: _Built) -> None:
    tests, answer = grading.of(exercise.label)
    graded = solution is not None and (tests > 0 or answer > 0)
    statement = nbformat.v4.new_markdown_cell(
        f"### Exercise: {plain_markdown(exercise.title)}\n\n{plain_markdown(exercise.body)}".strip()
    )
    # Read-only in Jupyter, but not an nbgrader cell: nbgrader 0.9.6 fails to restore a deleted
    # test or answer cell whose previous nbgrader cell is a read-only one (KeyError in OverwriteCells).
    statement.metadata.update(editable=False, deletable=False, dlt_homework={"exercise": exercise.label})
    built.cells.append(statement)
    if solution is None:
        return
    part = _Built()
    _solution_code(solution, graded and tests > 0, part)
    built.cells += part.cells
    built.timeouts.update(part.timeouts)
    if not graded:
        return
    if tests > 0:
        for call in solution.checks:
            cell = nbformat.v4.new_code_cell(test_source(exercise.label, call))
            built.cells.append(
                _nbgrader(
                    cell, f"{exercise.label}-test-{call.function}", grade=True, locked=True, points=tests
                )
            )
    if answer > 0:
        _answer(exercise, solution, part, answer, built, tests > 0)


def _answer(exercise: Exercise, solution: Solution, part: _Built, points: float, built: _Built, tested: bool):
    """What no check covers is graded by a person: the prose in a Markdown answer cell, else the code."""
    prose = [plain_markdown(p) for p in solution.prose if p.strip()]
    if prose:
        cell = nbformat.v4.new_markdown_cell("\n\n".join(prose))
        built.cells.append(
            _nbgrader(cell, f"{exercise.label}-answer", grade=True, solution=True, points=points)
        )
    elif part.uncovered or not tested:
        graded = (part.uncovered or [c for c in part.cells if "nbgrader" in c.metadata])[:1]
        for cell in graded:  # the student's code itself is the answer
            cell.metadata["nbgrader"].update(grade=True, points=points)


def assignment(
    nb, grading: Grading | None = None, name: str = "notebook"
) -> tuple[nbformat.NotebookNode, dict]:
    """``(nbgrader source notebook, {grade_id: timeout})`` for one chapter.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    grading = grading or Grading()
    items = read_chapter(nb, name)
    solutions = {item.label: item for item in items if isinstance(item, Solution)}
    built = _Built()
    for item in items:
        if isinstance(item, Cell) and item.cell.cell_type == "code":
            built.cells.append(_clean_code(item.cell))
        elif isinstance(item, Cell):
            built.cells.append(nbformat.v4.new_markdown_cell(plain_markdown(item.cell.source)))
        elif isinstance(item, Exercise):
            _exercise_cells(item, solutions.get(item.label), grading, built)
    out = nbformat.v4.new_notebook(cells=built.cells, metadata=copy.deepcopy(nb.metadata))
    out.metadata.pop("widgets", None)
    return out, built.timeouts


CONFIG_TEMPLATE = '''\
"""nbgrader's configuration for this course, written by `python -m dlt_lib.homework source`.

Edit it freely: `source` writes it only when it is missing (or with --force).
What each line is for: the book's appendix for lecturers.
"""

import os

from dlt_lib.homework.grading import CellTimeouts

c = get_config()  # noqa: F821 - nbgrader defines it

# Every submission is graded on the same data: the 10,000-digit sample inside
# dlt_lib, never a download that may or may not work on the grading machine.
os.environ.setdefault("DLT_OFFLINE", "1")

c.CourseDirectory.course_id = {course_id!r}

# A cell that runs too long is interrupted; the rest of the notebook still runs.
# Students' code cells get {student:g} s (more where a chapter says so, in
# {timeouts_file}); every other cell {other:g} s.
c.Execute.timeout_func = CellTimeouts.from_course(
    os.path.dirname(os.path.abspath(__file__)), student={student:g}, other={other:g}
)
c.Execute.interrupt_on_timeout = True
# nbgrader fails the whole submission when a cell's output arrives later than
# this after the cell finished (nbclient's default is 4 s): a busy grading
# machine (a class graded side by side on a few cores) can take longer.
c.Execute.iopub_timeout = 60

# A submission that deleted a test cell is graded on the original test.
c.OverwriteCells.add_missing_cells = True

# The feedback shows the tests a student could read, not the hidden ones.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
'''


def write_course(course: Path, chapters: list[Path], grading: Grading, force_config: bool = False) -> dict:
    """Write ``source/<chapter>/<chapter>.ipynb`` for each chapter (and ``nbgrader_config.py``).

    Every chapter is converted before anything is written, so a malformed one
    leaves the course directory as it was.  Returns ``{chapter: number of graded cells}``.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    built = {}
    for path in chapters:
        nb = nbformat.read(path, as_version=4)
        built[path.stem] = assignment(nb, grading, name=str(path))
    course.mkdir(parents=True, exist_ok=True)
    timeouts_path = course / TIMEOUTS_FILE
    timeouts = json.loads(timeouts_path.read_text()) if timeouts_path.exists() else {}
    summary = {}
    for chapter, (nb, cell_timeouts) in built.items():
        target = course / "source" / chapter / f"{chapter}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(nb)
        nbformat.write(nb, target)
        timeouts[chapter] = cell_timeouts
        summary[chapter] = nb
    timeouts_path.write_text(json.dumps(timeouts, indent=1, sort_keys=True) + "\n")
    config = course / "nbgrader_config.py"
    if force_config or not config.exists():
        config.write_text(
            CONFIG_TEMPLATE.format(
                course_id=course.resolve().name,
                student=grading.student_cell_timeout,
                other=grading.other_cell_timeout,
                timeouts_file=TIMEOUTS_FILE,
            )
        )
    return summary

"""A simulated class: submissions made from a chapter's nbgrader source and release notebooks.

Used by ``tests/test_homework.py`` and ``benchmarks/bench_homework.py``.  Every
submission starts from the release notebook a student gets and fills it in the
way one kind of student would; :func:`expected_failures` says which test cells
must then fail, so expected scores come from the generated assignment's
points, not from numbers that break when a chapter changes.
"""

from __future__ import annotations

import ast
import copy
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from dlt_lib.homework.exercises import check_calls

MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)

# How a student who calls the library's answer writes each checked function
# ({0}, {1}, ... are the function's own argument names).
CHEATS = {
    "zero_one_loss": "from dlt_lib import losses\nreturn losses.zero_one_loss({0}, {1})",
    "negative_log_likelihood": "from dlt_lib import losses\nreturn losses.negative_log_likelihood({0}, {1})",
    "l1_penalty": "from dlt_lib import losses\nreturn losses.l1_penalty([{0}])",
    "l2_penalty": "from dlt_lib import losses\nreturn losses.l2_penalty([{0}])",
    "sgd_step": "from dlt_lib import updates\nreturn updates.sgd([{1}], [{0}], {2})[{0}]",
    "validation_frequency": "from dlt_lib import training\nreturn training.EarlyStopping(patience={1}).validation_frequency({0})",
}

KINDS = ("solutions", "blank", "wrong", "raises", "loops", "tampered", "reference")


@dataclass(frozen=True)
class TestCell:
    grade_id: str
    check: str
    function: str
    points: float


def meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def test_cells(source_nb) -> list[TestCell]:
    cells = []
    for cell in source_nb.cells:
        if meta(cell).get("grade") and not meta(cell).get("solution") and cell.cell_type == "code":
            (call,) = check_calls(cell.source.split("### BEGIN HIDDEN TESTS")[0])
            cells.append(
                TestCell(meta(cell)["grade_id"], call.check, call.function, float(meta(cell)["points"]))
            )
    return cells


def target(source_nb) -> TestCell:
    """The function the wrong/raising/looping/cheating students get wrong: the first with a cheat."""
    return next(t for t in test_cells(source_nb) if t.check in CHEATS)


def _replace_body(source: str, function: str, body: str) -> str:
    """``source`` with the body of ``def function`` replaced by ``body`` ({0}.. = its argument names)."""
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    names = [a.arg for a in node.args.args]
    lines = source.splitlines()
    indent = " " * (node.col_offset + 4)
    new_body = [indent + line for line in body.format(*names).splitlines()]
    lines[node.body[0].lineno - 1 : node.end_lineno] = new_body
    return "\n".join(lines)


def _wrong_body(source: str, function: str) -> str:
    """The right function kept under another name; the one handed in is off by one."""
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    names = ", ".join(a.arg for a in node.args.args)
    lines = source.splitlines()
    lines[node.lineno - 1] = lines[node.lineno - 1].replace(f"def {function}(", f"def _right_{function}(", 1)
    wrapper = ["", "", f"def {function}({names}):", f"    return _right_{function}({names}) + 1"]
    lines[node.end_lineno : node.end_lineno] = wrapper
    return "\n".join(lines)


def solutions(source_nb, release_nb):
    """The release notebook, filled in with the book's solutions."""
    nb = copy.deepcopy(release_nb)
    by_id = {meta(c).get("grade_id"): c for c in source_nb.cells if meta(c).get("solution")}
    for cell in nb.cells:
        if meta(cell).get("solution"):
            cell.source = MARKERS.sub("", by_id[meta(cell)["grade_id"]].source)
    return nb


def _defining(nb, function: str):
    return next(
        c
        for c in nb.cells
        if meta(c).get("solution") and c.cell_type == "code" and f"def {function}(" in c.source
    )


def submission(kind: str, source_nb, release_nb):
    """The notebook a student of ``kind`` (one of :data:`KINDS`) hands in."""
    if kind == "blank":
        return copy.deepcopy(release_nb)
    nb = solutions(source_nb, release_nb)
    t = target(source_nb)
    cell = _defining(nb, t.function)
    if kind in ("wrong", "tampered"):
        cell.source = _wrong_body(cell.source, t.function)
    elif kind == "raises":
        cell.source = _replace_body(
            cell.source, t.function, 'raise ValueError("I have not finished this yet")'
        )
    elif kind == "loops":
        cell.source = _replace_body(cell.source, t.function, "while True:\n    pass")
        # ... and, in another cell of their own, an endless loop at the top level
        tested = {f"def {t.function}(" for t in test_cells(source_nb)}
        others = [
            c
            for c in nb.cells
            if meta(c).get("solution") and c.cell_type == "code" and not any(d in c.source for d in tested)
        ]
        if others:
            others[-1].source = "while True:\n    pass\n" + others[-1].source
    elif kind == "reference":
        cell.source = _replace_body(cell.source, t.function, CHEATS[t.check])
    if kind == "tampered":
        tests = [
            c
            for c in nb.cells
            if meta(c).get("grade") and not meta(c).get("solution") and c.cell_type == "code"
        ]
        mine = next(c for c in tests if meta(c)["grade_id"] == t.grade_id)
        mine.source = 'print("all tests passed")'  # made to pass
        others = [c for c in tests if c is not mine]
        if others:
            nb.cells.remove(others[-1])  # and a test of a right answer deleted
    return nb


def expected_failures(kind: str, source_nb) -> set[str]:
    """The grade_ids of the test cells that must score 0 for a student of ``kind``."""
    if kind == "solutions":
        return set()
    if kind == "blank":
        return {t.grade_id for t in test_cells(source_nb)}
    return {target(source_nb).grade_id}


def expected_score(kind: str, source_nb) -> float:
    """Autograded points: every test cell's points, less those that must fail (answers need a person)."""
    failing = expected_failures(kind, source_nb)
    return sum(t.points for t in test_cells(source_nb) if t.grade_id not in failing)


def max_score(source_nb) -> float:
    return sum(float(meta(c)["points"]) for c in source_nb.cells if meta(c).get("grade"))


def nbgrader(course: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    """Run one of nbgrader's own commands in the course directory; fail loudly with its output."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    done = subprocess.run(cmd, cwd=course, capture_output=True, text=True, timeout=timeout, env=environment())
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    return done


def environment() -> dict:
    """This environment, with the venv's scripts on PATH (nbgrader runs ``alembic`` from there)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return env


def hand_in(course: Path, chapter: str, student: str, nb) -> Path:
    """Place a submission where nbgrader's ``autograde`` looks: ``submitted/<student>/<chapter>/``."""
    path = course / "submitted" / student / chapter / f"{chapter}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path

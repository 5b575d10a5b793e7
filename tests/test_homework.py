"""dlt_lib.homework: chapters as nbgrader assignments, graded by nbgrader's own commands.

The fast tests read and convert notebooks.  The tests marked ``homework`` run
nbgrader itself (``generate_assignment``, ``validate``, ``autograde``,
``generate_feedback``, ``export``) on real chapters, with its SQLite gradebook:
they execute chapters many times, so ``make check`` leaves them out.
"""

from __future__ import annotations

import concurrent.futures
import csv
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import homework_class as hc
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dlt_lib.homework import __main__ as cli
from dlt_lib.homework.book import toc_notebooks
from dlt_lib.homework.exercises import CheckCall, check_calls, exercises, read_chapter
from dlt_lib.homework.grading import CellTimeouts
from dlt_lib.homework.myst import SolutionError, plain_markdown
from dlt_lib.homework.source import KEEP_TAG, Grading, assignment, hidden_seed, write_course

ROOT = Path(__file__).resolve().parents[1]
GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]+$")  # what nbgrader accepts


def _chapter():
    """A chapter with every form: a checked function, a prose-only exercise, code beyond the checks."""
    cells = [
        new_markdown_cell("# 9. A chapter\n\nSee {doc}`losses` and {ref}`the figure <fig-x>`."),
        new_code_cell(
            "from dlt_lib import check\nimport pytensor.tensor as pt", outputs=[], execution_count=3
        ),
        new_markdown_cell(
            "## Exercises\n\n```{exercise} Write the L1 penalty\n:label: ch-ex-l1\n\nWrite `my_l1(W)`.\n```\n\n"
            "```{solution-start} ch-ex-l1\n:class: dropdown\n```"
        ),
        new_code_cell(
            '# NBVAL_CHECK_OUTPUT\ndef my_l1(W):\n    """The L1 penalty of W."""\n    absolute = abs(W)\n'
            "    return pt.sum(absolute)\n\n\ndef helper(x):\n    return x + 1\n\n\nl1_result = check.l1_penalty(my_l1)\n"
            "print(helper(1))"
        ),
        new_code_cell("print(l1_result)"),
        new_code_cell(
            "def naive(W):\n    return pt.sum(W)\n\n\nprint(check.l1_penalty(naive))",
            metadata={"tags": [KEEP_TAG]},
        ),
        new_markdown_cell("The penalty is a sum of absolute values.\n\n```{solution-end}\n```"),
        new_markdown_cell("```{exercise} In words\n:label: ch-ex-words\n\nWhy?\n```"),
        new_markdown_cell("````{solution} ch-ex-words\n:class: dropdown\n\nBecause {math}`x`.\n````"),
        new_markdown_cell("```{exercise} Practice\n:label: ch-ex-practice\n\nPlot it.\n```"),
        new_markdown_cell("```{solution-start} ch-ex-practice\n```"),
        new_code_cell("plot_it()", metadata={"homework": {"timeout": 90}}),
        new_code_cell("def plotting_helper():\n    pass", metadata={"tags": [KEEP_TAG]}),
        new_markdown_cell("```{solution-end}\n```"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _by_id(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def test_reading_a_chapter_finds_exercises_solutions_and_checks():
    pairs = exercises(read_chapter(_chapter(), "synthetic"))
    assert [(e.label, e.title) for e, _ in pairs] == [
        ("ch-ex-l1", "Write the L1 penalty"),
        ("ch-ex-words", "In words"),
        ("ch-ex-practice", "Practice"),
    ]
    l1, words, practice = (s for _, s in pairs)
    # The kept cell demonstrates a wrong answer: its check is not graded.
    assert l1.checks == [CheckCall("l1_penalty", "my_l1")] and len(l1.code) == 3
    assert l1.prose == ["The penalty is a sum of absolute values."]
    assert words.prose == ["Because {math}`x`."] and words.code == []
    assert practice.checks == [] and len(practice.code) == 2


def test_source_notebook_cells():
    nb, timeouts = assignment(_chapter(), Grading(points={"ch-ex-practice": 0}), "synthetic")
    cells = _by_id(nb)
    # The statement: read-only Markdown Jupyter renders (no directive fences, no roles).
    statement = next(c for c in nb.cells if c.metadata.get("dlt_homework", {}).get("exercise") == "ch-ex-l1")
    assert statement.metadata["editable"] is False and statement.metadata["deletable"] is False
    assert "nbgrader" not in statement.metadata, (
        "nbgrader cannot restore a test deleted after a read-only cell"
    )
    assert (
        statement.source.startswith("### Exercise: Write the L1 penalty")
        and "{exercise}" not in statement.source
    )
    # The checked function: signature and docstring stay, the body is the solution; other code too.
    code = cells["ch-ex-l1-code-1"]
    assert code.metadata["nbgrader"]["solution"] and not code.metadata["nbgrader"]["grade"]
    assert "NBVAL" not in code.source and code.outputs == []
    assert code.source.startswith(
        'def my_l1(W):\n    """The L1 penalty of W."""\n    ### BEGIN SOLUTION\n    absolute'
    )
    assert "### BEGIN SOLUTION\ndef helper(x):\n    return x + 1\n### END SOLUTION" in code.source
    assert "\nl1_result = check.l1_penalty(my_l1)\n" in code.source, "the check call stays, for the student"
    assert "### BEGIN SOLUTION\nprint(helper(1))\n### END SOLUTION" in code.source
    assert "print(l1_result)" in [c.source for c in nb.cells], "a cell that only shows a check result is kept"
    assert any(c.source.endswith("print(check.l1_penalty(naive))") for c in nb.cells) and not any(
        "naive" in grade_id for grade_id in cells
    ), "a homework-keep cell is handed out as it is, its check not graded"
    # The test: strict, then hidden tests on other cases after reloading the checks.
    test = cells["ch-ex-l1-test-my_l1"]
    assert test.metadata["nbgrader"] == {
        "grade": True,
        "grade_id": "ch-ex-l1-test-my_l1",
        "locked": True,
        "points": 1.0,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    visible, hidden = test.source.split("### BEGIN HIDDEN TESTS\n")
    assert "print(check.l1_penalty(my_l1, strict=True))" in visible
    assert "importlib.reload(dlt_lib.check)" in hidden and hidden.rstrip().endswith("### END HIDDEN TESTS")
    assert f"check.l1_penalty(my_l1, seed={hidden_seed('ch-ex-l1', 'my_l1')}, strict=True)" in hidden
    # Code beyond the check (helper) and prose: a manually graded answer with the book's text.
    answer = cells["ch-ex-l1-answer"]
    assert answer.cell_type == "markdown" and answer.metadata["nbgrader"]["grade"]
    assert (
        answer.metadata["nbgrader"]["solution"]
        and answer.source == "The penalty is a sum of absolute values."
    )
    assert cells["ch-ex-words-answer"].source == "Because $x$."
    # Not graded: the solution's code is stubbed for practice, no test, no answer; the KEEP cell stays as is.
    assert (
        not cells["ch-ex-practice-code-1"].metadata["nbgrader"]["grade"]
        and "ch-ex-practice-answer" not in cells
    )
    assert "def plotting_helper():\n    pass" in [c.source for c in nb.cells]
    assert timeouts == {"ch-ex-practice-code-1": 90.0}
    assert all(GRADE_ID.match(g) for g in cells)
    nbformat.validate(nb)


def test_points_from_a_lecturers_file(tmp_path):
    path = tmp_path / "homework.yml"
    path.write_text("tests: 2\npoints:\n  ch-ex-l1: {tests: 5, answer: 0}\n  ch-ex-words: 0\n")
    nb, _ = assignment(_chapter(), Grading.from_file(path))
    points = {
        g: c.metadata["nbgrader"].get("points")
        for g, c in _by_id(nb).items()
        if c.metadata["nbgrader"]["grade"]
    }
    assert points == {
        "ch-ex-l1-test-my_l1": 5.0,
        "ch-ex-practice-code-1": 1.0,
    }  # no prose: the code is the answer
    path.write_text("point: 3\n")
    with pytest.raises(ValueError, match="unknown keys"):
        Grading.from_file(path)


@pytest.mark.parametrize(
    "source, calls",
    [
        ("print(check.zero_one_loss(f))", [CheckCall("zero_one_loss", "f")]),
        (
            "r = [check.l1_penalty(a), check.l2_penalty(b, seed=2)]",
            [CheckCall("l1_penalty", "a"), CheckCall("l2_penalty", "b")],
        ),
        ("import dlt_lib\ndlt_lib.check.sgd_step(step)", [CheckCall("sgd_step", "step")]),
        ("check.sgd_step(lambda p, g, lr: p)", []),  # nothing to test separately: no autograded cell
        ("%time check.sgd_step(step)", []),
        ("def f(:", []),
    ],
)
def test_check_calls(source, calls):
    assert check_calls(source) == calls


@pytest.mark.parametrize(
    "cells, message",
    [
        (["```{solution-start} a\n```"], "has no {solution-end}"),
        (["```{solution-end}\n```"], "without a {solution-start}"),
        (
            ["```{exercise} x\n:label: a\n```\n```{solution-start} a\n```", "```{solution-start} b\n```"],
            "inside",
        ),
        (["```{solution-start} a\n```", "```{solution-end}\n```"], "before any exercise"),
        (["```{exercise} Never closed\n:label: a\n"], "never closed"),
    ],
)
def test_malformed_chapters_fail_loudly(cells, message):
    with pytest.raises(SolutionError, match=re.escape(message)):
        read_chapter(new_notebook(cells=[new_markdown_cell(c) for c in cells]), "broken")


def test_plain_markdown_roles():
    text = "{doc}`losses`, {ref}`the table <tab-x>`, {math}`\\theta`, {glue:text}`err`, {cite:p}`lecun98`"
    assert (
        plain_markdown(text) == "`losses`, `the table`, $\\theta$, *(err, computed in the book)*, `lecun98`"
    )


def test_cell_timeouts(tmp_path):
    (tmp_path / "homework_timeouts.json").write_text(json.dumps({"ch": {"ex-code-1": 90}}))
    limits = CellTimeouts.from_course(tmp_path, student=10, other=300)

    def cell(kind, **nbgrader):
        return {"cell_type": kind, "metadata": {"nbgrader": nbgrader} if nbgrader else {}}

    assert limits(cell("code", solution=True, grade=False, grade_id="ex-code-2")) == 10
    assert limits(cell("code", solution=True, grade=False, grade_id="ex-code-1")) == 90
    assert limits(cell("code", grade=True, solution=False, grade_id="ex-test-f")) == 300
    assert limits(cell("code")) == 300


def _book():
    return [p for p in toc_notebooks(ROOT / "_toc.yml")]


@pytest.mark.parametrize("path", _book(), ids=lambda p: p.stem)
def test_every_chapter_converts(path):
    """Each check call of a solution gets a test; the source is valid; no directive is left over."""
    nb = nbformat.read(path, as_version=4)
    items = read_chapter(nb, path.name)
    out, _ = assignment(nb, name=path.name)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in out.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)) and all(GRADE_ID.match(i) for i in ids)
    for exercise, solution in exercises(items):
        for call in solution.checks if solution else []:
            assert f"{exercise.label}-test-{call.function}" in ids
    for cell in out.cells:
        assert "{solution" not in cell.source
        assert cell.source.count("### BEGIN SOLUTION") == cell.source.count("### END SOLUTION")
    nbformat.validate(out)


def test_command_line(tmp_path, capsys):
    chapter = tmp_path / "ch.ipynb"
    nbformat.write(_chapter(), chapter)
    course = tmp_path / "course"
    assert cli.main(["source", str(chapter), "--course", str(course)]) == 0
    assert "4 graded cells, 4 points" in capsys.readouterr().out
    assert (course / "source" / "ch" / "ch.ipynb").exists()
    config = (course / "nbgrader_config.py").read_text()
    assert "CellTimeouts.from_course" in config and "DLT_OFFLINE" in config
    # nbclient's 4 s for late output failed whole submissions on a busy machine
    assert "c.Execute.iopub_timeout = 60" in config
    (course / "nbgrader_config.py").write_text(config + "# my own line\n")
    assert cli.main(["source", str(chapter), "--course", str(course)]) == 0
    assert "# my own line" in (course / "nbgrader_config.py").read_text(), "a lecturer's config is kept"

    broken = tmp_path / "broken.ipynb"
    nbformat.write(new_notebook(cells=[new_markdown_cell("```{solution-start} x\n```")]), broken)
    assert cli.main(["source", str(chapter), str(broken), "--course", str(tmp_path / "other")]) == 1
    assert "Nothing was written" in capsys.readouterr().err and not (tmp_path / "other").exists()
    with pytest.raises(SystemExit, match="no chapter 'nonsense'"):
        cli.main(["source", "nonsense", "--course", str(course)])

    # Without nbgrader: the same reading of the exercises, solutions removed.
    assert cli.main(["student-copy", str(chapter), "--out", str(tmp_path / "handout")]) == 0
    handout = nbformat.read(tmp_path / "handout" / "ch.ipynb", as_version=4)
    assert "return pt.sum(absolute)" not in "".join(c.source for c in handout.cells)


# --- nbgrader itself -------------------------------------------------------------

# Two of the fastest chapters whose exercises have autograded functions (getting_started has none
# since the reader pass): losses has two tests, so a wrong answer scores between 0 and full marks;
# early_stopping's function takes integers, not a graph (validation_frequency).
CLASS_CHAPTERS = ["losses", "early_stopping"]


def _course(tmp_path: Path, chapters: list[str], **grading) -> Path:
    course = tmp_path / "course"
    course.parent.mkdir(parents=True, exist_ok=True)
    write_course(course, [ROOT / "book" / f"{c}.ipynb" for c in chapters], Grading(**grading))
    return course


def _text(path: Path) -> str:
    """An HTML file's text, as a reader sees it."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", path.read_text())).split())


@pytest.mark.homework
def test_release_holds_no_solutions_hidden_tests_or_outputs(tmp_path):
    course = _course(tmp_path, ["losses"])
    hc.nbgrader(course, "generate_assignment", "losses")
    source = nbformat.read(course / "source" / "losses" / "losses.ipynb", as_version=4)
    release = nbformat.read(course / "release" / "losses" / "losses.ipynb", as_version=4)
    text = "\n".join(c.source for c in release.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "seed=" not in text
    assert "return -pt.mean(pt.log(p_y_given_x)[pt.arange(y.shape[0]), y])" not in text
    assert "raise NotImplementedError()" in text and "YOUR ANSWER HERE" in text
    assert all(not c.get("outputs") for c in release.cells if c.cell_type == "code")
    assert len(release.cells) == len(source.cells)


def _grade_class(tmp_path: Path, chapter: str) -> dict:
    """One chapter's course: release, seven students hand in, autograde, feedback, export; what to expect."""
    course = _course(tmp_path / chapter, [chapter], student_cell_timeout=10)
    hc.nbgrader(course, "generate_assignment", chapter)
    source = nbformat.read(course / "source" / chapter / f"{chapter}.ipynb", as_version=4)
    release = nbformat.read(course / "release" / chapter / f"{chapter}.ipynb", as_version=4)
    assert any(t.check in hc.CHEATS for t in hc.test_cells(source)), (
        f"{chapter} has no autograded function any more: choose another chapter for CLASS_CHAPTERS"
    )
    expected = {}
    for kind in hc.KINDS:
        hc.hand_in(course, chapter, kind, hc.submission(kind, source, release))
        expected[chapter, kind] = (hc.expected_score(kind, source), hc.max_score(source))
    hc.nbgrader(course, "autograde", chapter)
    _check_cell_scores(course, chapter, source)
    hc.nbgrader(course, "generate_feedback", chapter)
    _check_feedback(course, chapter)
    hc.nbgrader(course, "export", "--to", "grades.csv")
    with open(course / "grades.csv") as f:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}
    assert set(rows) == set(expected)
    for key, (score, max_score) in expected.items():
        assert float(rows[key]["score"]) == pytest.approx(score), key
        assert float(rows[key]["max_score"]) == pytest.approx(max_score), key
    return expected


@pytest.mark.homework
def test_a_class_is_graded_exactly(tmp_path):
    """Seven kinds of students, two chapters: nbgrader's scores, feedback and gradebook CSV.

    One course per chapter, graded side by side (one per core).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda chapter: _grade_class(tmp_path, chapter), CLASS_CHAPTERS))
    expected = {k: v for r in results for k, v in r.items()}
    assert (
        expected["losses", "solutions"][0]
        > expected["losses", "wrong"][0]
        > expected["losses", "blank"][0]
        == 0
    )


def _check_cell_scores(course: Path, chapter: str, source) -> None:
    """Per test cell, from nbgrader's gradebook: full points unless the student's kind must fail it."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for kind in hc.KINDS:
            failing = hc.expected_failures(kind, source)
            for test in hc.test_cells(source):
                grade = gradebook.find_grade(test.grade_id, chapter, chapter, kind)
                want = 0 if test.grade_id in failing else test.points
                assert grade.score == want, (chapter, kind, test.grade_id, grade.score)
            submission = gradebook.find_submission_notebook(chapter, chapter, kind)
            # Written answers wait for a person, except blank ones (nbgrader scores those 0 itself).
            answers = any(hc.meta(c).get("grade") and hc.meta(c).get("solution") for c in source.cells)
            assert submission.needs_manual_grade == (answers and kind != "blank"), (chapter, kind)


def _check_feedback(course: Path, chapter: str) -> None:
    feedback = {kind: _text(course / "feedback" / kind / chapter / f"{chapter}.html") for kind in hc.KINDS}
    for kind, text in feedback.items():
        assert f"{chapter} (Score:" in text and "HIDDEN TESTS" not in text and "seed=" not in text, kind
    assert "your function raised ValueError: I have not finished this yet" in feedback["raises"]
    assert "did not finish within" in feedback["loops"] and "CellTimeoutError" in feedback["loops"]
    assert "library's own answer" in feedback["reference"]
    assert "all tests passed" not in feedback["tampered"] and "expected" in feedback["tampered"]
    assert "expected" in feedback["wrong"] and "NotImplementedError" in feedback["blank"]
    assert "✔" in feedback["solutions"] and "✘" not in feedback["solutions"]


@pytest.mark.homework
def test_nbgrader_is_installed_beside_jupyter_book():
    """The book's tools and nbgrader share one environment: pip finds no conflict."""
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert shutil.which("nbgrader", path=str(Path(sys.executable).parent)) is not None


def test_nbgrader_0_9_6_is_required_by_pip_and_conda():
    """Lecturers install nbgrader with the book; Binder too (so the appendix's commands work there)."""
    from test_packaging import conda_requirements, environment, pip_requirements

    pip = pip_requirements()["nbgrader"].specifier
    assert pip.contains("0.9.6") and not pip.contains("0.9.5")
    assert "nbgrader" in conda_requirements(), "test_packaging checks that the two ranges agree"
    python = next(d for d in environment()["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace(" ", "") == "python>=3.11", "nbgrader 0.9.6 needs Python 3.11"

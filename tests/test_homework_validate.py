"""Every chapter as homework: ``nbgrader validate`` passes the solutions and scores the blank copy zero.

In a file of its own so that ``make test`` (one pytest process per CPU, whole
files per process) runs it beside ``tests/test_homework.py``'s class test:
the two execute chapters dozens of times between them.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
from pathlib import Path

import homework_class as hc
import nbformat
import pytest

from dlt_lib.homework.book import toc_notebooks
from dlt_lib.homework.exercises import exercises, read_chapter
from dlt_lib.homework.source import Grading, write_course

ROOT = Path(__file__).resolve().parents[1]


def _validate(course: Path, notebook: Path, invert: bool) -> str:
    cmd = [sys.executable, "-m", "nbgrader", "validate", str(notebook), *(["--invert"] if invert else [])]
    done = subprocess.run(cmd, cwd=course, capture_output=True, text=True, timeout=1200, env=hc.environment())
    return done.stdout + done.stderr


def _blank_scores_zero_without_running(release) -> bool:
    """True when the release has no autograded test cell and every graded cell is an unanswered answer.

    nbgrader scores an answer cell a student left as released 0 by itself (the class test in
    ``tests/test_homework.py`` sees it do so), so such a release scores 0 blank without executing it.
    """
    graded = [hc.meta(c) for c in release.cells if hc.meta(c).get("grade")]
    return all(m.get("solution") for m in graded)


@pytest.mark.homework
def test_every_chapter_validates_with_solutions_and_scores_zero_blank(tmp_path):
    """``nbgrader validate``: the source (solutions) passes every test, the release (blank) none.

    Two notebooks at a time, one per core.  A release whose only graded cells are written
    answers (no autograded test) scores 0 blank by construction: it is checked without
    executing it, which saves executing six chapters once more.
    """
    book = toc_notebooks(ROOT / "_toc.yml")
    chapters = [p for p in book if exercises(read_chapter(nbformat.read(p, as_version=4), p.name))]
    course = tmp_path / "course"
    write_course(course, chapters, Grading())
    chapters = [p.stem for p in chapters]
    jobs = {}
    executed_blank = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for chapter in chapters:
            hc.nbgrader(course, "generate_assignment", chapter)
            source = course / "source" / chapter / f"{chapter}.ipynb"
            blank = course / "release" / chapter / f"{chapter}.ipynb"
            jobs[chapter, "solutions"] = pool.submit(_validate, course, source, False)
            if not _blank_scores_zero_without_running(nbformat.read(blank, as_version=4)):
                jobs[chapter, "blank"] = pool.submit(_validate, course, blank, True)
                executed_blank.append(chapter)
    # The chapters whose exercises have autograded functions are executed blank.
    assert {"losses", "regularization", "softmax_regression", "mlp", "lenet"} <= set(executed_blank)
    failures = []
    for (chapter, kind), job in jobs.items():
        out = job.result()
        want = (
            "Success! Your notebook passes all the tests."
            if kind == "solutions"
            else ("Success! The notebook does not pass any tests.")
        )
        if want not in out:
            failures.append(f"{chapter} ({kind}):\n{out[-3000:]}")
    assert not failures, "\n\n".join(failures)

"""Time nbgrader grading a class: 30 submissions of one chapter, against the chapter's own run time.

    DLT_OFFLINE=1 .venv/bin/python benchmarks/bench_homework.py --chapter losses --students 30

Builds a course with ``python -m dlt_lib.homework source``, releases the
chapter with ``nbgrader generate_assignment``, hands in ``--students``
submissions (the kinds of ``tests/homework_class.py`` in turn: solutions,
blank, wrong, raises, loops forever, tampered, calls the library's answer),
then grades them with ``nbgrader autograde`` one student per call, timing each
call, and the whole class with one call.  In the same run it times the
chapter itself (the filled-in notebook executed by ``jupyter nbconvert``),
so the budget -- grading one submission takes at most the chapter's
execution time + 10 s -- is read from numbers measured side by side.  It
prints the load average before and after: on a busy machine every number
grows, the differences less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import homework_class as hc  # noqa: E402

from dlt_lib.homework.source import Grading, write_course  # noqa: E402


def _timed(cmd, cwd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=hc.environment())
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapter", default="losses")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3, help="executions of the chapter to time (median)")
    parser.add_argument("--whole", action="store_true", help="also grade the whole class in one call")
    args = parser.parse_args(argv)
    os.environ.setdefault("DLT_OFFLINE", "1")
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} cores")
    work = Path(tempfile.mkdtemp(prefix="bench-homework-"))
    try:
        course, chapter = work / "course", args.chapter
        write_course(course, [ROOT / "book" / f"{chapter}.ipynb"], Grading())
        hc.nbgrader(course, "generate_assignment", chapter)
        source = nbformat.read(course / "source" / chapter / f"{chapter}.ipynb", as_version=4)
        release = nbformat.read(course / "release" / chapter / f"{chapter}.ipynb", as_version=4)
        filled = work / "filled.ipynb"
        nbformat.write(hc.solutions(source, release), filled)
        execute = [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=600",
            "--output",
            str(work / "executed.ipynb"),
            str(filled),
        ]
        chapter_times = [_timed(execute, work) for _ in range(args.runs)]
        chapter_s = statistics.median(chapter_times)
        print(
            f"{chapter}: executing the filled-in notebook: median {chapter_s:.1f} s of {args.runs} "
            f"({', '.join(f'{t:.1f}' for t in chapter_times)})"
        )

        students = [f"s{i:02d}-{hc.KINDS[i % len(hc.KINDS)]}" for i in range(args.students)]
        for student in students:
            hc.hand_in(course, chapter, student, hc.submission(student.split("-", 1)[1], source, release))
        per_kind: dict[str, list[float]] = {}
        for student in students:
            t = _timed([sys.executable, "-m", "nbgrader", "autograde", chapter, "--student", student], course)
            per_kind.setdefault(student.split("-", 1)[1], []).append(t)
        total = sum(sum(v) for v in per_kind.values())
        print(
            f"autograde, one call per student: {total:.0f} s for {args.students} submissions "
            f"({total / args.students:.1f} s each)"
        )
        for kind, times in per_kind.items():
            worst = max(times)
            print(
                f"  {kind:10s} median {statistics.median(times):5.1f} s, worst {worst:5.1f} s = chapter "
                f"{'+' if worst >= chapter_s else '-'}{abs(worst - chapter_s):.1f} s"
            )
        if args.whole:
            shutil.rmtree(course / "autograded")
            whole = _timed([sys.executable, "-m", "nbgrader", "autograde", chapter, "--force"], course)
            print(
                f"autograde, the whole class in one call: {whole:.0f} s ({whole / args.students:.1f} s each)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

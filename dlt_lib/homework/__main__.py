"""``python -m dlt_lib.homework``: the book's chapters as homework.

    python -m dlt_lib.homework source [CHAPTER ...] [--course DIR] [--points homework.yml]
    python -m dlt_lib.homework student-copy [NOTEBOOK ...] [--out DIR]

``source`` writes nbgrader source assignments (``DIR/source/<chapter>/<chapter>.ipynb``
and ``DIR/nbgrader_config.py``); then, in ``DIR``, nbgrader's own commands:
``nbgrader generate_assignment <chapter>``, ``nbgrader autograde <chapter>``,
``nbgrader generate_feedback <chapter>``, ``nbgrader export``.  ``student-copy``
writes the notebooks without solutions, for a lecturer without nbgrader.
The book's appendix for lecturers says more.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlt_lib.homework import student_copy
from dlt_lib.homework.book import toc_notebooks
from dlt_lib.homework.exercises import exercises, read_chapter
from dlt_lib.homework.myst import SolutionError
from dlt_lib.homework.source import Grading, write_course


def _chapters(names: list[str]) -> list[Path]:
    """Notebooks by chapter name (``losses``) or path; default every chapter with an exercise."""
    listed = {p.stem: p for p in toc_notebooks()}
    if not names:
        import nbformat

        return [p for p in listed.values() if exercises(read_chapter(nbformat.read(p, as_version=4), str(p)))]
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.exists():
            chosen.append(path)
        elif name in listed:
            chosen.append(listed[name])
        else:
            raise SystemExit(f"error: no chapter {name!r}; the chapters are: {', '.join(listed)}")
    return chosen


def _source(args) -> int:
    try:
        grading = Grading.from_file(args.points) if args.points else Grading()
        written = write_course(args.course, _chapters(args.chapters), grading, force_config=args.force_config)
    except (SolutionError, ValueError, OSError) as exc:
        print(f"error: {exc}\nNothing was written.", file=sys.stderr)
        return 1
    for chapter, nb in written.items():
        graded = [c.metadata["nbgrader"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        points = sum(m["points"] for m in graded)
        print(
            f"{args.course / 'source' / chapter / (chapter + '.ipynb')}: {len(graded)} graded cells, {points:g} points"
        )
        for line in _exercise_points(nb):
            print(f"  {line}")
    print(f"next: cd {args.course} && nbgrader generate_assignment <chapter>")
    return 0


def _exercise_points(nb) -> list[str]:
    """One line per exercise: its label (for homework.yml) and what it is graded on."""
    lines = []
    for cell in nb.cells:
        label = cell.metadata.get("dlt_homework", {}).get("exercise")
        meta = cell.metadata.get("nbgrader", {})
        if label:
            lines.append([label])
        elif meta.get("grade") and lines:
            lines[-1].append(f"{'answer' if meta.get('solution') else 'test'} {meta['points']:g}")
    return [f"{label}: " + (", ".join(parts) or "not graded") for label, *parts in lines]


def main(argv=None) -> int:
    """The command line.  Taught in ``book/homework.md`` (the appendix for lecturers)."""
    parser = argparse.ArgumentParser(prog="python -m dlt_lib.homework", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    source = commands.add_parser("source", help="write nbgrader source assignments into a course directory")
    source.add_argument("chapters", nargs="*", help="chapter names or notebooks (default: every chapter)")
    source.add_argument(
        "--course", type=Path, default=Path("course"), help="course directory (default: course/)"
    )
    source.add_argument("--points", type=Path, help="a homework.yml choosing exercises and points")
    source.add_argument("--force-config", action="store_true", help="rewrite an existing nbgrader_config.py")
    copy = commands.add_parser("student-copy", help="notebooks without solutions (no nbgrader)")
    copy.add_argument("notebooks", nargs="*", help="(default: every notebook in _toc.yml)")
    copy.add_argument("--out", default="student", help="folder for the copies (default: student/)")
    args = parser.parse_args(argv)
    if args.command == "source":
        return _source(args)
    return student_copy.main([*args.notebooks, "--out", args.out])


if __name__ == "__main__":
    sys.exit(main())

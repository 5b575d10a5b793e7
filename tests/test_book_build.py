"""``scripts/jupyter_book_build.py``: the chapters go to Sphinx's processes longest first.

The script hands Sphinx one chapter per task in an order that depends on how
``sphinx.util.parallel.ParallelTasks`` starts waiting tasks; this runs the
real ``ParallelTasks`` (forked processes) to check that the chapters start
in the intended order with the installed Sphinx.
"""

import time
from pathlib import Path

import pytest
from support import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def build_script():
    return load_script("jupyter_book_build")


def _toc_chapters():
    from dlt_lib.homework.book import toc_notebooks

    return [path.stem for path in toc_notebooks(ROOT / "_toc.yml")]


def test_every_chapter_of_the_toc_has_a_place_in_the_order(build_script):
    assert sorted(build_script.LONGEST_FIRST) == sorted(_toc_chapters())


def test_sphinx_starts_the_chapters_longest_first(build_script, tmp_path):
    from sphinx.util.parallel import ParallelTasks

    docnames = sorted(["book/intro", "book/homework", *(f"book/{name}" for name in _toc_chapters())])
    chunks = build_script.one_chapter_per_task(docnames, 2)
    assert sorted(doc for chunk in chunks for doc in chunk) == docnames
    assert all(len(chunk) == 1 for chunk in chunks)

    def start(chunk):  # runs in a forked process
        (tmp_path / chunk[0].replace("/", "_")).write_text(repr(time.monotonic()))
        time.sleep(0.05)

    tasks = ParallelTasks(2)
    for chunk in chunks:
        tasks.add_task(start, chunk)
    tasks.join()
    started = sorted(docnames, key=lambda doc: float((tmp_path / doc.replace("/", "_")).read_text()))
    expected = [f"book/{name}" for name in build_script.LONGEST_FIRST]
    # The first two start together; after them, the order is exact.
    assert set(started[:2]) == set(expected[:2])
    assert started[2 : len(expected)] == expected[2:]
    assert set(started[len(expected) :]) == {"book/intro", "book/homework"}

"""``scripts/jupyter_book_build.py``: the chapters go to Sphinx's processes longest first.

The script hands Sphinx one chapter per task in an order that depends on how
``sphinx.util.parallel.ParallelTasks`` starts waiting tasks; this runs the
real ``ParallelTasks`` (forked processes) to check that the chapters start
in the intended order with the installed Sphinx.
"""

import json
import os
import subprocess
import sys
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


# Runs in a fresh interpreter: ParallelTasks forks, and a pytest process may
# hold threads (JAX's, imported by other tests) that a forked child must not inherit.
# The order is recorded in the parent, where ParallelTasks starts each process,
# not by timestamps in the children (two children started a moment apart may
# run in either order).  The children wait until every task has been added, as
# Sphinx's chapters (many seconds each) do in a real build.
START_ORDER = """
import json, sys, time
from multiprocessing.context import ForkProcess
from pathlib import Path
from sphinx.util.parallel import ParallelTasks
from support import load_script

go, docnames = Path(sys.argv[1]) / "go", json.loads(sys.argv[2])
chunks = load_script("jupyter_book_build").one_chapter_per_task(docnames, 2)

started = []
fork_start = ForkProcess.start
def record_start(process):
    started.append(process._args[2][0])  # Process(target, args=(pipe, func, chunk))
    fork_start(process)
ForkProcess.start = record_start

def read(chunk):  # in a forked process
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)

tasks = ParallelTasks(2)
for chunk in chunks:
    tasks.add_task(read, chunk)
go.touch()
tasks.join()
print(json.dumps({"chunks": chunks, "started": started}))
"""


def test_sphinx_starts_the_chapters_longest_first(build_script, tmp_path):
    docnames = sorted(["book/intro", "book/homework", *(f"book/{name}" for name in _toc_chapters())])
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    )
    run = subprocess.run(
        [sys.executable, "-c", START_ORDER, str(tmp_path), json.dumps(docnames)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    chunks, started = result["chunks"], result["started"]
    assert sorted(doc for chunk in chunks for doc in chunk) == docnames
    assert all(len(chunk) == 1 for chunk in chunks)
    expected = [f"book/{name}" for name in build_script.LONGEST_FIRST]
    assert started[: len(expected)] == expected
    assert set(started[len(expected) :]) == {"book/intro", "book/homework"}

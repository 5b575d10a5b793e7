"""``jupyter-book build``, reading (and so executing) several chapters at once.

Jupyter Book 1's ``build_sphinx`` takes Sphinx's ``parallel`` (``jobs``), but its
command line has no flag for it, so a build executes the chapters one after the
other.  Executing them is nearly all of a build, and the chapters are
independent: this runs the same command with ``jobs`` set, from ``BOOK_JOBS``
(default: twice the number of CPUs).  Everything else is ``jupyter-book build``'s own.

    python scripts/jupyter_book_build.py build . --builder html -W --keep-going

Why these settings (each measured on 2 cores; the README has the numbers):

- **Twice as many chapters as CPUs.**  PyTensor compiles one C module at a
  time per compile directory (a file lock around each g++ run), so in a
  cold build a chapter often waits for another chapter's compile, and its
  CPU idles.  With more chapters in flight, one of them is computing while
  the others wait.  A warm build loses nothing by it: the chapters' kernels
  each use one BLAS thread (below).  Each chapter is a kernel in memory:
  set ``BOOK_JOBS`` lower on a machine short of it.
- **One chapter per task, longest first.**  Sphinx gives each process a fixed
  run of documents in alphabetical order (on 2 processes: 7, 7 and 1
  chapters), so one process can be left with the long chapters.  Here each
  chapter is its own task, longest first, and a process that finishes takes
  the next one.
- **CPUs / jobs BLAS threads per kernel** (at least one), so that the chapters
  read side by side do not oversubscribe the CPUs.  A variable you set
  yourself wins.
"""

import functools
import os
import sys

import jupyter_book.sphinx
import sphinx.builders
from jupyter_book.cli.main import main

# Chapters by their execution time in a whole-book cold build, longest first
# (7b86609, two at a time: lenet 144 s, backends 98, mlp 87, softmax 61, ...).
# A chapter read early compiles the modules it shares with later ones, so
# this is not the order of the README's per-chapter table, which times each
# chapter alone.  tests/test_book_build.py checks that every chapter of
# _toc.yml is here; documents not listed (intro, homework) go last.
LONGEST_FIRST = (
    "lenet",
    "backends",
    "mlp",
    "softmax_regression",
    "losses",
    "gradient_descent",
    "regularization",
    "hyperparameters",
    "dataset",
    "getting_started",
    "putting_it_together",
    "early_stopping",
    "saving_and_plotting",
)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def one_chapter_per_task(docnames, nproc, maxbatch=None):
    """Replaces ``sphinx.util.parallel.make_chunks``: one document per task, longest first.

    Same signature as ``make_chunks``; ``maxbatch`` (documents per task) has no
    use here, since every task is one chapter.

    ``ParallelTasks`` starts the first ``nproc`` tasks at once and then takes
    the waiting ones last-in first-out, so the tasks are handed over in the
    order that makes it start them longest first.
    """

    def rank(docname):
        stem = docname.rsplit("/", 1)[-1]
        return LONGEST_FIRST.index(stem) if stem in LONGEST_FIRST else len(LONGEST_FIRST)

    ordered = [[name] for name in sorted(docnames, key=rank)]
    return ordered[:nproc] + ordered[nproc:][::-1]


if __name__ == "__main__":
    jobs = int(os.environ.get("BOOK_JOBS") or 2 * (os.cpu_count() or 1))
    if jobs > 1:
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        for name in THREAD_VARIABLES:
            os.environ.setdefault(name, threads)
        # _read_parallel looks make_chunks up in this module when it runs.
        sphinx.builders.make_chunks = one_chapter_per_task
    # The CLI imports build_sphinx from this module when it runs, so it gets this one.
    jupyter_book.sphinx.build_sphinx = functools.partial(jupyter_book.sphinx.build_sphinx, jobs=jobs)
    sys.exit(main())

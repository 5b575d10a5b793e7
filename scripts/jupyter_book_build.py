"""``jupyter-book build``, reading (and so executing) several chapters at once.

Jupyter Book 1's ``build_sphinx`` takes Sphinx's ``parallel`` (``jobs``), but its
command line has no flag for it, so a build executes the chapters one after the
other.  Executing them is nearly all of a build, and the chapters are
independent: this runs the same command with ``jobs`` set, from ``BOOK_JOBS``
(default: the number of CPUs).  Everything else is ``jupyter-book build``'s own.

    python scripts/jupyter_book_build.py build . --builder html -W --keep-going
"""

import functools
import os
import sys

import jupyter_book.sphinx
from jupyter_book.cli.main import main

if __name__ == "__main__":
    jobs = int(os.environ.get("BOOK_JOBS") or os.cpu_count() or 1)
    # The CLI imports build_sphinx from this module when it runs, so it gets this one.
    jupyter_book.sphinx.build_sphinx = functools.partial(jupyter_book.sphinx.build_sphinx, jobs=jobs)
    sys.exit(main())

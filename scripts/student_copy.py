"""Copies of the notebooks without the solutions, for lecturers without nbgrader.

The same as ``python -m dlt_lib.homework student-copy`` (the code lives in
``dlt_lib/homework/student_copy.py``); see the book's appendix for lecturers,
and ``python -m dlt_lib.homework source`` for homework that grades itself.
"""

import sys

from dlt_lib.homework.student_copy import *  # noqa: F403 - this script is that module
from dlt_lib.homework.student_copy import main

if __name__ == "__main__":
    sys.exit(main())

"""The book's chapters as homework that grades itself, with nbgrader.

``python -m dlt_lib.homework source`` turns chapters into nbgrader source
assignments; nbgrader's own commands do the rest (release, collect, autograde,
feedback, gradebook).  Modules:

- :mod:`.myst`: reading the exercise and solution directives of a chapter;
- :mod:`.exercises`: a chapter as prose, code, exercises and solutions;
- :mod:`.source`: an nbgrader source notebook and the course directory;
- :mod:`.grading`: per-cell time limits for nbgrader's configuration;
- :mod:`.student_copy`: the notebooks without solutions (no nbgrader);
- :mod:`.book`: where the book and its table of contents are.

Chapter: the appendix for lecturers (``book/homework.md``).
"""

"""What nbgrader's configuration needs from the book when it grades: time limits per cell.

nbgrader runs a submission cell by cell, with one time limit for all cells
unless given a function of the cell (``c.Execute.timeout_func``).  A student's
endless loop should cost seconds, not the limit a chapter's training cell
needs, so students' code cells (nbgrader *solution* cells) get a short limit,
every other cell a long one.  A cell that runs past its limit is interrupted,
shows a ``CellTimeoutError`` in the feedback, and the notebook goes on: only
that cell's tests lose their points.
"""

from __future__ import annotations

import json
from pathlib import Path

from dlt_lib.homework.source import TIMEOUTS_FILE


class CellTimeouts:
    """``timeout_func`` for nbgrader: seconds a cell may run, from its nbgrader metadata.

    ``student`` for students' code cells, ``other`` for the rest; ``cells`` maps
    a solution cell's ``grade_id`` to a longer limit (a chapter asks for it
    with ``"homework": {"timeout": seconds}`` in the cell's metadata).

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """

    def __init__(self, student: float = 30, other: float = 300, cells: dict | None = None):
        self.student, self.other, self.cells = student, other, dict(cells or {})

    @classmethod
    def from_course(cls, course: str | Path, **limits) -> CellTimeouts:
        """Read the per-cell limits ``python -m dlt_lib.homework source`` wrote into the course directory."""
        path = Path(course) / TIMEOUTS_FILE
        per_chapter = json.loads(path.read_text()) if path.exists() else {}
        cells = {grade_id: t for chapter in per_chapter.values() for grade_id, t in chapter.items()}
        return cls(cells=cells, **limits)

    def __call__(self, cell) -> int:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("solution") and not meta.get("grade"):
            return int(round(self.cells.get(meta.get("grade_id"), self.student)))
        return int(round(self.other))

    def __repr__(self) -> str:
        return f"CellTimeouts(student={self.student}, other={self.other}, cells={self.cells})"

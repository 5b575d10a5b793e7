"""The book's table of contents, read from ``_toc.yml`` in one place.

Jupyter Book 1's ``jb-book`` format: a ``root`` file, then ``chapters``
(each may have ``sections``), or ``parts`` holding chapters.  Entries are
paths from the repository root without a suffix (``book/losses``).  The
tests, ``scripts/student_copy.py`` and the browser tests all read the book's
files from here (``python -c "import book_toc; print(book_toc.entries())"``
from ``scripts/``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC = ROOT / "_toc.yml"


def entries(toc: Path = TOC) -> list[str]:
    """Every file the table of contents lists, in reading order (``["book/intro", "book/getting_started", ...]``)."""
    data = yaml.safe_load(Path(toc).read_text())
    if data.get("format") != "jb-book":
        raise ValueError(f"{toc}: expected 'format: jb-book' (Jupyter Book 1), got {data.get('format')!r}")
    found = [data["root"]]

    def walk(items):
        for item in items or []:
            if "file" in item:
                found.append(item["file"])
            walk(item.get("sections"))

    walk(data.get("chapters"))
    for part in data.get("parts") or []:
        walk(part.get("chapters"))
    return found


def notebooks(toc: Path = TOC) -> list[Path]:
    """The notebooks among :func:`entries` that exist, in reading order (Markdown pages are left out)."""
    paths = [Path(toc).parent / f"{entry}.ipynb" for entry in entries(toc)]
    return [path for path in paths if path.exists()]

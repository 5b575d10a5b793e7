"""Where the book is, and which notebooks its table of contents lists."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def book_root(start: Path | None = None) -> Path:
    """The folder holding ``_toc.yml``: ``$DLT_BOOK_ROOT``, else the first above ``start`` (the
    working directory), else the checkout this package was installed from (``pip install -e .``).

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    if os.environ.get("DLT_BOOK_ROOT"):
        return Path(os.environ["DLT_BOOK_ROOT"]).resolve()
    for folder in [Path(start or Path.cwd()).resolve(), *Path(start or Path.cwd()).resolve().parents]:
        if (folder / "_toc.yml").exists():
            return folder
    return Path(__file__).resolve().parents[2]


def toc_entries(toc: Path | None = None) -> list[str]:
    """Every file ``_toc.yml`` lists, in reading order (``["book/intro", "book/getting_started", ...]``).

    Jupyter Book 1's ``jb-book`` format: a ``root`` file, then ``chapters``
    (each may have ``sections``), or ``parts`` holding chapters.  The one
    reader of the table of contents: the tests and scripts use it too.

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    toc = Path(toc or book_root() / "_toc.yml")
    data = yaml.safe_load(toc.read_text())
    if data.get("format") != "jb-book":
        raise ValueError(f"{toc}: expected 'format: jb-book' (Jupyter Book 1), got {data.get('format')!r}")
    entries = [data["root"]]

    def walk(items):
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections"))

    walk(data.get("chapters"))
    for part in data.get("parts") or []:
        walk(part.get("chapters"))
    return entries


def toc_notebooks(toc: Path | None = None) -> list[Path]:
    """The notebooks ``_toc.yml`` lists, in reading order (entries without an .ipynb are skipped).

    Taught in ``book/homework.md`` (the appendix for lecturers).
    """
    toc = Path(toc or book_root() / "_toc.yml")
    paths = [toc.parent / f"{entry}.ipynb" for entry in toc_entries(toc)]
    return [p for p in paths if p.exists()]

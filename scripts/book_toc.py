"""The book's table of contents, for the tests and scripts.

One reader of ``_toc.yml`` serves the whole project:
:mod:`dlt_lib.homework.book` (the installed package needs it too).  This
module only fixes the repository's own ``_toc.yml`` as the default
(``python -c "import book_toc; print(book_toc.entries())"`` from ``scripts/``).
"""

from __future__ import annotations

from pathlib import Path

from dlt_lib.homework.book import toc_entries, toc_notebooks

ROOT = Path(__file__).resolve().parents[1]
TOC = ROOT / "_toc.yml"


def entries(toc: Path = TOC) -> list[str]:
    """Every file the table of contents lists, in reading order (``["book/intro", ...]``)."""
    return toc_entries(toc)


def notebooks(toc: Path = TOC) -> list[Path]:
    """The notebooks among :func:`entries` that exist, in reading order (Markdown pages are left out)."""
    return toc_notebooks(toc)

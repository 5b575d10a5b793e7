#!/usr/bin/env python
"""How long each chapter takes to execute: cold (empty compile caches) and warm.

Each chapter of ``_toc.yml`` is executed twice, the way a reader's kernel runs
it (nbclient, offline data):

- **cold**: with an empty PyTensor compile directory and Numba cache of its
  own, so every graph the chapter compiles is compiled (g++ or Numba), as for
  a reader who opens only this chapter on Binder or Colab;
- **warm**: again, from the caches the cold run filled.

Chapters run one after another, so each owns the machine; a whole-book build
(``make book``) shares one cache and executes two chapters per CPU, and its own
time is printed by ``make book``.  The table is Markdown, for the README.

Run from the repository root::

    python benchmarks/bench_book.py                        # every chapter
    python benchmarks/bench_book.py lenet mlp              # some chapters
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlt_lib.homework.book import toc_notebooks  # noqa: E402

RUN = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=1200, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
"""


def execute(notebook: Path, cache: Path) -> float:
    """Seconds to execute ``notebook`` in a fresh kernel whose compile caches live in ``cache``."""
    env = dict(
        os.environ,
        DLT_OFFLINE="1",
        PYTENSOR_FLAGS=f"base_compiledir={cache / 'pytensor'}",
        NUMBA_CACHE_DIR=str(cache / "numba"),
    )
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", RUN, str(notebook), str(notebook.parent)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapter file names without .ipynb (default: all)")
    args = parser.parse_args(argv)
    notebooks = toc_notebooks(ROOT / "_toc.yml")
    if args.chapters:
        notebooks = [p for p in notebooks if p.stem in args.chapters]
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("| chapter | cold (s) | warm (s) |\n|---|---:|---:|")
    total_cold = total_warm = 0.0
    for notebook in notebooks:
        with tempfile.TemporaryDirectory(prefix="bench_book_") as tmp:
            cold = execute(notebook, Path(tmp))
            warm = execute(notebook, Path(tmp))
        total_cold, total_warm = total_cold + cold, total_warm + warm
        print(f"| {notebook.stem} | {cold:.0f} | {warm:.0f} |", flush=True)
    print(f"| **sum** | {total_cold:.0f} | {total_warm:.0f} |")


if __name__ == "__main__":
    main()

"""Execute the book's notebooks and store only the outputs that nbval checks.

`make test` runs every notebook with ``pytest --nbval-lax``: every cell must
run, and the cells marked ``# NBVAL_CHECK_OUTPUT`` must print what the
notebook stores.  So the stored notebooks keep exactly those outputs and no
others (no figures, timings or machine paths in the repository).

    python scripts/refresh_notebook_outputs.py book/losses.ipynb   # one chapter
    python scripts/refresh_notebook_outputs.py                     # every chapter
    python scripts/refresh_notebook_outputs.py --check             # are they clean?
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
MARK = "NBVAL_CHECK_OUTPUT"


def chapters() -> list[Path]:
    return sorted((ROOT / "book").glob("*.ipynb"))


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and MARK in cell.source


def clean(nb) -> None:
    """Keep outputs of checked cells only; drop execution counts elsewhere and volatile metadata."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if is_checked(cell):
            # nbval wants an execution count on a cell whose outputs it compares ("unrun reference
            # cell" otherwise); figures are never compared, so they are not stored.
            cell.outputs = [o for o in cell.outputs if o.get("output_type") != "display_data"]
        else:
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)


def problems(nb) -> list[str]:
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.outputs and not is_checked(cell):
            found.append(f"cell {i} has outputs but is not marked {MARK}")
        if is_checked(cell) and not cell.outputs:
            found.append(f"cell {i} is marked {MARK} but stores no output")
    if "widgets" in nb.metadata:
        found.append("notebook metadata stores widget state")
    return found


def refresh(path: Path, timeout: int) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    clean(nb)
    nbformat.write(nb, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="notebooks to refresh (default: book/*.ipynb)"
    )
    parser.add_argument("--check", action="store_true", help="only report notebooks that are not clean")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or chapters()
    bad = 0
    for path in paths:
        if args.check:
            found = problems(nbformat.read(path, as_version=4))
            for p in found:
                print(f"{path}: {p}")
            bad += bool(found)
        else:
            print(f"executing {path} ...", flush=True)
            refresh(path, args.timeout)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

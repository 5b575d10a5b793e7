"""Writing a file so that a reader never sees half of it.

A checkpoint, a downloaded data set or a figure of the book is written to a
temporary file in the same directory, flushed to the disk, and only then
renamed over its real name (``os.replace``, atomic on POSIX and Windows).
A crash, a full disk or a failed check in the middle leaves the previous file
intact and no temporary file behind, never a truncated file with the real
name that the next run would take for good data.

Taught in ``book/saving_and_plotting.ipynb`` (checkpoints).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_file", "write_atomically"]


@contextlib.contextmanager
def atomic_file(path, suffix: str = ".tmp"):
    """Write ``path`` through a temporary file that replaces it at the end.

    Yields a binary file open for writing; ``handle.name`` is its path, so
    the block can check what it wrote (a download checks its checksum) and
    raise to discard it.  If the block raises, the temporary file is
    removed and ``path`` is left as it was.
    Taught in ``book/saving_and_plotting.ipynb``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # In the same directory: os.replace is atomic within one file system.
    fd, tmp = tempfile.mkstemp(
        dir=path.parent,
        prefix=f".{path.name}.",
        suffix=suffix,
    )
    os.close(fd)
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())  # the bytes are on the disk
        # mkstemp made the file private; give it the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)  # the old file, or the new one: never half
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # still there only if something failed


def write_atomically(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_file`; return the path.

    See ``book/saving_and_plotting.ipynb``.
    """
    with atomic_file(path) as handle:
        handle.write(data)
    return Path(path)

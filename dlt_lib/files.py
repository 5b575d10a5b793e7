"""Writing a file so that a reader never sees half of it.

A checkpoint, a downloaded data set or a figure of the book is written to a
temporary file in the same directory, flushed to the disk, and only then
renamed over its real name (``os.replace``, atomic on POSIX and Windows).
A crash, a full disk or a failed check in the middle leaves the previous file
intact and no temporary file behind, never a truncated file with the real
name that the next run would take for good data.  (A kill leaves the
temporary file; the next run in that directory deletes it.)

One run at a time writes to a directory: :func:`locked_directory`.

Taught in ``book/saving_and_plotting.ipynb`` (checkpoints).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX (Windows): directories are not locked
    fcntl = None

__all__ = [
    "DirectoryBusyError",
    "DirectoryLock",
    "atomic_file",
    "locked_directory",
    "remove_stale_temporaries",
    "write_atomically",
]


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


# ----------------------------------------------------------------------------
# One run per directory
# ----------------------------------------------------------------------------
LOCK_NAME = ".lock"
# The name atomic_file gives its temporary file: "." + name + "." + 8 random characters + ".tmp".
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
_held: dict = {}  # directory -> how many times this process holds it (a run inside a command)


class DirectoryBusyError(OSError):
    """Another process is writing to this directory (it holds its lock).

    Taught in ``book/saving_and_plotting.ipynb``.
    """


@dataclass
class DirectoryLock:
    """What :func:`locked_directory` found when it took the lock.  See ``book/saving_and_plotting.ipynb``."""

    directory: Path
    previous_holder: str | None = None  # a process that died holding it (its lock was taken over)
    removed: list = field(default_factory=list)  # temporary files an interrupted write had left


def remove_stale_temporaries(directory) -> list:
    """Delete the temporary files that an interrupted :func:`atomic_file` left in ``directory``; return their names.

    Only safe while no other process writes there: call it with the
    directory locked (:func:`locked_directory` does).
    See ``book/saving_and_plotting.ipynb``.
    """
    removed = []
    for path in sorted(Path(directory).iterdir()):
        if _TEMPORARY.fullmatch(path.name) and path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path.name)
    return removed


def _take(path: Path) -> int:
    """A descriptor of ``path`` locked by us (``flock``), or a DirectoryBusyError naming the holder."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DirectoryBusyError(
                f"{path.parent} is in use by process {holder}: wait for that run to finish, or write "
                "elsewhere (another --output-dir)."
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:  # not unlinked by its last holder meanwhile
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def locked_directory(directory):
    """Hold ``directory`` (created if needed) for this process while the block runs.

    A second process that asks for it gets :class:`DirectoryBusyError`,
    whose message names the process holding it.  The lock is ``flock`` on
    ``<directory>/.lock``, which the kernel releases when its process ends,
    however it ends: a lock left by a killed run is simply taken over
    (``previous_holder`` says whose it was).  Once the lock is held, the
    temporary files an interrupted write left there are deleted
    (``removed``).  Within one process the lock may be taken again (a
    training run inside a command that already holds its directory).
    Taught in ``book/saving_and_plotting.ipynb``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = directory.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield DirectoryLock(directory)
        finally:
            _held[key] -= 1
        return
    path = directory / LOCK_NAME
    fd = _take(path)
    _held[key] = 1
    try:
        previous = os.pread(fd, 4096, 0).decode(errors="replace").strip() or None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} ({' '.join(sys.argv)[:200]})\n".encode(), 0)
        yield DirectoryLock(directory, previous, remove_stale_temporaries(directory))
    finally:
        del _held[key]
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still locked: see _take for the process that opened it meanwhile
        os.close(fd)

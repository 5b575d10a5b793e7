"""Readers for the two file formats MNIST comes in, written defensively.

1. **IDX** (``train-images-idx3-ubyte.gz`` ...), Yann LeCun's original
   format: a 4-byte *magic number*, one 4-byte big-endian size per
   dimension, then the raw values.  :func:`read_idx` checks every part of
   that header against the bytes actually present, so a truncated download
   is an error that names the file, never a silently short array.

2. **mnist.pkl.gz**, the file the Theano tutorials used: a gzipped *Python 2
   pickle* of ``((X_train, y_train), (X_valid, y_valid), (X_test, y_test))``.
   A pickle is not data but a small program for the unpickler's stack
   machine, and that program may call *any* importable function --
   ``os.system`` included.  :func:`load_mnist_pickle` therefore runs it with
   :class:`RestrictedUnpickler`, which can only rebuild NumPy arrays.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zlib

import numpy as np

__all__ = [
    "DataFormatError",
    "UnsafePickleError",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "RestrictedUnpickler",
    "load_mnist_pickle",
    "check_mnist_layout",
]


class DataFormatError(ValueError):
    """A data file is not laid out the way its format (or MNIST) requires.  See ``book/dataset.ipynb``."""


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something other than the NumPy arrays we expect.

    Taught in ``book/dataset.ipynb``.
    """


# ----------------------------------------------------------------------------
# IDX
# ----------------------------------------------------------------------------

#: Magic number of an image file: 0x00 0x00, type 0x08 (uint8), 3 dimensions.
IDX_IMAGES_MAGIC = 0x00000803
#: Magic number of a label file: 0x00 0x00, type 0x08 (uint8), 1 dimension.
IDX_LABELS_MAGIC = 0x00000801

# The third byte of the magic number says the element type.  Values wider
# than one byte are stored big-endian (">"), as everything else in IDX.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _describe(source) -> str:
    """A name for ``source`` to put in error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", None) or repr(source)


def _open_maybe_gzip(source):
    """Open a path or wrap a binary file object, un-gzipping if needed.

    We look at the first two bytes rather than the file name, so a gzipped
    file without ``.gz`` (or a plain file with it) is still read correctly.
    Returns ``(fileobj, must_close, is_gzip)``.
    """
    if isinstance(source, (str, os.PathLike)):
        raw = open(source, "rb")  # noqa: SIM115 (closed by the caller)
        must_close = True
    else:
        raw = source
        must_close = False
    head = raw.read(2)
    if hasattr(raw, "seek") and (not hasattr(raw, "seekable") or raw.seekable()):
        raw.seek(-len(head), io.SEEK_CUR)
    else:  # a pipe or socket: put the two bytes back in front by hand
        raw = io.BufferedReader(_Prepend(head, raw))
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw if must_close else None, True
    return raw, raw if must_close else None, False


class _Prepend(io.RawIOBase):
    """A read-only stream that yields ``head`` and then the rest of ``raw``."""

    def __init__(self, head: bytes, raw):
        self._head, self._raw = head, raw

    def readable(self):
        return True

    def readinto(self, buffer):
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_exactly(f, n: int, name: str, what: str) -> bytes:
    """Read ``n`` bytes, or raise an error saying how many were there.

    ``f.read(n)`` may legally return fewer bytes than asked, at the end of
    the file; that is exactly how a truncated download shows up, so we check.
    A gzip stream that stops early raises ``EOFError`` instead, and a
    corrupted one ``BadGzipFile`` or ``zlib.error``; all become one error.
    """
    chunks, got = [], 0
    try:
        while got < n:
            chunk = f.read(min(n - got, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataFormatError(
            f"{name}: the gzip stream is truncated or corrupt ({exc}) while reading {what}: "
            f"expected {n:,} bytes, decompressed {got:,} before the error. "
            "Delete the file and download it again."
        ) from exc
    if got < n:
        raise DataFormatError(
            f"{name}: file is truncated while reading {what}: expected {n:,} bytes, found {got:,}. "
            "Delete the file and download it again."
        )
    return b"".join(chunks)


def read_idx(path_or_fileobj, *, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a NumPy array.

    Layout (all integers big-endian)::

        bytes 0-1   0x00 0x00
        byte  2     element type: 0x08 = uint8 (the only one MNIST uses)
        byte  3     number of dimensions d
        d x 4 bytes size of each dimension
        the rest    prod(sizes) elements, row-major

    Parameters
    ----------
    path_or_fileobj : str, os.PathLike or binary file object
    expected_magic : int, optional
        E.g. :data:`IDX_IMAGES_MAGIC` (``0x00000803``) or
        :data:`IDX_LABELS_MAGIC` (``0x00000801``); a different magic number
        is an error.

    Raises
    ------
    DataFormatError
        On a wrong magic number, a header that does not match the amount of
        data, trailing bytes, or a truncated/corrupt gzip stream.  The
        message names the file and gives what was expected and what was found.
    See ``book/dataset.ipynb``.
    """
    name = _describe(path_or_fileobj)
    f, to_close, is_gzip = _open_maybe_gzip(path_or_fileobj)
    try:
        header = _read_exactly(f, 4, name, "the 4-byte magic number")
        magic = int.from_bytes(header, "big")
        if expected_magic is not None and magic != expected_magic:
            raise DataFormatError(
                f"{name}: bad magic number 0x{magic:08X}; expected 0x{expected_magic:08X} "
                f"({_magic_meaning(expected_magic)}). Is this the right file, and is it an IDX file?"
            )
        if header[:2] != b"\x00\x00" or header[2] not in _IDX_DTYPES or header[3] == 0:
            raise DataFormatError(
                f"{name}: 0x{magic:08X} is not an IDX magic number (expected 0x0000TTDD with "
                f"type TT in {{{', '.join(f'0x{t:02X}' for t in _IDX_DTYPES)}}} and DD >= 1 dimensions)."
            )
        dtype, ndim = _IDX_DTYPES[header[2]], header[3]
        dims_bytes = _read_exactly(f, 4 * ndim, name, f"the {ndim} dimension sizes")
        shape = tuple(int.from_bytes(dims_bytes[4 * i : 4 * i + 4], "big") for i in range(ndim))
        n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        data = _read_exactly(
            f, n_bytes, name, f"the data of an array of shape {shape} ({n_bytes:,} bytes of {dtype})"
        )
        # Anything after the data means the header lies (or two files were
        # concatenated): refuse rather than guess which part is right.
        if f.read(1):
            raise DataFormatError(
                f"{name}: the header announces shape {shape} ({n_bytes:,} data bytes) "
                "but the file has more bytes after that. The file is corrupt or not what it seems."
            )
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # from the final f.read(1)
        raise DataFormatError(f"{name}: the gzip stream is truncated or corrupt ({exc}).") from exc
    finally:
        if is_gzip:
            f.close()  # closes the GzipFile wrapper, not a file object the caller passed
        if to_close is not None:
            to_close.close()
    # .astype(native) turns big-endian types into the machine's order; a copy,
    # because np.frombuffer over ``bytes`` would give a read-only array.
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _magic_meaning(magic: int) -> str:
    return {
        IDX_IMAGES_MAGIC: "uint8 images, 3 dimensions",
        IDX_LABELS_MAGIC: "uint8 labels, 1 dimension",
    }.get(magic, "IDX")


def read_idx_images(path_or_fileobj) -> np.ndarray:
    """Read an IDX image file: a uint8 array of shape (n, rows, cols).  See ``book/dataset.ipynb``."""
    return read_idx(path_or_fileobj, expected_magic=IDX_IMAGES_MAGIC)


def read_idx_labels(path_or_fileobj) -> np.ndarray:
    """Read an IDX label file: a uint8 array of shape (n,).  See ``book/dataset.ipynb``."""
    return read_idx(path_or_fileobj, expected_magic=IDX_LABELS_MAGIC)


# ----------------------------------------------------------------------------
# The restricted unpickler
# ----------------------------------------------------------------------------


def _numpy_reconstruct_functions():
    # NumPy 2 moved ``numpy.core`` to ``numpy._core``; a pickle written by
    # Python 2 names the old module.  We map both names to the function
    # itself, without importing ``numpy.core`` (which now warns).
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy < 2
        from numpy.core import multiarray
    return multiarray._reconstruct, multiarray.scalar


def _checked_dtype(*args, **kwargs) -> np.dtype:
    """``numpy.dtype`` as the pickle calls it, minus the one risky kind.

    An *object* array holds arbitrary Python objects.  Those would still go
    through this same restricted unpickler, but MNIST has no business with
    them, so refusing object dtypes keeps the surface minimal.
    """
    dtype = np.dtype(*args, **kwargs)
    if dtype.hasobject:
        raise UnsafePickleError(
            f"Refusing a pickled array of dtype {dtype}: MNIST holds only numbers, "
            "and an object array could carry arbitrary Python objects."
        )
    return dtype


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build NumPy arrays and nothing else.

    ``pickle.Unpickler.find_class(module, name)`` is called every time the
    pickle says "fetch global ``module.name``" -- the first step of every
    function call a pickle makes.  The standard one imports anything; ours
    only hands out the four callables a pickled ``ndarray`` needs:

    - ``numpy.core.multiarray._reconstruct`` (``numpy._core`` since NumPy 2):
      makes an empty array that the pickle then fills via ``__setstate__``;
    - ``numpy.ndarray``: the class passed to ``_reconstruct``;
    - ``numpy.dtype``: rebuilds the element type (non-object dtypes only);
    - ``numpy.core.multiarray.scalar``: rebuilds a NumPy scalar.

    Anything else -- ``os.system``, ``builtins.eval``, ``subprocess.Popen``
    -- raises :class:`UnsafePickleError` *before* it is called.

    Use ``RestrictedUnpickler(f, encoding="latin1").load()``: Python 2 ``str``
    objects (the raw array bytes) are decoded as Latin-1, the one encoding
    that maps every byte 0-255 to a character, and NumPy turns them back
    into the original bytes.
    Taught in ``book/dataset.ipynb``.
    """

    def __init__(self, file, *, name: str | None = None, **kwargs):
        super().__init__(file, **kwargs)
        self._name = name or _describe(file)
        reconstruct, scalar = _numpy_reconstruct_functions()
        self._allowed = {
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy.core.multiarray", "scalar"): scalar,
            ("numpy._core.multiarray", "scalar"): scalar,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): _checked_dtype,
        }

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted({f"{m}.{n}" for m, n in self._allowed}))
            raise UnsafePickleError(
                f"{self._name}: refusing to load '{module}.{name}'. This pickle asks to call "
                f"{module}.{name}, but a dataset file should only rebuild NumPy arrays "
                f"(allowed: {allowed}). Unpickling runs code, so this file may be malicious or "
                "simply not the MNIST pickle; delete it and use a copy with the published checksum."
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._name}: refusing a persistent id ({pid!r}); not an MNIST pickle.")


def check_mnist_layout(obj, name: str = "mnist.pkl.gz", *, n_features: int = 784, n_classes: int = 10):
    """Check that ``obj`` is ``((X, y), (X, y), (X, y))`` as in mnist.pkl.gz.

    Each ``X`` must be a 2-D floating array with ``n_features`` columns and
    values in [0, 1], each ``y`` a 1-D integer array of the same length with
    values in ``0 .. n_classes-1``.  Returns the three pairs as a tuple.
    The number of rows is not checked, so small test files pass too.
    See ``book/dataset.ipynb``.
    """
    if not (isinstance(obj, (tuple, list)) and len(obj) == 3):
        raise DataFormatError(
            f"{name}: expected a tuple (train, valid, test) of 3 splits, found "
            f"{type(obj).__name__}{f' of length {len(obj)}' if hasattr(obj, '__len__') else ''}."
        )
    splits = []
    for split_name, pair in zip(("train", "valid", "test"), obj):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise DataFormatError(
                f"{name}: the {split_name} split should be a pair (X, y), found {type(pair).__name__}."
            )
        X, y = pair
        if not (
            isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == n_features and X.dtype.kind == "f"
        ):
            raise DataFormatError(
                f"{name}: {split_name} X should be a float array of shape (n, {n_features}), found "
                f"{type(X).__name__} {getattr(X, 'dtype', '')} {getattr(X, 'shape', '')}."
            )
        if not (isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iu"):
            raise DataFormatError(
                f"{name}: {split_name} y should be a 1-D integer array, found "
                f"{type(y).__name__} {getattr(y, 'dtype', '')} {getattr(y, 'shape', '')}."
            )
        if len(X) != len(y):
            raise DataFormatError(f"{name}: {split_name} has {len(X)} images but {len(y)} labels.")
        if X.size and (np.nanmin(X) < 0 or np.nanmax(X) > 1 or np.isnan(X).any()):
            raise DataFormatError(
                f"{name}: {split_name} X should hold pixel intensities in [0, 1], found values in "
                f"[{np.nanmin(X)}, {np.nanmax(X)}]{' and NaNs' if np.isnan(X).any() else ''}."
            )
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise DataFormatError(
                f"{name}: {split_name} labels should be in 0..{n_classes - 1}, found [{y.min()}, {y.max()}]."
            )
        splits.append((X, y))
    return tuple(splits)


def load_mnist_pickle(path_or_fileobj):
    """Read ``mnist.pkl.gz`` safely: ``((X, y), (X, y), (X, y))``.

    The checksum (if you want one) is the caller's job and should come
    first; this function makes sure that whatever the file is, unpickling
    it cannot run code, and that the result has the MNIST layout
    (:func:`check_mnist_layout`).
    See ``book/dataset.ipynb``.
    """
    name = _describe(path_or_fileobj)
    f, to_close, is_gzip = _open_maybe_gzip(path_or_fileobj)
    try:
        obj = RestrictedUnpickler(f, name=name, encoding="latin1").load()
    except UnsafePickleError:
        raise
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataFormatError(
            f"{name}: the file is truncated or corrupt ({type(exc).__name__}: {exc}). "
            "Delete it and download it again."
        ) from exc
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataFormatError(
            f"{name}: could not read it as the MNIST pickle ({type(exc).__name__}: {exc})."
        ) from exc
    finally:
        if is_gzip:
            f.close()
        if to_close is not None:
            to_close.close()
    return check_mnist_layout(obj, name)

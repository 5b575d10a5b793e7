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

A small file can also *declare* sizes it does not hold: an IDX header that
announces 400,000 images, a pickle string of a billion bytes, a gzip stream
that inflates a thousandfold.  Every size a file declares is checked, before
any memory is taken for it, against a fixed bound (:data:`MAX_IDX_BYTES`,
:data:`MAX_PICKLE_BYTES`) and against what the file can really hold.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import stat
import zlib
from typing import NamedTuple

import numpy as np

__all__ = [
    "DataFormatError",
    "UnsafePickleError",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "MAX_IDX_BYTES",
    "MAX_PICKLE_BYTES",
    "IdxHeader",
    "read_idx_header",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "RestrictedUnpickler",
    "load_mnist_pickle",
    "check_mnist_layout",
]

#: The most data bytes :func:`read_idx` accepts by default.  MNIST's and
#: Fashion-MNIST's largest file, the 60,000 training images, holds 47,040,000.
MAX_IDX_BYTES = 64 * 2**20
#: The most bytes :func:`load_mnist_pickle` reads from a pickle (after
#: gunzip), and the most its arrays may hold together.  The published
#: ``mnist.pkl.gz`` decompresses to 220 MB.
MAX_PICKLE_BYTES = 256 * 2**20
# Deflate's best case: no gzip stream inflates to more than about 1032 times its size.
_MAX_GZIP_RATIO = 1032


class DataFormatError(ValueError):
    """A data file is not laid out the way its format (or MNIST) requires.  See ``book/dataset.ipynb``."""


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something other than the NumPy arrays we expect.

    Taught in ``book/dataset.ipynb``.
    """


# ----------------------------------------------------------------------------
# Opening a file, gzipped or not, and knowing how much it can hold
# ----------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"


def _describe(source) -> str:
    """A name for ``source`` to put in error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", None) or repr(source)


class _Opened(NamedTuple):
    """A source opened for reading: the (un-gzipped) stream and what is known of its size."""

    f: object  # what to read from
    to_close: object  # the file we opened ourselves, or None
    is_gzip: bool
    size: int | None  # bytes in the file itself (compressed, for gzip), when it can be known
    isize: int | None  # gzip only: the uncompressed size its trailer declares (modulo 2**32)

    def most_bytes(self) -> int | None:
        """The most bytes the stream can deliver: the file's size, or deflate's best ratio times it."""
        if self.size is None:
            return None
        return self.size * _MAX_GZIP_RATIO if self.is_gzip else self.size

    def close(self) -> None:
        if self.is_gzip:
            self.f.close()  # the GzipFile wrapper, not a file object the caller passed
        if self.to_close is not None:
            self.to_close.close()


def _remaining_size(raw) -> int | None:
    """Bytes from the current position to the end of a seekable file, else None (a pipe)."""
    try:
        if not raw.seekable():
            return None
        here = raw.tell()
        end = raw.seek(0, io.SEEK_END)
        raw.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return end - here


def _gzip_isize(raw) -> int | None:
    """The last four bytes of a seekable gzip file: its uncompressed size modulo 2**32."""
    try:
        here = raw.tell()
        raw.seek(-4, io.SEEK_END)
        tail = raw.read(4)
        raw.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return int.from_bytes(tail, "little") if len(tail) == 4 else None


def _open_maybe_gzip(source) -> _Opened:
    """Open a path or wrap a binary file object, un-gzipping if needed.

    We look at the first two bytes rather than the file name, so a gzipped
    file without ``.gz`` (or a plain file with it) is still read correctly.
    A path must be a regular file: opening a FIFO would wait for a writer forever.
    """
    must_close = isinstance(source, (str, os.PathLike))
    if must_close:
        if not stat.S_ISREG(os.stat(source).st_mode):
            raise DataFormatError(f"{_describe(source)} is not a regular file (a directory, FIFO or device).")
        raw = open(source, "rb")  # noqa: SIM115 (closed by _Opened.close)
    else:
        raw = source
    size = _remaining_size(raw)
    head = raw.read(2)
    if size is not None:
        raw.seek(-len(head), io.SEEK_CUR)
    else:  # a pipe or socket: put the two bytes back in front by hand
        raw = io.BufferedReader(_Prepend(head, raw))
    if head == _GZIP_MAGIC:
        isize = _gzip_isize(raw) if size is not None else None
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
        return _Opened(stream, raw if must_close else None, True, size, isize)
    return _Opened(raw, raw if must_close else None, False, size, None)


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


_STREAM_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _stream_error(name: str, exc: Exception, what: str) -> DataFormatError:
    """The error for a gzip stream that failed while reading ``what``: truncated, corrupt, or a bad checksum."""
    if "CRC" in str(exc) or "length" in str(exc).lower():
        problem = f"its gzip checksum does not match its contents ({exc}): the file is corrupt"
    else:
        problem = f"the gzip stream is truncated or corrupt ({exc})"
    return DataFormatError(
        f"{name}: {problem}, found while reading {what}. Delete the file and download it again."
    )


def _read_into(f, out: memoryview, name: str, what: str) -> None:
    """Fill ``out`` from ``f``, or raise an error saying how many bytes were there.

    ``f.read(n)`` may legally return fewer bytes than asked, at the end of
    the file; that is exactly how a truncated download shows up, so we check.
    The bytes go straight into ``out`` a chunk at a time: memory grows only
    with the data really present, whatever the header announced.
    """
    n, got = len(out), 0
    try:
        while got < n:
            chunk = f.read(min(n - got, 1 << 24))
            if not chunk:
                break
            out[got : got + len(chunk)] = chunk
            got += len(chunk)
    except _STREAM_ERRORS as exc:
        raise _stream_error(name, exc, f"{what} ({got:,} of {n:,} bytes read)") from exc
    if got < n:
        raise DataFormatError(
            f"{name}: file is truncated while reading {what}: expected {n:,} bytes, found {got:,}. "
            "Delete the file and download it again."
        )


def _read_exactly(f, n: int, name: str, what: str) -> bytes:
    out = bytearray(n)
    _read_into(f, memoryview(out), name, what)
    return bytes(out)


def _expect_end(f, name: str, what: str) -> None:
    """Read on to the end (which makes gzip check its CRC); refuse any byte left after ``what``."""
    try:
        extra = f.read(1)
    except _STREAM_ERRORS as exc:
        raise _stream_error(name, exc, f"the end of the file, after {what}") from exc
    if extra:
        raise DataFormatError(
            f"{name}: the file has more bytes after {what}. It is corrupt or not what it seems "
            "(two files joined together?); delete it and download it again."
        )


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


class IdxHeader(NamedTuple):
    """What an IDX file's header declares.  See ``book/dataset.ipynb``."""

    magic: int
    dtype: np.dtype
    shape: tuple
    n_bytes: int  # bytes of data the shape and type announce (exact, however large)


def _parse_idx_header(f, name: str, expected_magic: int | None) -> IdxHeader:
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
    dims = _read_exactly(f, 4 * ndim, name, f"the {ndim} dimension sizes")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    return IdxHeader(magic, dtype, shape, math.prod(shape) * dtype.itemsize)  # Python ints: no overflow


def read_idx_header(path_or_fileobj, *, expected_magic: int | None = None) -> IdxHeader:
    """The header of an IDX file (magic number, type, shape), read without its data.

    Lets a caller check what a file declares (MNIST's 28x28 images, as many
    labels as images) before :func:`read_idx` reads megabytes.
    See ``book/dataset.ipynb``.
    """
    name = _describe(path_or_fileobj)
    opened = _open_maybe_gzip(path_or_fileobj)
    try:
        return _parse_idx_header(opened.f, name, expected_magic)
    finally:
        opened.close()


def _check_idx_size(header: IdxHeader, opened: _Opened, name: str, shape, max_bytes: int) -> None:
    """Refuse a declared shape that is not the one expected, or larger than the bound or the file."""
    if shape is not None and (
        len(shape) != len(header.shape) or any(s not in (None, d) for s, d in zip(shape, header.shape))
    ):
        wanted = "x".join("n" if s is None else str(s) for s in shape)
        raise DataFormatError(
            f"{name}: the header declares an array of shape {header.shape}; expected {wanted}. "
            "Is this the right file?"
        )
    if header.n_bytes > max_bytes:
        raise DataFormatError(
            f"{name}: the header declares an array of shape {header.shape}, {header.n_bytes:,} bytes of "
            f"{header.dtype}; this reader accepts at most {max_bytes:,}. The file is corrupt or not what it seems."
        )
    header_bytes = 4 + 4 * len(header.shape)
    most = opened.most_bytes()
    if most is None or header_bytes + header.n_bytes <= most:
        return
    declared = f"the header declares shape {header.shape}, so"
    if opened.is_gzip:
        raise DataFormatError(
            f"{name}: {declared} {header.n_bytes:,} bytes of data, but a gzip file of {opened.size:,} bytes "
            f"inflates to at most {most:,}. The file is truncated or its header is wrong; delete it and "
            "download it again."
        )
    raise DataFormatError(
        f"{name}: file is truncated: {declared} expected {header.n_bytes:,} bytes, found "
        f"{most - header_bytes:,} (of data). Delete the file and download it again."
    )


def read_idx(
    path_or_fileobj, *, expected_magic: int | None = None, shape=None, max_bytes: int = MAX_IDX_BYTES
) -> np.ndarray:
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
    shape : tuple, optional
        The shape the header must declare; ``None`` in a place accepts any
        size there (``(None, 28, 28)``: MNIST's images).
    max_bytes : int
        The most data the header may declare (default :data:`MAX_IDX_BYTES`).

    Raises
    ------
    DataFormatError
        On a wrong magic number, a declared shape that is not ``shape``, larger
        than ``max_bytes`` or than the file can hold, a truncated or corrupt
        gzip stream (its CRC is checked), or bytes after the data.  All are
        found before the data are read, except truncation and corruption.  The
        message names the file and gives what was expected and what was found.
    See ``book/dataset.ipynb``.
    """
    name = _describe(path_or_fileobj)
    opened = _open_maybe_gzip(path_or_fileobj)
    try:
        header = _parse_idx_header(opened.f, name, expected_magic)
        _check_idx_size(header, opened, name, shape, max_bytes)
        # Allocated, not yet touched: memory is used only as the data arrive.
        array = np.empty(header.shape, dtype=header.dtype)
        what = f"the data of an array of shape {header.shape} ({header.n_bytes:,} bytes of {header.dtype})"
        _read_into(opened.f, memoryview(array).cast("B"), name, what)
        # Anything after the data means the header lies (or two files were
        # concatenated): refuse rather than guess which part is right.
        _expect_end(opened.f, name, f"the {header.n_bytes:,} data bytes its header announces")
    finally:
        opened.close()
    # Big-endian types become the machine's order (uint8 is left as it is).
    return array.astype(header.dtype.newbyteorder("="), copy=False)


def _magic_meaning(magic: int) -> str:
    return {
        IDX_IMAGES_MAGIC: "uint8 images, 3 dimensions",
        IDX_LABELS_MAGIC: "uint8 labels, 1 dimension",
    }.get(magic, "IDX")


def read_idx_images(
    path_or_fileobj, *, shape=(None, None, None), max_bytes: int = MAX_IDX_BYTES
) -> np.ndarray:
    """Read an IDX image file: a uint8 array of shape (n, rows, cols).  See ``book/dataset.ipynb``."""
    return read_idx(path_or_fileobj, expected_magic=IDX_IMAGES_MAGIC, shape=shape, max_bytes=max_bytes)


def read_idx_labels(path_or_fileobj, *, shape=(None,), max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX label file: a uint8 array of shape (n,).  See ``book/dataset.ipynb``."""
    return read_idx(path_or_fileobj, expected_magic=IDX_LABELS_MAGIC, shape=shape, max_bytes=max_bytes)


# ----------------------------------------------------------------------------
# The restricted unpickler
# ----------------------------------------------------------------------------


def _numpy_functions():
    # NumPy 2 moved ``numpy.core`` to ``numpy._core``; a pickle written by
    # Python 2 names the old module.  We map both names to the function
    # itself, without importing ``numpy.core`` (which now warns).
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy < 2
        from numpy.core import multiarray
    return multiarray._reconstruct, multiarray.scalar


_RECONSTRUCT, _SCALAR = _numpy_functions()
# The kinds of number a data set may hold: bool, signed and unsigned integers, floats.
_PLAIN_KINDS = "biuf"


def _checked_dtype(*args, **kwargs) -> np.dtype:
    """``numpy.dtype`` as the pickle calls it, for plain numbers only.

    An *object* array holds arbitrary Python objects (and a structured or
    void type can be made to pass for one), so only the plain kinds of number
    are built: MNIST has no business with anything else.
    """
    dtype = np.dtype(*args, **kwargs)
    if dtype.kind not in _PLAIN_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise UnsafePickleError(
            f"Refusing a pickled array of dtype {dtype}: MNIST holds only numbers (bool, integer or float), "
            "and an object array could carry arbitrary Python objects."
        )
    return dtype


class _ArrayClass:
    """What the unpickler gives for ``numpy.ndarray``: a name to pass to ``_reconstruct``, not a class to call.

    A pickle that calls ``numpy.ndarray(shape, dtype)`` itself chooses the
    shape (a billion elements) and the type (``'O'``, objects) without any
    data to back them; NumPy's own pickles never do.
    """

    def __init__(self, name):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise UnsafePickleError(
            f"{self._name}: refusing to call numpy.ndarray{args!r} directly: a pickled array is rebuilt "
            "from its own data (_reconstruct, then its state), never allocated to a size the pickle names."
        )


class _CheckedArray(np.ndarray):
    """An array that checks the state a pickle gives it (type and size) before NumPy takes it."""

    def __setstate__(self, state):
        unpickler = self.__dict__.pop("_unpickler", None)
        if unpickler is None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise UnsafePickleError(
                f"Refusing an array state that NumPy never writes: {type(state).__name__}."
            )
        version, shape, dtype, fortran, raw = state if len(state) == 5 else (1, *state)
        dtype = unpickler.plain_dtype(dtype)
        unpickler.spend(unpickler.checked_size(shape, dtype))
        super().__setstate__((version, tuple(shape), dtype, fortran, raw))


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that can build NumPy arrays of numbers and nothing else.

    ``pickle.Unpickler.find_class(module, name)`` is called every time the
    pickle says "fetch global ``module.name``" -- the first step of every
    function call a pickle makes.  The standard one imports anything; ours
    only hands out checked stand-ins for what a pickled ``ndarray`` needs:

    - ``numpy.core.multiarray._reconstruct`` (``numpy._core`` since NumPy 2),
      only as NumPy uses it: an empty array that the pickle then fills
      through its state, whose type and size are checked first;
    - ``numpy.ndarray``: only as the argument of ``_reconstruct``, never called;
    - ``numpy.dtype``: plain numbers only (no objects, no structures);
    - ``numpy.core.multiarray.scalar``: a NumPy scalar of such a type;
    - ``_codecs.encode`` (text to Latin-1 bytes) and
      ``numpy._core.numeric._frombuffer`` (an array over bytes): how Python 3
      writes arrays at protocols 2 and 5.

    Every type is checked where it is used, however it was spelled (``'O'``
    and ``np.dtype('O')`` alike), and the arrays together may hold at most
    ``max_bytes``: a small pickle that names a huge shape, or reuses one
    string a thousand times, is refused before the memory is taken.
    Anything else -- ``os.system``, ``builtins.eval``, ``subprocess.Popen``
    -- raises :class:`UnsafePickleError` *before* it is called.

    It runs on Python's own pure-Python unpickler (``pickle._Unpickler``):
    the faster C one keeps its memo in a table as long as the largest index
    a pickle names, so an 11-byte pickle can make it fill 2 GB.  MNIST's
    pickle is a handful of opcodes around large strings, read as fast
    either way.

    Use ``RestrictedUnpickler(f, encoding="latin1").load()``: Python 2 ``str``
    objects (the raw array bytes) are decoded as Latin-1, the one encoding
    that maps every byte 0-255 to a character, and NumPy turns them back
    into the original bytes.
    Taught in ``book/dataset.ipynb``.
    """

    def __init__(self, file, *, name: str | None = None, max_bytes: int = MAX_PICKLE_BYTES, **kwargs):
        super().__init__(file, **kwargs)
        self._name = name or _describe(file)
        self._max_bytes, self._spent = max_bytes, 0
        self._ndarray = _ArrayClass(self._name)
        self._allowed = {("numpy", "ndarray"): self._ndarray, ("numpy", "dtype"): self._dtype}
        self._allowed[("_codecs", "encode")] = self._encode
        for core in ("numpy.core", "numpy._core"):
            self._allowed[(f"{core}.multiarray", "_reconstruct")] = self._reconstruct
            self._allowed[(f"{core}.multiarray", "scalar")] = self._scalar
            self._allowed[(f"{core}.numeric", "_frombuffer")] = self._frombuffer

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

    def _build_an_object(self):
        raise UnsafePickleError(
            f"{self._name}: refusing to build an object of a class (opcodes NEWOBJ, INST, OBJ): "
            "a pickle of NumPy arrays calls functions only."
        )

    dispatch = dict(pickle._Unpickler.dispatch)
    for _opcode in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.INST, pickle.OBJ):
        dispatch[_opcode[0]] = _build_an_object
    del _opcode

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._name}: refusing a persistent id ({pid!r}); not an MNIST pickle.")

    def load(self):
        """Unpickle; arrays come back as plain ``numpy.ndarray``."""
        return _plain(super().load(), self._name)

    # -- the checks every stand-in makes -----------------------------------------
    def plain_dtype(self, spelled) -> np.dtype:
        """``spelled`` as a NumPy type if it is a plain number type, else an error naming the file."""
        try:
            dtype = _checked_dtype(spelled)
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{self._name}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise DataFormatError(f"{self._name}: {spelled!r} is not a NumPy type ({exc}).") from None
        return np.dtype(dtype.str)  # a new object: nothing a pickle did to the one it built comes along

    def checked_size(self, shape, dtype) -> int:
        """Bytes of an array of ``shape`` and ``dtype``, refusing shapes that are not tuples of sizes."""
        if not isinstance(shape, (tuple, list)) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            raise DataFormatError(f"{self._name}: {shape!r} is not an array shape.")
        return math.prod(shape) * dtype.itemsize

    def spend(self, n_bytes: int) -> None:
        """Count ``n_bytes`` more of arrays; refuse the pickle once they pass ``max_bytes``."""
        self._spent += n_bytes
        if self._spent > self._max_bytes:
            raise DataFormatError(
                f"{self._name}: its arrays would hold more than {self._max_bytes:,} bytes, the most accepted "
                f"(the MNIST pickle holds 220 MB). It is not the MNIST pickle; delete it."
            )

    # -- the stand-ins -------------------------------------------------------------
    def _dtype(self, *args, **kwargs):
        try:
            dtype = np.dtype(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            raise DataFormatError(f"{self._name}: numpy.dtype{args!r} is not a NumPy type ({exc}).") from None
        # A new object of its own, since the pickle may change it next (BUILD): never NumPy's shared float32.
        return np.dtype(self.plain_dtype(dtype), copy=True)

    def _reconstruct(self, cls, shape, dtype):
        if cls is not self._ndarray or not isinstance(shape, tuple) or shape != (0,):
            raise UnsafePickleError(
                f"{self._name}: refusing _reconstruct({cls!r}, {shape!r}, ...): NumPy pickles an array as an "
                "empty one, _reconstruct(numpy.ndarray, (0,), 'b'), then fills it from its own data."
            )
        self.plain_dtype(dtype)
        array = _RECONSTRUCT(_CheckedArray, (0,), b"b")
        array._unpickler = self
        return array

    def _scalar(self, dtype, data=None):
        dtype = self.plain_dtype(dtype)
        if not isinstance(data, (bytes, str)) or len(data) != dtype.itemsize:
            raise DataFormatError(f"{self._name}: a {dtype} scalar needs {dtype.itemsize} bytes of data.")
        return _SCALAR(dtype, data.encode("latin1") if isinstance(data, str) else data)

    def _encode(self, text, encoding="utf-8", errors="strict"):
        if not isinstance(text, str) or str(encoding).lower().replace("-", "") != "latin1":
            raise UnsafePickleError(
                f"{self._name}: refusing _codecs.encode(..., {encoding!r}): Python 3 pickles bytes as Latin-1 text."
            )
        self.spend(len(text))
        return text.encode("latin1")

    def _frombuffer(self, buffer, dtype, shape, order="C"):
        dtype = self.plain_dtype(dtype)
        size = self.checked_size(shape, dtype)
        try:
            n_bytes = memoryview(buffer).nbytes
        except TypeError:
            raise DataFormatError(
                f"{self._name}: an array's data must be bytes, not {type(buffer).__name__}."
            ) from None
        if n_bytes != size or order not in ("C", "F"):
            raise DataFormatError(
                f"{self._name}: an array of shape {tuple(shape)} and type {dtype} needs {size:,} bytes "
                f"in order 'C' or 'F'; the pickle gives {n_bytes:,} in order {order!r}."
            )
        self.spend(size)
        return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


def _plain(obj, name: str, depth: int = 0):
    """``obj`` with every :class:`_CheckedArray` turned into a plain array (tuples and lists walked)."""
    if depth > 10:
        raise DataFormatError(f"{name}: the pickle nests tuples more than 10 deep; MNIST's nests 2.")
    if isinstance(obj, _CheckedArray):
        if obj.__dict__.get("_unpickler") is not None:  # its state never came: not a pickle NumPy writes
            raise UnsafePickleError(f"{name}: an array was never filled from its state.")
        return obj.view(np.ndarray)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_plain(item, name, depth + 1) for item in obj)
    return obj


class _Limited:
    """A stream that refuses any read past ``limit`` bytes, before it is made.

    The unpickler reads each string as one ``read(n)`` whose ``n`` the pickle
    declares; here that ``n`` is checked against what the file can hold
    before any memory is taken for it.
    """

    def __init__(self, f, limit: int, name: str, why: str):
        self._f, self._limit, self._name, self._why, self.position = f, limit, name, why, 0

    def _check(self, n: int) -> None:
        if self.position + n > self._limit:
            raise DataFormatError(
                f"{self._name}: at byte {self.position:,} the pickle declares {n:,} bytes of data, but {self._why}. "
                "It is damaged or not the MNIST pickle; delete it and download it again."
            )

    def read(self, n=-1):
        n = self._limit - self.position if n is None or n < 0 else n
        self._check(n)
        data = self._f.read(n)
        self.position += len(data)
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size=-1):
        line = self._f.readline(self._limit - self.position + 1)
        self._check(len(line))
        self.position += len(line)
        return line


def _pickle_limit(opened: _Opened, name: str) -> tuple[int, str]:
    """The most bytes the pickle in ``opened`` can hold, and why; an error if its gzip trailer already says more."""
    if (
        opened.isize is not None and opened.isize > MAX_PICKLE_BYTES
    ):  # isize is the size modulo 2**32: at least that
        raise DataFormatError(
            f"{name}: its last 4 bytes, where a gzip file says how large it inflates, give {opened.isize:,} "
            f"bytes, more than the {MAX_PICKLE_BYTES:,} accepted (the MNIST pickle is 220 MB). The file is "
            "truncated or corrupt, or not the MNIST pickle; delete it and download it again."
        )
    most = opened.most_bytes()
    if most is not None and most < MAX_PICKLE_BYTES:
        held = (
            f"a gzip file of {opened.size:,} bytes inflates to at most"
            if opened.is_gzip
            else "the file holds"
        )
        return most, f"{held} {most:,}"
    return MAX_PICKLE_BYTES, f"a pickle may hold at most {MAX_PICKLE_BYTES:,} (the MNIST pickle is 220 MB)"


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
    it cannot run code or take more memory than :data:`MAX_PICKLE_BYTES`
    and what the file holds allow, that a gzip file is read to its end (so
    its CRC is checked: one flipped byte is an error, not one changed
    pixel), and that the result has the MNIST layout (:func:`check_mnist_layout`).
    See ``book/dataset.ipynb``.
    """
    name = _describe(path_or_fileobj)
    opened = _open_maybe_gzip(path_or_fileobj)
    try:
        limit, why = _pickle_limit(opened, name)
        obj = RestrictedUnpickler(_Limited(opened.f, limit, name, why), name=name, encoding="latin1").load()
        _expect_end(opened.f, name, "the end of the pickle")
    except (UnsafePickleError, DataFormatError):
        raise
    except _STREAM_ERRORS as exc:
        raise _stream_error(name, exc, "the pickle") from exc
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataFormatError(
            f"{name}: could not read it as the MNIST pickle ({type(exc).__name__}: {exc})."
        ) from exc
    finally:
        opened.close()
    return check_mnist_layout(obj, name)

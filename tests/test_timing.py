"""Timing helpers: the medians are of real calls, and an epoch runs the trainer's updates."""

import numpy as np
import pytest

from dlt_lib import timing, training
from dlt_lib.models import LogisticRegression


def test_median_times_calls_each_function_interleaved():
    calls = []
    result = timing.median_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]
    assert set(result) == {"a", "b"} and all(v >= 0 for v in result.values())


def toy(n=240, n_in=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in)).astype("float32")
    return X, (X[:, 0] > 0).astype("int64")


def test_epoch_times_report_updates_per_epoch():
    X, y = toy()
    result = timing.epoch_times(lambda: LogisticRegression(6, 2), X, y, [1, 20, 240], repeats=1)
    assert [r.updates_per_epoch for r in result] == [240, 12, 1]
    assert all(r.seconds_per_epoch > 0 and r.microseconds_per_update > 0 for r in result)


def test_compile_updates_runs_the_trainers_epoch():
    X, y = toy()
    model = LogisticRegression(6, 2)
    runner = training.compile_updates(model, X, y, batch_size=20, learning_rate=0.5)
    costs = runner.epoch()
    assert costs.shape == (12,) and costs[-1] < costs[0]  # learning a linearly separable rule
    with pytest.raises(ValueError, match="batch_size"):
        training.compile_updates(LogisticRegression(6, 2), X, y, batch_size=0, learning_rate=0.5)


def test_feeding_comparison_times_both_ways():
    X, y = toy()
    result = timing.feeding_comparison(X, y, batch_size=20, repeats=1)
    assert set(result) == {"shared", "host"} and all(v > 0 for v in result.values())

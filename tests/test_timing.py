"""Timing helpers: the medians are of real calls, and an epoch runs the trainer's updates."""

import numpy as np
import pytest

from dlt_lib import timing, training
from dlt_lib.models import LogisticRegression


def test_median_times_calls_each_function_interleaved():
    calls = []
    result = timing.median_times(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1
    )
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


@pytest.mark.parametrize("mode", ["C", pytest.param("JAX", marks=pytest.mark.jax)])
def test_feeding_comparison_times_both_ways(mode):
    X, y = toy()
    result = timing.feeding_comparison(X, y, batch_size=20, repeats=1, mode=mode)
    assert set(result) == {"shared", "host"} and all(v > 0 for v in result.values())


@pytest.mark.jax
def test_jax_training_matches_c_and_keeps_the_data_on_the_device():
    import jax

    X, y = toy()
    data = ((X, y), (X[:60], y[:60]), (X[60:120], y[60:120]))
    runs = {}
    for mode in ("C", "JAX"):
        model = LogisticRegression(6, 2)
        runs[mode] = (
            model,
            training.train(model, data, batch_size=20, n_epochs=3, mode=mode, progress=False),
        )
    np.testing.assert_allclose(runs["JAX"][1].train_costs, runs["C"][1].train_costs, rtol=1e-5)
    np.testing.assert_allclose(runs["JAX"][0].W.get_value(), runs["C"][0].W.get_value(), rtol=1e-4, atol=1e-6)
    runner = training.compile_updates(
        LogisticRegression(6, 2), X, y, batch_size=20, learning_rate=0.5, mode="JAX"
    )
    data_vars = [v for v in runner.fn.maker.fgraph.inputs if getattr(v, "name", "") in ("train_X", "train_y")]
    storage = [runner.fn.input_storage[runner.fn.maker.fgraph.inputs.index(v)].storage[0] for v in data_vars]
    assert storage and all(isinstance(value, jax.Array) for value in storage)

"""LeNet: its forward pass against a NumPy/SciPy transcription, saving and loading,
evaluation in chunks, and that it learns digits better than the MLP."""

import numpy as np
import pytest
from scipy import signal

from dlt_lib import checkpoint, data, training
from dlt_lib.models import MLP, LeNet
from dlt_lib.validation import InvalidParameterError


def numpy_lenet(values, X):
    """convolutional_mlp.py's forward pass in NumPy: conv (flipped filters), 2x2 max-pool, +b, tanh; twice."""

    def conv_pool(x, W, b):
        out = np.array([[sum(signal.convolve(x[i, c], W[k, c], mode="valid") for c in range(x.shape[1]))
                         for k in range(W.shape[0])] for i in range(x.shape[0])])  # fmt: skip
        n, k, rows, cols = out.shape
        pooled = (
            out[:, :, : rows // 2 * 2, : cols // 2 * 2]
            .reshape(n, k, rows // 2, 2, cols // 2, 2)
            .max(axis=(3, 5))
        )
        return np.tanh(pooled + b[None, :, None, None])

    x = X.reshape(-1, 1, 28, 28).astype(np.float64)
    x = conv_pool(x, values["conv1_W"], values["conv1_b"])
    x = conv_pool(x, values["conv2_W"], values["conv2_b"])
    h = np.tanh(x.reshape(len(X), -1) @ values["hidden_W"] + values["hidden_b"])
    z = h @ values["output_W"] + values["output_b"]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _random_parameters(model, seed=0):
    # The output layer starts at zero (every class 1/10): give it values so the test can fail.
    rng = np.random.default_rng(seed)
    values = model.get_param_values()
    values["output_W"] = rng.normal(scale=0.3, size=values["output_W"].shape).astype("float32")
    values["conv1_b"] = rng.normal(scale=0.1, size=values["conv1_b"].shape).astype("float32")
    model.set_param_values(values)
    return values


def test_forward_pass_matches_numpy_and_scipy():
    model = LeNet(nkerns=(4, 6), n_hidden=20)
    values = _random_parameters(model)
    X = np.random.default_rng(1).random((7, 784), dtype=np.float32)
    np.testing.assert_allclose(model.predict_proba(X), numpy_lenet(values, X), atol=1e-5)


def test_predicts_in_chunks_the_same_as_at_once(monkeypatch):
    model = LeNet(nkerns=(4, 6), n_hidden=20)
    _random_parameters(model)
    X = np.random.default_rng(2).random((11, 784), dtype=np.float32)
    at_once = model.predict_proba(X)
    monkeypatch.setattr(model, "eval_batch_size", 4)  # 4 + 4 + 3
    np.testing.assert_allclose(model.predict_proba(X), at_once, atol=1e-6)
    assert model.predict(X).shape == (11,)


def test_trainer_evaluates_every_example_in_chunks(monkeypatch):
    import pytensor.tensor as pt

    model = LeNet(nkerns=(4, 6), n_hidden=20)
    _random_parameters(model)
    rng = np.random.default_rng(3)
    X, y = rng.random((11, 784), dtype=np.float32), rng.integers(0, 10, 11)
    labels = pt.ivector("y")
    monkeypatch.setattr(model, "eval_batch_size", 4)
    error, nll = training._evaluator(model, labels, (X, y), "valid", "C")()
    p = numpy_lenet(model.get_param_values(), X)
    assert error == pytest.approx(np.mean(p.argmax(axis=1) != y))
    assert nll == pytest.approx(-np.mean(np.log(p[np.arange(11), y])), rel=1e-5)


def test_checkpoint_round_trip(tmp_path):
    model = LeNet(nkerns=(4, 6), n_hidden=20, seed=5)
    _random_parameters(model)
    path = checkpoint.save(tmp_path / "lenet.npz", model)
    again = checkpoint.load(path)
    assert isinstance(again, LeNet) and again.hyperparameters() == model.hyperparameters()
    X = np.random.default_rng(4).random((3, 784), dtype=np.float32)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"nkerns": (20,)}, "two stages"),
        ({"nkerns": (0, 5)}, "integer >= 1"),
        ({"image_shape": (12, 12)}, "too small"),
        ({"n_hidden": 0}, "integer >= 1"),
    ],
)
def test_clear_errors_for_impossible_architectures(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        LeNet(**kwargs)


def test_lenet_beats_the_mlp_trained_as_long():
    # The same 2,000 training digits of the embedded sample, the same number of
    # epochs and updates (batch 20, learning rate 0.1): the convolutional network
    # must end with a clearly lower validation error.  (About 20 s on 2 cores.)
    (Xtr, ytr), valid, test = data.load_mnist_sample(verbose=False)
    small = ((Xtr[:2000], ytr[:2000]), valid, test)
    settings = dict(learning_rate=0.1, batch_size=20, n_epochs=3, progress=False, mode="C")
    settings["early_stopping"] = training.EarlyStopping(patience=10**6)  # the epochs decide
    lenet = training.train(LeNet(), small, **settings)
    mlp = training.train(MLP(784, 500, 10), small, **settings)
    assert lenet.n_train_batches == mlp.n_train_batches == 100
    assert lenet.best_valid_error < mlp.best_valid_error - 0.02
    assert lenet.best_valid_error < 0.75 * mlp.best_valid_error


def test_parameter_shapes_match_the_model_without_building_it():
    for hyper in ({}, {"nkerns": [4, 6], "image_shape": [32, 32], "n_hidden": 30, "poolsize": 2}):
        model = LeNet(**hyper)
        shapes = LeNet.parameter_shapes(**model.hyperparameters())
        assert shapes == {p.name: p.get_value().shape for p in model.params}
    with pytest.raises(InvalidParameterError, match="too small"):
        LeNet.parameter_shapes(image_shape=(12, 12))

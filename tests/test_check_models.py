"""The exercise checks of the model chapters pass right answers and catch plausible wrong ones."""

import numpy as np
import pytensor.tensor as pt
import pytest
from scipy import signal

from dlt_lib import check


def _stable_log_softmax(z):
    shifted = z - pt.max(z, axis=1, keepdims=True)
    return shifted - pt.log(pt.sum(pt.exp(shifted), axis=1, keepdims=True))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _gradient(X, y, W, b):
    G = _softmax(X @ W + b)
    G[np.arange(len(y)), y] -= 1
    G /= len(X)
    return X.T @ G, G.sum(axis=0)


def _tutorial_rate(y_pred, y, batch_size):
    n = len(y) // batch_size
    return np.mean([np.mean(y_pred[i * batch_size : (i + 1) * batch_size] != y[i * batch_size : (i + 1) * batch_size])
                    for i in range(n)])  # fmt: skip


def _conv(x, w):
    return np.array([[sum(signal.convolve(x[i, c], w[k, c], mode="valid") for c in range(x.shape[1]))
                      for k in range(w.shape[0])] for i in range(x.shape[0])])  # fmt: skip


def _pool(x, a, b):
    n, c, rows, cols = x.shape
    x = x[:, :, : rows // a * a, : cols // b * b]
    return x.reshape(n, c, rows // a, a, cols // b, b).max(axis=(3, 5))


def _shapes(image, f, p, nkerns):
    rows, cols = image
    stages = []
    for k in nkerns:
        rows, cols = (rows - f + 1) // p, (cols - f + 1) // p
        stages.append((k, rows, cols))
    return stages, nkerns[-1] * rows * cols


RIGHT_AND_WRONG = {
    "log_softmax": (
        _stable_log_softmax,
        [
            lambda z: z - pt.log(pt.sum(pt.exp(z), axis=1, keepdims=True)),  # overflows
            lambda z: pt.log(pt.special.softmax(z, axis=1) + 1e-30),  # underflows to log(1e-30)
            lambda z: z - pt.max(z, axis=1, keepdims=True),  # forgot the log-sum-exp
        ],
    ),
    "softmax_regression_gradient": (
        _gradient,
        [
            lambda X, y, W, b: tuple(len(X) * g for g in _gradient(X, y, W, b)),  # the sum, not the mean
            lambda X, y, W, b: tuple(-g for g in _gradient(X, y, W, b)),  # the sign
            lambda X, y, W, b: (
                X.T @ _softmax(X @ W + b) / len(X),
                _softmax(X @ W + b).mean(axis=0),
            ),  # no -Y
        ],
    ),
    "tutorial_error_rate": (
        _tutorial_rate,
        [
            lambda y_pred, y, batch_size: np.mean(y_pred != y),  # every example
            lambda y_pred, y, batch_size: np.mean(  # a partial last minibatch included
                [
                    np.mean(y_pred[i : i + batch_size] != y[i : i + batch_size])
                    for i in range(0, len(y), batch_size)
                ]
            ),
        ],
    ),
    "glorot_bound": (
        lambda n_in, n_out, a: np.sqrt(6 / (n_in + n_out)) * (4 if a == "sigmoid" else 1),
        [
            lambda n_in, n_out, a: np.sqrt(6 / (n_in + n_out)),  # forgot the 4
            lambda n_in, n_out, a: (
                np.sqrt(2 / (n_in + n_out)) * (4 if a == "sigmoid" else 1)
            ),  # the std, not the bound
            lambda n_in, n_out, a: np.sqrt(6 / n_in) * (4 if a == "sigmoid" else 1),  # fan-in only
        ],
    ),
    "mlp_forward": (
        lambda X, W1, b1, W2, b2: _softmax(np.tanh(X @ W1 + b1) @ W2 + b2),
        [
            lambda X, W1, b1, W2, b2: np.tanh(X @ W1 + b1) @ W2 + b2,  # scores, not probabilities
            lambda X, W1, b1, W2, b2: _softmax((X @ W1 + b1) @ W2 + b2),  # no nonlinearity
            lambda X, W1, b1, W2, b2: _softmax(np.tanh(X @ W1) @ W2 + b2),  # no hidden bias
        ],
    ),
    "conv2d": (
        _conv,
        [
            lambda x, w: _conv(x, w[:, :, ::-1, ::-1]),  # cross-correlation
            lambda x, w: (
                _conv(x, w.transpose(0, 1, 3, 2)) if w.shape[2] == w.shape[3] else _conv(x, w)[:, :, :-1]
            ),
            lambda x, w: _conv(x[:, :1], w[:, :1]),  # only the first channel
        ],
    ),
    "max_pool_2d": (
        _pool,
        [
            lambda x, a, b: _pool(-x, a, b) * -1,  # min-pooling
            lambda x, a, b: x[:, :, ::a, ::b],  # subsampling, border kept
            lambda x, a, b: (
                _pool(x, b, a) if a != b else _pool(x, a, b)[:, :, :, :-1]
            ),  # rows and columns swapped
        ],
    ),
    "lenet_shapes": (
        _shapes,
        [
            lambda image, f, p, nk: (
                [(k, s[1] * p, s[2] * p) for k, s in zip(nk, _shapes(image, f, p, nk)[0])],
                0,
            ),
            lambda image, f, p, nk: (
                _shapes(image, f, p, nk)[0],
                _shapes(image, f, p, nk)[1] // nk[-1],
            ),  # no channels
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(RIGHT_AND_WRONG))
def test_right_answer_passes_and_wrong_answers_fail(name):
    checker = getattr(check, name)
    right, wrongs = RIGHT_AND_WRONG[name]
    result = checker(right)
    assert result.ok, str(result)
    for wrong in wrongs:
        result = checker(wrong)
        assert not result.ok, f"{name} accepted a wrong answer"
        assert result.problems and "✘" in str(result)
    with pytest.raises(AssertionError):
        checker(wrongs[0], strict=True)


def test_a_crashing_answer_is_reported_not_raised():
    result = check.conv2d(lambda x, w: 1 / 0)
    assert not result.ok and "ZeroDivisionError" in str(result)


def test_conv2d_says_when_the_filter_was_not_flipped():
    result = check.conv2d(lambda x, w: _conv(x, w[:, :, ::-1, ::-1]))
    assert any("cross-correlation" in p for p in result.problems)


def test_tutorial_error_rate_recognises_the_rate_over_every_example():
    result = check.tutorial_error_rate(lambda y_pred, y, batch_size: np.mean(y_pred != y))
    assert any("every example" in p for p in result.problems)

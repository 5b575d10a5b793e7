"""Right and plausible wrong answers for the checks of the model chapters (8-10).

``tests/test_check.py`` adds them to its tables (RIGHT, WRONG), which every
public check must have an entry in.  Each wrong answer comes with a piece of
the diagnosis the check must give.
"""

import numpy as np
import pytensor.tensor as pt
from scipy import signal


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def stable_log_softmax(z):
    shifted = z - pt.max(z, axis=1, keepdims=True)
    return shifted - pt.log(pt.sum(pt.exp(shifted), axis=1, keepdims=True))


def nll_gradient(X, y, W, b):
    G = _softmax(X @ W + b)
    G[np.arange(len(y)), y] -= 1
    G /= len(X)
    return X.T @ G, G.sum(axis=0)


def tutorial_rate(y_pred, y, batch_size):
    n = len(y) // batch_size
    return np.mean([np.mean(y_pred[i * batch_size : (i + 1) * batch_size] != y[i * batch_size : (i + 1) * batch_size])
                    for i in range(n)])  # fmt: skip


def conv(x, w):
    return np.array([[sum(signal.convolve(x[i, c], w[k, c], mode="valid") for c in range(x.shape[1]))
                      for k in range(w.shape[0])] for i in range(x.shape[0])])  # fmt: skip


def pool(x, a, b, reduce=np.max):
    n, c, rows, cols = x.shape
    return reduce(
        x[:, :, : rows // a * a, : cols // b * b].reshape(n, c, rows // a, a, cols // b, b), axis=(3, 5)
    )


def shapes(image, f, p, nkerns, pool=True):
    rows, cols = image
    stages = []
    for k in nkerns:
        rows, cols = (rows - f + 1) // (p if pool else 1), (cols - f + 1) // (p if pool else 1)
        stages.append((k, rows, cols))
    return stages, nkerns[-1] * rows * cols


def mlp(X, W1, b1, W2, b2):
    return _softmax(np.tanh(X @ W1 + b1) @ W2 + b2)


MODEL_RIGHT = {
    "log_softmax": stable_log_softmax,
    "softmax_regression_gradient": nll_gradient,
    "tutorial_error_rate": tutorial_rate,
    "glorot_bound": lambda n_in, n_out, a: np.sqrt(6 / (n_in + n_out)) * (4 if a == "sigmoid" else 1),
    "mlp_forward": mlp,
    "conv2d": conv,
    "max_pool_2d": pool,
    "lenet_shapes": shapes,
}

MODEL_WRONG = {
    "log_softmax": [
        (
            "the definition",
            lambda z: z - pt.log(pt.sum(pt.exp(z), axis=1, keepdims=True)),
            "subtract the row's maximum",
        ),
        ("no log-sum-exp", lambda z: z - pt.max(z, axis=1, keepdims=True), "log-sum-exp is missing"),
        ("the softmax", lambda z: pt.special.softmax(z, axis=1), "not its log"),
    ],
    "softmax_regression_gradient": [
        ("the sum", lambda X, y, W, b: tuple(len(X) * g for g in nll_gradient(X, y, W, b)), "*sum*"),
        ("the sign", lambda X, y, W, b: tuple(-g for g in nll_gradient(X, y, W, b)), "flipped sign"),
        (
            "no -Y",
            lambda X, y, W, b: (X.T @ _softmax(X @ W + b) / len(X), _softmax(X @ W + b).mean(axis=0)),
            "one-hot",
        ),
        ("one output", lambda X, y, W, b: nll_gradient(X, y, W, b)[0], "expected the pair"),
    ],
    "tutorial_error_rate": [
        ("every example", lambda y_pred, y, batch_size: np.mean(y_pred != y), "every example"),
        (
            "partial minibatch kept",
            lambda y_pred, y, b: np.mean(
                [np.mean(y_pred[i : i + b] != y[i : i + b]) for i in range(0, len(y), b)]
            ),
            "partial minibatch",
        ),
    ],
    "glorot_bound": [
        ("no 4", lambda n_in, n_out, a: np.sqrt(6 / (n_in + n_out)), "multiplies it by 4"),
        (
            "the std",
            lambda n_in, n_out, a: np.sqrt(2 / (n_in + n_out)) * (4 if a == "sigmoid" else 1),
            "standard deviation",
        ),
        ("fan-in", lambda n_in, n_out, a: np.sqrt(6 / n_in) * (4 if a == "sigmoid" else 1), "fan-in alone"),
    ],
    "mlp_forward": [
        ("scores", lambda X, W1, b1, W2, b2: np.tanh(X @ W1 + b1) @ W2 + b2, "without the softmax"),
        ("linear", lambda X, W1, b1, W2, b2: _softmax((X @ W1 + b1) @ W2 + b2), "without its nonlinearity"),
        ("no hidden bias", lambda X, W1, b1, W2, b2: _softmax(np.tanh(X @ W1) @ W2 + b2), "bias forgotten"),
    ],
    "conv2d": [
        ("cross-correlation", lambda x, w: conv(x, w[:, :, ::-1, ::-1]), "flips the filters"),
        ("one channel", lambda x, w: conv(x[:, :1], w[:, :1]), "every channel"),
        ("no reduction over channels", lambda x, w: conv(x, w)[:, :, :-1], "expected"),
    ],
    "max_pool_2d": [
        ("min", lambda x, a, b: pool(x, a, b, np.min), "min-pooling"),
        ("mean", lambda x, a, b: pool(x, a, b, np.mean), "mean-pooling"),
        ("border kept", lambda x, a, b: x[:, :, ::a, ::b], "shape"),
    ],
    "lenet_shapes": [
        ("no pooling", lambda image, f, p, nk: shapes(image, f, p, nk, pool=False), "pooling forgotten"),
        (
            "no channels",
            lambda image, f, p, nk: (shapes(image, f, p, nk)[0], shapes(image, f, p, nk)[1] // nk[-1]),
            "without the channels",
        ),
        ("not a pair", lambda image, f, p, nk: 42, "expected (list"),
    ],
}

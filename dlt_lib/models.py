"""Models, one class each, in the style of the tutorials' ``logistic_sgd.py`` and ``mlp.py``.

Each model

- keeps its parameters in **shared variables** (``self.params``), so the
  values live with the compiled functions and ``updates`` can change them in place;
- builds symbolic expressions on its input variable ``self.input``
  (``p_y_given_x``, ``y_pred``) and offers the two losses the tutorials use,
  ``negative_log_likelihood(y)`` (to train) and ``errors(y)`` (to report);
- exposes ``L1`` and ``L2_sqr`` over its *weights* (biases are not penalised).

The trainer in :mod:`dlt_lib.training` substitutes real minibatches for
``self.input`` with ``givens``, exactly as the tutorials do.
"""

from __future__ import annotations

import numbers

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import zero_grad

from dlt_lib import backend as _backend  # noqa: F401  (sets floatX=float32 before we build anything)
from dlt_lib import losses
from dlt_lib.validation import InvalidParameterError, check_scalar


def _floatX(array):
    return np.asarray(array, dtype=pytensor.config.floatX)


def _check_positive_int(name, value):
    return int(check_scalar(value, name, numbers.Integral, min_val=1))


def _make_input(input, n_in):
    if input is None:
        return pt.matrix("x", shape=(None, n_in))
    if input.ndim != 2:
        raise InvalidParameterError(
            f"The input must be a matrix of shape (n_examples, {n_in}); got a {input.ndim}-d variable "
            f"{input}. Reshape images to rows first, e.g. X.reshape(len(X), -1)."
        )
    width = input.type.shape[1]
    if width is not None and width != n_in:
        raise InvalidParameterError(f"The input has {width} columns but the model expects n_in={n_in}.")
    return input


def _check_finite(X) -> None:
    """Refuse inputs holding NaN or infinities, by name: they would make every cost NaN, not a bad step."""
    if X.dtype.kind != "f" or np.isfinite(X).all():
        return
    bad = ~np.isfinite(X)
    row, column = np.argwhere(bad)[0]
    kinds = " and ".join(k for k, f in (("NaN", np.isnan), ("infinite", np.isinf)) if f(X[bad]).any())
    raise InvalidParameterError(
        f"The inputs hold {int(bad.sum()):,} {kinds} values (pixels), the first in row {row}, column {column}. "
        "Fix or drop those examples first (np.isfinite(X).all(axis=1) marks the good rows)."
    )


def log_softmax(logits):
    """``log softmax(z) = z - logsumexp(z)``, computed without overflow.

    ``softmax(z)`` then ``log`` would round tiny probabilities to 0 and give
    ``-inf``; subtracting the row maximum first keeps every ``exp`` <= 1.
    Taught in ``book/losses.ipynb``.
    """
    # The shift changes no result (log-softmax is the same for z and z - c),
    # so its gradient is zero; zero_grad says so and spares the gradient graph
    # the work of differentiating the max (jax.nn.log_softmax does the same).
    shifted = logits - zero_grad(pt.max(logits, axis=1, keepdims=True))
    return shifted - pt.log(pt.sum(pt.exp(shifted), axis=1, keepdims=True))


class _Classifier:
    """What every classifier here shares: probabilities, predictions and the two losses."""

    n_in: int
    n_out: int
    input: pt.TensorVariable
    params: list

    def _set_output(self, logits):
        self.logits = logits
        self.log_p_y_given_x = log_softmax(logits)
        self.p_y_given_x = pt.exp(self.log_p_y_given_x)
        self.y_pred = pt.argmax(logits, axis=1)

    def negative_log_likelihood(self, y):
        """Mean NLL of the labels ``y`` over the minibatch (see :mod:`dlt_lib.losses`)."""
        return losses.negative_log_likelihood(self.p_y_given_x, y, log_p_y_given_x=self.log_p_y_given_x)

    def errors(self, y):
        """Fraction of examples whose predicted class differs from ``y`` (the 0-1 loss rate)."""
        if y.ndim != self.y_pred.ndim:
            raise TypeError(
                f"y should have the same shape as self.y_pred: got y {y.type}, y_pred {self.y_pred.type}."
            )
        return losses.zero_one_rate(self.p_y_given_x, y)

    # -- convenience for NumPy arrays (notebooks, evaluation) ------------------
    def check_data(self, X, y=None):
        """Raise a clear error unless ``X`` is ``(n, n_in)`` and ``y`` holds labels in ``0..n_out-1``."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_in:
            raise InvalidParameterError(
                f"{type(self).__name__} expects inputs of shape (n_examples, {self.n_in}); got {X.shape}. "
                "Flatten 28x28 images with X.reshape(len(X), -1)."
            )
        _check_finite(X)
        if y is not None:
            y = np.asarray(y)
            if y.shape != (X.shape[0],):
                raise InvalidParameterError(
                    f"Expected one label per example, shape ({X.shape[0]},); got labels of shape {y.shape}."
                )
            if not np.issubdtype(y.dtype, np.integer):
                raise InvalidParameterError(
                    f"Labels must be integers in 0..{self.n_out - 1}; got dtype {y.dtype}."
                )
            if y.size and (y.min() < 0 or y.max() >= self.n_out):
                raise InvalidParameterError(
                    f"Labels must lie in 0..{self.n_out - 1} for a model with n_out={self.n_out}; "
                    f"got values from {y.min()} to {y.max()}."
                )
        return X, y

    def _compiled(self, name, output):
        cache = self.__dict__.setdefault("_functions", {})
        key = (name, _backend.mode_name())
        if key not in cache:
            cache[key] = pytensor.function([self.input], output, mode=_backend.get_mode())
        return cache[key]

    def predict_proba(self, X):
        """Class probabilities for a NumPy array of inputs."""
        X, _ = self.check_data(X)
        return self._compiled("proba", self.p_y_given_x)(_floatX(X))

    def predict(self, X):
        """Predicted classes for a NumPy array of inputs."""
        X, _ = self.check_data(X)
        return self._compiled("predict", self.y_pred)(_floatX(X))

    def error_rate(self, X, y):
        """Fraction of misclassified examples, computed on NumPy arrays."""
        X, y = self.check_data(X, y)
        return float(np.mean(self.predict(X) != y))

    # -- parameters as plain arrays -------------------------------------------
    def get_param_values(self):
        """A dict ``name -> copy of the value`` (what a checkpoint stores)."""
        return {p.name: p.get_value(borrow=False) for p in self.params}

    def set_param_values(self, values):
        """Load values saved by :meth:`get_param_values`, checking names, shapes and dtypes."""
        expected = {p.name: p for p in self.params}
        missing = sorted(set(expected) - set(values))
        extra = sorted(set(values) - set(expected))
        if missing or extra:
            raise InvalidParameterError(
                f"{type(self).__name__} has parameters {sorted(expected)}; the values given have "
                f"{sorted(values)} (missing {missing}, unexpected {extra})."
            )
        for name, param in expected.items():
            value = np.asarray(values[name])
            current = param.get_value(borrow=True)
            if value.shape != current.shape:
                raise InvalidParameterError(
                    f"Parameter {name!r} of {type(self).__name__} has shape {current.shape}; "
                    f"the value given has shape {value.shape}. Was it saved from a model of another size?"
                )
            if value.dtype != current.dtype:
                raise InvalidParameterError(
                    f"Parameter {name!r} has dtype {current.dtype}; the value given has {value.dtype}."
                )
        for name, param in expected.items():
            param.set_value(np.array(values[name], copy=True))

    @property
    def n_parameters(self) -> int:
        return int(sum(p.get_value(borrow=True).size for p in self.params))


class LogisticRegression(_Classifier):
    """Multi-class logistic regression: ``p(y|x) = softmax(x W + b)``.

    ``W`` (``n_in x n_out``) and ``b`` start at zero, as in the tutorial: the
    loss is convex, so there is no symmetry to break.

    Parameters
    ----------
    n_in : int
        Length of an input vector (784 for 28x28 images).
    n_out : int
        Number of classes.
    input : symbolic matrix, optional
        The input variable; a fresh ``pt.matrix("x")`` when omitted.
    Taught in ``book/losses.ipynb``.
    """

    def __init__(self, n_in: int, n_out: int, input=None):
        self.n_in = _check_positive_int("n_in", n_in)
        self.n_out = _check_positive_int("n_out", n_out)
        self.input = _make_input(input, self.n_in)
        self.W = pytensor.shared(
            _floatX(np.zeros((self.n_in, self.n_out))), name="W", shape=(self.n_in, self.n_out)
        )
        self.b = pytensor.shared(_floatX(np.zeros(self.n_out)), name="b", shape=(self.n_out,))
        self.params = [self.W, self.b]
        self._set_output(pt.dot(self.input, self.W) + self.b)
        self.L1 = losses.l1_penalty([self.W])
        self.L2_sqr = losses.l2_penalty([self.W])

    def hyperparameters(self) -> dict:
        return {"n_in": self.n_in, "n_out": self.n_out}

    @staticmethod
    def parameter_shapes(n_in, n_out) -> dict:
        """The shape of each parameter for these hyper-parameters, without building anything.

        :func:`dlt_lib.checkpoint.load` checks a file's arrays against it
        before it builds the model the file's metadata describes.
        """
        n_in, n_out = _check_positive_int("n_in", n_in), _check_positive_int("n_out", n_out)
        return {"W": (n_in, n_out), "b": (n_out,)}


def glorot_uniform(rng, n_in, n_out, activation="tanh"):
    """Draw ``W`` uniformly in ``+-sqrt(6 / (n_in + n_out))`` (Glorot and Bengio, 2010).

    That bound keeps the variance of activations and of back-propagated
    gradients roughly equal across layers for ``tanh``.  For the logistic
    sigmoid, whose slope at 0 is 1/4 instead of 1, the bound is 4 times larger.
    See ``book/putting_it_together.ipynb``.
    """
    bound = np.sqrt(6.0 / (n_in + n_out))
    if activation == "sigmoid":
        bound *= 4
    elif activation != "tanh":
        raise InvalidParameterError(f"activation must be 'tanh' or 'sigmoid'; got {activation!r}.")
    return _floatX(rng.uniform(low=-bound, high=bound, size=(n_in, n_out)))


_ACTIVATIONS = {"tanh": pt.tanh, "sigmoid": pt.sigmoid}


class HiddenLayer:
    """A fully connected layer ``h = activation(x W + b)`` with Glorot-uniform ``W`` and zero ``b``.

    Taught in ``book/putting_it_together.ipynb``.
    """

    def __init__(self, rng, input, n_in: int, n_out: int, activation: str = "tanh", name: str = "hidden"):
        if activation not in _ACTIVATIONS:
            raise InvalidParameterError(
                f"activation must be one of {sorted(_ACTIVATIONS)}; got {activation!r}."
            )
        self.n_in = _check_positive_int("n_in", n_in)
        self.n_out = _check_positive_int("n_out", n_out)
        self.input = _make_input(input, self.n_in)
        self.activation = activation
        self.W = pytensor.shared(
            glorot_uniform(rng, n_in, n_out, activation), name=f"{name}_W", shape=(n_in, n_out)
        )
        self.b = pytensor.shared(_floatX(np.zeros(n_out)), name=f"{name}_b", shape=(n_out,))
        self.params = [self.W, self.b]
        self.output = _ACTIVATIONS[activation](pt.dot(self.input, self.W) + self.b)


class MLP(_Classifier):
    """A multi-layer perceptron: one tanh hidden layer, then logistic regression.

    ``p(y|x) = softmax(tanh(x W1 + b1) W2 + b2)``.  The hidden weights are
    drawn from a seeded generator, so the same ``seed`` gives the same model.
    Taught in ``book/putting_it_together.ipynb``.
    """

    def __init__(
        self, n_in: int, n_hidden: int, n_out: int, input=None, seed: int = 1234, activation: str = "tanh"
    ):
        self.n_in = _check_positive_int("n_in", n_in)
        self.n_hidden = _check_positive_int("n_hidden", n_hidden)
        self.n_out = _check_positive_int("n_out", n_out)
        self.seed = int(check_scalar(seed, "seed", numbers.Integral, min_val=0, max_val=2**32 - 1))
        self.input = _make_input(input, self.n_in)
        rng = np.random.default_rng(self.seed)
        self.hidden = HiddenLayer(rng, self.input, self.n_in, self.n_hidden, activation=activation)
        self.output_layer = LogisticRegression(self.n_hidden, self.n_out, input=self.hidden.output)
        self.output_layer.W.name, self.output_layer.b.name = "output_W", "output_b"
        self.params = self.hidden.params + self.output_layer.params
        self._set_output(self.output_layer.logits)
        weights = [self.hidden.W, self.output_layer.W]
        self.L1 = losses.l1_penalty(weights)
        self.L2_sqr = losses.l2_penalty(weights)

    def hyperparameters(self) -> dict:
        return {
            "n_in": self.n_in,
            "n_hidden": self.n_hidden,
            "n_out": self.n_out,
            "seed": self.seed,
            "activation": self.hidden.activation,
        }

    @staticmethod
    def parameter_shapes(n_in, n_hidden, n_out, seed=1234, activation="tanh") -> dict:
        """The shape of each parameter for these hyper-parameters, without building anything (see LogisticRegression)."""
        n_in, n_hidden, n_out = (
            _check_positive_int(k, v) for k, v in zip(("n_in", "n_hidden", "n_out"), (n_in, n_hidden, n_out))
        )
        check_scalar(seed, "seed", numbers.Integral, min_val=0, max_val=2**32 - 1)
        if activation not in _ACTIVATIONS:
            raise InvalidParameterError(
                f"activation must be one of {sorted(_ACTIVATIONS)}; got {activation!r}."
            )
        return {
            "hidden_W": (n_in, n_hidden),
            "hidden_b": (n_hidden,),
            "output_W": (n_hidden, n_out),
            "output_b": (n_out,),
        }


MODELS = {"LogisticRegression": LogisticRegression, "MLP": MLP}

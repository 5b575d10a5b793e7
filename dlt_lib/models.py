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
from dlt_lib import conv, losses
from dlt_lib.validation import InvalidParameterError, check_option, check_scalar


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
    Taught in ``book/softmax_regression.ipynb``.
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

    eval_batch_size = None  # None: a whole array at once; LeNet sets a size

    def _in_chunks(self, name, output, X):
        X, _ = self.check_data(X)
        fn = self._compiled(name, output)
        step = self.eval_batch_size or max(len(X), 1)
        if len(X) <= step:
            return fn(_floatX(X))
        return np.concatenate([fn(_floatX(X[i : i + step])) for i in range(0, len(X), step)])

    def predict_proba(self, X):
        """Class probabilities for a NumPy array of inputs."""
        return self._in_chunks("proba", self.p_y_given_x, X)

    def predict(self, X):
        """Predicted classes for a NumPy array of inputs."""
        return self._in_chunks("predict", self.y_pred, X)

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
    Taught in ``book/softmax_regression.ipynb``.
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


def glorot_uniform(rng, n_in, n_out, activation="tanh", size=None):
    """Draw weights uniformly in ``+-sqrt(6 / (n_in + n_out))`` (Glorot and Bengio, 2010).

    That bound keeps the variance of activations and of back-propagated
    gradients roughly equal across layers for ``tanh``.  For the logistic
    sigmoid, whose slope at 0 is 1/4 instead of 1, the bound is 4 times
    larger.  For ReLU the tutorials had no rule and used tanh's, and so do we.

    One call is exactly the tutorials' ``rng.uniform(low=-bound,
    high=bound, size=size)`` (in float64, then cast to float32, then x4 for
    the sigmoid), so a ``numpy.random.RandomState`` seeded as theirs gives
    their weights, draw for draw.

    Parameters
    ----------
    rng : numpy.random.RandomState (or Generator)
    n_in, n_out : int
        Fan-in and fan-out: the number of units that feed each unit, and the
        number each unit feeds (for a convolution, see :class:`LeNetConvPoolLayer`).
    activation : "tanh", "sigmoid" or "relu"
    size : tuple, optional
        Shape of the array drawn; ``(n_in, n_out)`` by default (a weight matrix).

    Taught in ``book/mlp.ipynb``.
    """
    check_option(activation, "activation", sorted(_ACTIVATIONS))
    bound = np.sqrt(6.0 / (n_in + n_out))
    W = _floatX(rng.uniform(low=-bound, high=bound, size=(n_in, n_out) if size is None else size))
    if activation == "sigmoid":
        W *= 4
    return W


def relu(x):
    """``max(x, 0)``, the rectified linear unit.  Taught in ``book/mlp.ipynb``."""
    return pt.maximum(x, 0)


_ACTIVATIONS = {"tanh": pt.tanh, "sigmoid": pt.sigmoid, "relu": relu}


class HiddenLayer:
    """A fully connected layer ``h = activation(x W + b)`` with Glorot-uniform ``W`` and zero ``b``.

    As in ``mlp.py``: ``W`` is drawn from ``rng`` when the layer is built
    (one call of ``rng.uniform``), ``b`` starts at zero.
    Taught in ``book/mlp.ipynb``.
    """

    def __init__(self, rng, input, n_in: int, n_out: int, activation: str = "tanh", name: str = "hidden"):
        check_option(activation, "activation", sorted(_ACTIVATIONS))
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
    """A multi-layer perceptron: one hidden layer, then logistic regression.

    ``p(y|x) = softmax(tanh(x W1 + b1) W2 + b2)``.  Initialised as the
    tutorials' ``mlp.py``: ``W1`` is drawn from ``numpy.random.RandomState(seed)``
    (``seed=1234`` is theirs), ``b1``, ``W2`` and ``b2`` are zeros.  So
    ``MLP(784, 500, 10)`` starts from exactly their weights.
    Taught in ``book/mlp.ipynb``.
    """

    def __init__(
        self, n_in: int, n_hidden: int, n_out: int, input=None, seed: int = 1234, activation: str = "tanh"
    ):
        self.n_in = _check_positive_int("n_in", n_in)
        self.n_hidden = _check_positive_int("n_hidden", n_hidden)
        self.n_out = _check_positive_int("n_out", n_out)
        self.seed = int(check_scalar(seed, "seed", numbers.Integral, min_val=0, max_val=2**32 - 1))
        self.input = _make_input(input, self.n_in)
        rng = np.random.RandomState(self.seed)  # the tutorials' generator, not default_rng
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


class LeNetConvPoolLayer:
    """Convolution, max-pooling, bias and tanh: one stage of LeNet (``convolutional_mlp.py``).

    ``output = tanh(max_pool(conv2d(input, W)) + b)``, one bias per filter.

    ``W`` is drawn as the tutorials draw it: uniformly in
    ``+-sqrt(6 / (fan_in + fan_out))``, where a unit sees
    ``fan_in = channels x filter rows x filter columns`` inputs and sends its
    gradient to ``fan_out = n_filters x filter rows x filter columns / pool
    area`` units of the next stage; ``b`` starts at zero.

    Parameters
    ----------
    rng : numpy.random.RandomState
    input : 4-d symbolic tensor of shape ``image_shape``
    filter_shape : (n_filters, channels, filter rows, filter columns)
    image_shape : (batch size or None, channels, rows, columns)
    poolsize : (rows, columns) of the max-pooling window

    Taught in ``book/lenet.ipynb``.
    """

    def __init__(self, rng, input, filter_shape, image_shape, poolsize=(2, 2), name: str = "conv"):
        filter_shape, image_shape = tuple(filter_shape), tuple(image_shape)
        poolsize = tuple(int(p) for p in poolsize)
        if len(filter_shape) != 4 or len(image_shape) != 4:
            raise InvalidParameterError(
                f"filter_shape and image_shape must have 4 entries; got {filter_shape} and {image_shape}."
            )
        if image_shape[1] != filter_shape[1]:
            raise InvalidParameterError(
                f"The images have {image_shape[1]} channels but the filters expect {filter_shape[1]}: "
                "filter_shape[1] must equal image_shape[1]."
            )
        self.input = input
        self.filter_shape, self.image_shape, self.poolsize = filter_shape, image_shape, poolsize
        fan_in = int(np.prod(filter_shape[1:]))
        fan_out = int(filter_shape[0] * np.prod(filter_shape[2:]) // np.prod(poolsize))
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        self.W = pytensor.shared(
            _floatX(rng.uniform(low=-bound, high=bound, size=filter_shape)),
            name=f"{name}_W",
            shape=filter_shape,
        )
        self.b = pytensor.shared(
            _floatX(np.zeros(filter_shape[0])), name=f"{name}_b", shape=(filter_shape[0],)
        )
        self.params = [self.W, self.b]
        self.conv_out = conv.conv2d(input, self.W, input_shape=image_shape, filter_shape=filter_shape)
        self.pooled_out = conv.max_pool_2d(self.conv_out, poolsize)
        # One bias per filter, broadcast over the batch and the map (tanh is
        # increasing, so adding it after the max gives the same as before).
        self.output = pt.tanh(self.pooled_out + self.b.dimshuffle("x", 0, "x", "x"))
        rows = (image_shape[2] - filter_shape[2] + 1) // poolsize[0]
        cols = (image_shape[3] - filter_shape[3] + 1) // poolsize[1]
        self.output_shape = (image_shape[0], filter_shape[0], rows, cols)


def _lenet_sizes(image_shape, nkerns, n_hidden, n_out, filter_size, poolsize) -> dict:
    """LeNet's hyper-parameters, checked, and the sizes of its maps after each stage."""
    if len(tuple(image_shape)) != 2 or len(tuple(nkerns)) != 2:
        raise InvalidParameterError(
            f"image_shape is (rows, columns) and nkerns the filters of the two stages, e.g. (28, 28) "
            f"and (20, 50); got {image_shape} and {nkerns}."
        )
    rows, cols = (_check_positive_int("image_shape", s) for s in image_shape)
    nkerns = tuple(_check_positive_int("nkerns", k) for k in nkerns)
    f, p = _check_positive_int("filter_size", filter_size), _check_positive_int("poolsize", poolsize)
    stage1 = ((rows - f + 1) // p, (cols - f + 1) // p)
    stage2 = ((stage1[0] - f + 1) // p, (stage1[1] - f + 1) // p)
    if min(stage2) < 1:
        raise InvalidParameterError(
            f"Images of {rows} x {cols} are too small for two stages of {f} x {f} filters and "
            f"{p} x {p} pooling (the second stage would be {stage2}). Use larger images or smaller filters."
        )
    return {
        "image_shape": (rows, cols),
        "nkerns": nkerns,
        "n_hidden": _check_positive_int("n_hidden", n_hidden),
        "n_out": _check_positive_int("n_out", n_out),
        "filter_size": f,
        "poolsize": p,
        "stage1": stage1,
        "n_features": nkerns[1] * stage2[0] * stage2[1],
    }


class LeNet(_Classifier):
    """The tutorials' LeNet (``convolutional_mlp.py``): two convolution-pooling stages, a tanh layer, softmax.

    ``x`` (rows of 784 pixels) -> 28 x 28 image -> 20 filters 5 x 5, max-pool 2 x 2, tanh
    -> 50 filters 5 x 5, max-pool 2 x 2, tanh -> 500 tanh units -> 10-class softmax.

    Initialised as the tutorials: from ``numpy.random.RandomState(seed)``
    (``seed=23455`` is theirs), drawing the first stage's filters, then the
    second's, then the hidden layer's weights; every bias and the output
    layer start at zero.

    Parameters
    ----------
    image_shape : (rows, columns)
        Each input row is one image of this size, row by row (28 x 28 for MNIST).
    nkerns : (int, int)
        Number of filters (kernels) of the two stages; the tutorials' name.
    n_hidden : int
        Units of the fully connected tanh layer.
    n_out : int
        Number of classes.
    filter_size, poolsize : int
        Side of the square filters and of the max-pooling window.
    input : symbolic matrix, optional
    seed : int

    Taught in ``book/lenet.ipynb``.
    """

    eval_batch_size = 500  # predict and evaluate in chunks (a whole set at once needs gigabytes)

    def __init__(
        self,
        image_shape=(28, 28),
        nkerns=(20, 50),
        n_hidden: int = 500,
        n_out: int = 10,
        filter_size: int = 5,
        poolsize: int = 2,
        input=None,
        seed: int = 23455,
    ):
        sizes = _lenet_sizes(image_shape, nkerns, n_hidden, n_out, filter_size, poolsize)
        self.image_shape, self.nkerns = sizes["image_shape"], sizes["nkerns"]
        self.n_hidden, self.n_out = sizes["n_hidden"], sizes["n_out"]
        self.filter_size, self.poolsize = sizes["filter_size"], sizes["poolsize"]
        (rows, cols), stage1 = self.image_shape, sizes["stage1"]
        self.seed = int(seed)
        self.n_in = rows * cols
        self.input = _make_input(input, self.n_in)
        rng = np.random.RandomState(self.seed)  # the tutorials' generator
        images = self.input.reshape((-1, 1, rows, cols))  # constant shape: JAX needs it
        batch = self.input.type.shape[0]
        window = (self.poolsize, self.poolsize)
        self.conv_pool1 = LeNetConvPoolLayer(
            rng,
            images,
            filter_shape=(self.nkerns[0], 1, self.filter_size, self.filter_size),
            image_shape=(batch, 1, rows, cols),
            poolsize=window,
            name="conv1",
        )
        self.conv_pool2 = LeNetConvPoolLayer(
            rng,
            self.conv_pool1.output,
            filter_shape=(self.nkerns[1], self.nkerns[0], self.filter_size, self.filter_size),
            image_shape=(batch, self.nkerns[0], *stage1),
            poolsize=window,
            name="conv2",
        )
        self.hidden = HiddenLayer(
            rng, self.conv_pool2.output.flatten(2), sizes["n_features"], self.n_hidden, "tanh"
        )
        self.output_layer = LogisticRegression(self.n_hidden, self.n_out, input=self.hidden.output)
        self.output_layer.W.name, self.output_layer.b.name = "output_W", "output_b"
        self.layers = [self.conv_pool1, self.conv_pool2, self.hidden, self.output_layer]
        self.params = [p for layer in self.layers for p in layer.params]
        self._set_output(self.output_layer.logits)
        weights = [layer.W for layer in self.layers]
        self.L1 = losses.l1_penalty(weights)
        self.L2_sqr = losses.l2_penalty(weights)

    @staticmethod
    def parameter_shapes(
        image_shape=(28, 28), nkerns=(20, 50), n_hidden=500, n_out=10, filter_size=5, poolsize=2, seed=23455
    ) -> dict:
        """The shape of each parameter of ``LeNet(**hyperparameters)``, checked as the constructor checks them.

        Lets a checkpoint be checked against its model before the model is built.
        """
        s = _lenet_sizes(image_shape, nkerns, n_hidden, n_out, filter_size, poolsize)
        (k1, k2), f = s["nkerns"], s["filter_size"]
        return {
            "conv1_W": (k1, 1, f, f),
            "conv1_b": (k1,),
            "conv2_W": (k2, k1, f, f),
            "conv2_b": (k2,),
            "hidden_W": (s["n_features"], s["n_hidden"]),
            "hidden_b": (s["n_hidden"],),
            "output_W": (s["n_hidden"], s["n_out"]),
            "output_b": (s["n_out"],),
        }

    def hyperparameters(self) -> dict:
        return {
            "image_shape": list(self.image_shape),
            "nkerns": list(self.nkerns),
            "n_hidden": self.n_hidden,
            "n_out": self.n_out,
            "filter_size": self.filter_size,
            "poolsize": self.poolsize,
            "seed": self.seed,
        }


MODELS = {"LogisticRegression": LogisticRegression, "MLP": MLP, "LeNet": LeNet}

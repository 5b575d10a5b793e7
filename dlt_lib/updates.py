"""Gradient-descent rules as *update lists*.

How a PyTensor model learns
---------------------------
A PyTensor function can change shared variables each time it is called:
``pytensor.function(inputs, cost, updates=updates)`` with ``updates`` a list
of ``(shared_variable, new_value_expression)`` pairs.  All the new values are
computed from the *old* values, then stored together.  A training step is
therefore nothing but an update list, and every optimizer in this module is a
short function that builds one::

    updates = sgd(cost, params, learning_rate=0.1)
    train = pytensor.function([x, y], cost, updates=updates)

The rules, from the oldest to the newest (``g`` is the gradient of the loss
with respect to a parameter ``p``, ``lr`` the learning rate):

==================  ===========================================================
``sgd``             ``p <- p - lr * g``.  The seed tutorials' rule.
``momentum``        keep a velocity ``v``: a running sum of past steps, so a
                    consistent direction speeds up and zig-zags cancel
                    (Polyak 1964).
``nesterov_...``    the same, but the gradient is taken where the velocity is
                    about to carry us (Nesterov 1983; Sutskever et al. 2013).
``adagrad``         one learning rate per weight, divided by the root of the
                    sum of that weight's squared gradients (Duchi et al. 2011).
``rmsprop``         the same with a *moving average* of squared gradients, so
                    the rate does not shrink to zero (Tieleman & Hinton 2012).
``adadelta``        RMSprop whose step is also scaled by the RMS of past
                    steps, so it has the units of the weight (Zeiler 2012).
``adam``            momentum plus RMSprop, with the bias of zero-started
                    averages corrected (Kingma & Ba 2015).
==================  ===========================================================

The optimizers with memory (velocity, averages) keep it in extra shared
variables, one per parameter, made by :func:`zeros_like_param` and named
after the parameter (``W_velocity``).  Their dtype is the parameter's: a
``float32`` model stays ``float32`` (what a GPU wants), and a ``float64`` one
stays ``float64`` (what our tests want).

The learning rate may be a number or a symbolic scalar such as a shared
variable or a schedule (:func:`exponential_decay`, :func:`step_decay`), so it
can change during training without recompiling.

:data:`OPTIMIZERS` and :func:`get_optimizer` choose a rule by name, as the
``--optimizer`` command-line flag does.  The design follows Lasagne's
``lasagne/updates.py``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable

import dlt_lib.backend  # noqa: F401  (sets floatX=float32 before anything is built)

__all__ = [
    "OPTIMIZERS",
    "HyperParameterError",
    "adadelta",
    "adagrad",
    "adam",
    "exponential_decay",
    "get_optimizer",
    "get_or_compute_grads",
    "momentum",
    "nesterov_momentum",
    "rmsprop",
    "sgd",
    "step_counter",
    "step_decay",
    "zeros_like_param",
]

Updates = list[tuple[SharedVariable, Variable]]


# --------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------


def get_or_compute_grads(loss_or_grads, params) -> list[Variable]:
    """Return one gradient per parameter.

    ``loss_or_grads`` is either a scalar loss, differentiated here with
    ``pytensor.grad``, or a list of gradients already computed (e.g. clipped
    or with noise added), one per parameter and in the same order.  Each
    gradient is cast to its parameter's dtype so that no update is upcast.
    """
    params = list(params)
    for i, param in enumerate(params):
        if not isinstance(param, SharedVariable):
            raise TypeError(
                f"params[{i}] must be a shared variable (the thing an update changes); "
                f"got {type(param).__name__} {param!r}. Create parameters with pytensor.shared(...)."
            )
    seen = set()
    for param in params:
        # Two updates for one variable would make pytensor.function fail later, obscurely.
        if id(param) in seen:
            raise ValueError(
                f"Parameter {param.name or param!r} appears twice in params; pass each shared variable once."
            )
        seen.add(id(param))

    if isinstance(loss_or_grads, list | tuple):
        grads = list(loss_or_grads)
        if len(grads) != len(params):
            raise ValueError(
                f"Got {len(grads)} gradients for {len(params)} parameters; "
                "pass exactly one gradient per parameter, in the order of params "
                "(or pass the scalar loss and let the optimizer differentiate it)."
            )
    else:
        loss = loss_or_grads
        if not isinstance(loss, Variable):
            raise TypeError(
                "loss_or_grads must be a scalar PyTensor expression or a list of gradients; "
                f"got {type(loss).__name__}."
            )
        if loss.ndim != 0:
            raise ValueError(
                f"The loss must be a scalar (0-d) expression; got a {loss.ndim}-d one. "
                "Reduce it first, e.g. loss.mean() over the minibatch."
            )
        grads = pytensor.grad(loss, params)

    out = []
    for param, grad in zip(params, grads):
        grad = pt.as_tensor_variable(grad)
        if grad.ndim != param.ndim:
            raise ValueError(
                f"The gradient for {param.name or 'a parameter'} is {grad.ndim}-d but the parameter "
                f"is {param.ndim}-d; gradients must have their parameter's shape."
            )
        out.append(_cast(grad, param.dtype))
    return out


def zeros_like_param(param: SharedVariable, suffix: str) -> SharedVariable:
    """A new shared variable of zeros with ``param``'s shape, dtype and broadcast pattern.

    Named ``<param name>_<suffix>`` (``W_velocity``) so that it is readable
    in graphs, debug prints and checkpoints.
    """
    value = param.get_value(borrow=True)
    name = f"{param.name}_{suffix}" if param.name else suffix
    # Same static shape as the parameter: a (1, n) row stays broadcastable,
    # otherwise the update's type would not match the variable's.
    return pytensor.shared(np.zeros(value.shape, dtype=value.dtype), name=name, shape=param.type.shape)


def _cast(value, dtype: str) -> Variable:
    """``value`` (a number or an expression) as an expression of ``dtype``.

    Python floats are float64; mixing them into a float32 graph would upcast
    every update to float64.  Casting each hyper-parameter to the
    parameter's dtype prevents that.
    """
    if isinstance(value, Variable):
        return value if value.dtype == dtype else pt.cast(value, dtype)
    return pt.constant(np.asarray(value, dtype=dtype))


# --- hyper-parameter checks ------------------------------------------------
# Caught here, a bad value gives a message that says what to change; caught
# by the arithmetic, it gives NaNs a thousand steps later.


class HyperParameterError(ValueError, TypeError):
    """A hyper-parameter of the wrong type or out of range.

    A ``ValueError`` (and, for a wrong type, a ``TypeError`` too), as
    scikit-learn's ``InvalidParameterError`` is.
    """


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_learning_rate(learning_rate) -> None:
    if isinstance(learning_rate, Variable):
        if learning_rate.ndim != 0:
            raise HyperParameterError(
                f"A symbolic learning_rate must be a scalar (0-d); got a {learning_rate.ndim}-d expression. "
                "Use a scalar shared variable or a schedule such as exponential_decay(...)."
            )
        return
    if not _is_number(learning_rate):
        raise HyperParameterError(
            "learning_rate must be a positive number or a symbolic scalar; "
            f"got {type(learning_rate).__name__} {learning_rate!r}."
        )
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise HyperParameterError(
            f"learning_rate must be a finite number > 0; got {learning_rate!r}. "
            "Typical values are 0.01-0.1 for sgd/momentum and 0.001 for adam."
        )


def _check_range(name: str, value, interval: str, hint: str) -> None:
    """Check that the number ``value`` lies in ``interval``, written as in maths: ``"[0, 1)"``."""
    if not _is_number(value):
        raise HyperParameterError(f"{name} must be a number; got {type(value).__name__} {value!r}. {hint}")
    low, high = (float(x) for x in interval[1:-1].split(","))
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    if not (math.isfinite(value) and above and below):
        raise HyperParameterError(f"{name} must be in {interval}; got {value!r}. {hint}")


def _check_epsilon(epsilon) -> None:
    _check_range(
        "epsilon",
        epsilon,
        "(0, inf)",
        "It keeps the division finite where a weight's gradients are all zero "
        "(0/0 is NaN); use a small positive value such as 1e-6.",
    )


def _check_decay(name: str, value, default: float) -> None:
    _check_range(
        name,
        value,
        "(0, 1)",
        f"It is the fraction of the running average kept at each step; use e.g. {name}={default}.",
    )


# --------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------


def sgd(loss_or_grads, params, learning_rate) -> Updates:
    """Stochastic (minibatch) gradient descent.

    ``p <- p - lr * g``

    The rule of the original Deep Learning Tutorials; Robbins & Monro (1951).
    """
    _check_learning_rate(learning_rate)
    grads = get_or_compute_grads(loss_or_grads, params)
    return [(p, p - _cast(learning_rate, p.dtype) * g) for p, g in zip(params, grads)]


def momentum(loss_or_grads, params, learning_rate, momentum=0.9) -> Updates:
    """SGD with (Polyak, "heavy ball") momentum.

    ``v <- mu * v - lr * g``;  ``p <- p + v``

    equivalently ``p_{t+1} = p_t - lr * g_t + mu * (p_t - p_{t-1})``.
    With a constant gradient the step grows to ``lr / (1 - mu)``: ``mu=0.9``
    is a tenfold larger step along consistent directions.
    Polyak (1964), "Some methods of speeding up the convergence of iteration methods".
    """
    return _velocity_updates(
        loss_or_grads, params, learning_rate, momentum, lambda p, v_new, g, lr, mu: p + v_new
    )


def nesterov_momentum(loss_or_grads, params, learning_rate, momentum=0.9) -> Updates:
    """SGD with Nesterov momentum, in the form of Sutskever et al. (2013).

    ``v <- mu * v - lr * g``;  ``p <- p + mu * v - lr * g``  (with the new ``v``).

    Nesterov's method evaluates the gradient at the look-ahead point
    ``theta + mu * v``.  Storing that look-ahead point as the parameter
    (``p = theta + mu * v``) lets us use the ordinary gradient at ``p``, as
    Lasagne does.
    Sutskever, Martens, Dahl & Hinton (2013), "On the importance of
    initialization and momentum in deep learning", ICML; Nesterov (1983).
    """
    return _velocity_updates(
        loss_or_grads, params, learning_rate, momentum, lambda p, v_new, g, lr, mu: p + mu * v_new - lr * g
    )


def _velocity_updates(loss_or_grads, params, learning_rate, momentum, new_param) -> Updates:
    """What both momentum rules share: a velocity per parameter, ``v <- mu * v - lr * g``.

    ``new_param(p, v_new, g, lr, mu)`` is the one line in which they differ.
    """
    _check_learning_rate(learning_rate)
    _check_range(
        "momentum",
        momentum,
        "[0, 1)",
        "It is the fraction of the previous step kept; use e.g. momentum=0.9 (0 is plain SGD).",
    )
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = []
    for p, g in zip(params, grads):
        lr, mu = _cast(learning_rate, p.dtype), _cast(momentum, p.dtype)
        v = zeros_like_param(p, "velocity")
        v_new = mu * v - lr * g
        updates += [(v, v_new), (p, new_param(p, v_new, g, lr, mu))]
    return updates


def adagrad(loss_or_grads, params, learning_rate=1.0, epsilon=1e-6) -> Updates:
    """AdaGrad: a per-weight rate that shrinks with the weight's gradient history.

    ``s <- s + g**2``;  ``p <- p - lr * g / (epsilon + sqrt(s))``

    Weights with rare, small gradients keep large steps.  ``epsilon`` sits
    outside the root, as Duchi et al.'s ``delta`` (Lasagne puts it inside;
    with ``epsilon=1e-6`` the two differ negligibly).
    Duchi, Hazan & Singer (2011), "Adaptive subgradient methods for online
    learning and stochastic optimization", JMLR 12.
    """
    _check_learning_rate(learning_rate)
    _check_epsilon(epsilon)
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = []
    for p, g in zip(params, grads):
        lr, eps = _cast(learning_rate, p.dtype), _cast(epsilon, p.dtype)
        s = zeros_like_param(p, "sum_sq_grad")
        s_new = s + g**2
        updates += [(s, s_new), (p, p - lr * g / (eps + pt.sqrt(s_new)))]
    return updates


def rmsprop(loss_or_grads, params, learning_rate=1.0, rho=0.9, epsilon=1e-6) -> Updates:
    """RMSprop: divide the gradient by a running root-mean-square of recent gradients.

    ``a <- rho * a + (1 - rho) * g**2``;  ``p <- p - lr * g / sqrt(a + epsilon)``

    AdaGrad's sum never forgets, so its steps only shrink; a moving average
    forgets after about ``1 / (1 - rho)`` steps.  ``epsilon`` is inside the
    root, as in Lasagne and Zeiler's RMS.  The default ``learning_rate=1.0``
    follows Lasagne; 0.001 is a common practical choice.
    Tieleman & Hinton (2012), Coursera "Neural Networks for Machine
    Learning", lecture 6.5.
    """
    _check_learning_rate(learning_rate)
    _check_decay("rho", rho, 0.9)
    _check_epsilon(epsilon)
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = []
    for p, g in zip(params, grads):
        lr, r, eps = _cast(learning_rate, p.dtype), _cast(rho, p.dtype), _cast(epsilon, p.dtype)
        one_minus_r = _cast(1.0 - rho, p.dtype)
        a = zeros_like_param(p, "mean_sq_grad")
        a_new = r * a + one_minus_r * g**2
        updates += [(a, a_new), (p, p - lr * g / pt.sqrt(a_new + eps))]
    return updates


def adadelta(loss_or_grads, params, learning_rate=1.0, rho=0.95, epsilon=1e-6) -> Updates:
    """AdaDelta: RMSprop with the step scaled by the RMS of past steps.

    ``a <- rho * a + (1 - rho) * g**2``
    ``d = g * sqrt(u + epsilon) / sqrt(a + epsilon)``  (``u`` from the previous step)
    ``p <- p - lr * d``;  ``u <- rho * u + (1 - rho) * d**2``

    The ratio of two RMS values gives the step the units of the weight, so
    the paper uses no learning rate at all (``learning_rate=1.0``).
    Zeiler (2012), "ADADELTA: An adaptive learning rate method", arXiv:1212.5701, Algorithm 1.
    """
    _check_learning_rate(learning_rate)
    _check_decay("rho", rho, 0.95)
    _check_epsilon(epsilon)
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = []
    for p, g in zip(params, grads):
        lr, r, eps = _cast(learning_rate, p.dtype), _cast(rho, p.dtype), _cast(epsilon, p.dtype)
        one_minus_r = _cast(1.0 - rho, p.dtype)
        a = zeros_like_param(p, "mean_sq_grad")
        u = zeros_like_param(p, "mean_sq_step")
        a_new = r * a + one_minus_r * g**2
        step = g * pt.sqrt(u + eps) / pt.sqrt(a_new + eps)
        u_new = r * u + one_minus_r * step**2
        updates += [(a, a_new), (u, u_new), (p, p - lr * step)]
    return updates


def adam(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8) -> Updates:
    """Adam: momentum on the gradient, RMSprop on its scale, both bias-corrected.

    ``t <- t + 1``
    ``m <- beta1 * m + (1 - beta1) * g``;  ``v <- beta2 * v + (1 - beta2) * g**2``
    ``p <- p - lr * m_hat / (sqrt(v_hat) + epsilon)``, with
    ``m_hat = m / (1 - beta1**t)`` and ``v_hat = v / (1 - beta2**t)``.

    ``m`` and ``v`` start at zero, so early on they underestimate; dividing by
    ``1 - beta**t`` undoes that.  This is Algorithm 1 of the paper as written
    (Lasagne uses the paper's equivalent "efficient" form, which scales
    ``epsilon`` slightly differently).  The step counter ``t`` is one shared
    scalar for all parameters, the first entry of the update list.
    Kingma & Ba (2015), "Adam: A method for stochastic optimization", ICLR.
    """
    _check_learning_rate(learning_rate)
    hint = "It is the decay of a running average; use e.g. beta1=0.9, beta2=0.999."
    _check_range("beta1", beta1, "[0, 1)", hint)
    _check_range("beta2", beta2, "[0, 1)", hint)
    _check_epsilon(epsilon)
    grads = get_or_compute_grads(loss_or_grads, params)

    # floatX like all our state; float32 counts exactly up to 2**24 (16.7M) steps.
    t = pytensor.shared(np.asarray(0, dtype=pytensor.config.floatX), name="t")
    t_new = t + 1
    updates = [(t, t_new)]
    for p, g in zip(params, grads):
        dtype = p.dtype
        lr, eps = _cast(learning_rate, dtype), _cast(epsilon, dtype)
        b1, b2 = _cast(beta1, dtype), _cast(beta2, dtype)
        t_p = _cast(t_new, dtype)
        m = zeros_like_param(p, "m")
        v = zeros_like_param(p, "v")
        m_new = b1 * m + _cast(1.0 - beta1, dtype) * g
        v_new = b2 * v + _cast(1.0 - beta2, dtype) * g**2
        m_hat = m_new / (1 - b1**t_p)
        v_hat = v_new / (1 - b2**t_p)
        updates += [(m, m_new), (v, v_new), (p, p - lr * m_hat / (pt.sqrt(v_hat) + eps))]
    return updates


# --------------------------------------------------------------------------
# Learning-rate schedules
# --------------------------------------------------------------------------
# A schedule is a symbolic expression of a step counter.  Pass it as the
# learning_rate and add ``(step, step + 1)`` to the update list:
#
#     step = step_counter()
#     lr = exponential_decay(0.1, 0.96, step, decay_steps=100)
#     updates = sgd(cost, params, lr) + [(step, step + 1)]


def step_counter(name: str = "step") -> SharedVariable:
    """A shared floatX scalar, starting at 0, to count training steps for a schedule."""
    return pytensor.shared(np.asarray(0, dtype=pytensor.config.floatX), name=name)


def _check_step(step) -> Variable:
    if not isinstance(step, Variable) or step.ndim != 0:
        raise TypeError(
            f"step must be a symbolic scalar such as step_counter(); got {type(step).__name__} {step!r}."
        )
    return _cast(step, pytensor.config.floatX)


def exponential_decay(initial, decay_rate, step, decay_steps=1) -> Variable:
    """``initial * decay_rate ** (step / decay_steps)``: a smooth geometric decay.

    With ``decay_rate=0.96, decay_steps=100`` the rate falls by 4% every
    100 steps.  Returns a floatX scalar expression of ``step``.
    """
    _check_learning_rate(initial)
    _check_range(
        "decay_rate",
        decay_rate,
        "(0, 1]",
        "It is the factor applied every decay_steps steps; use e.g. 0.96 (1 means no decay).",
    )
    _check_range(
        "decay_steps",
        decay_steps,
        "(0, inf)",
        "It is the number of steps over which the rate falls by decay_rate; use e.g. 100.",
    )
    floatx = pytensor.config.floatX
    s = _check_step(step)
    return _cast(initial, floatx) * _cast(decay_rate, floatx) ** (s / _cast(decay_steps, floatx))


def step_decay(initial, drop, step, every) -> Variable:
    """``initial * drop ** floor(step / every)``: multiply the rate by ``drop`` every ``every`` steps.

    The "divide by 10 at fixed epochs" schedule of many classic papers.
    Returns a floatX scalar expression of ``step``.
    """
    _check_learning_rate(initial)
    _check_range("drop", drop, "(0, 1]", "It is the factor applied every `every` steps; use e.g. drop=0.1.")
    _check_range("every", every, "(0, inf)", "It is the number of steps between drops; use e.g. every=1000.")
    floatx = pytensor.config.floatX
    s = _check_step(step)
    return _cast(initial, floatx) * _cast(drop, floatx) ** pt.floor(s / _cast(every, floatx))


# --------------------------------------------------------------------------
# Choosing a rule by name
# --------------------------------------------------------------------------

OPTIMIZERS: dict[str, Callable[..., Updates]] = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov_momentum": nesterov_momentum,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adadelta": adadelta,
    "adam": adam,
}


def get_optimizer(name: str) -> Callable[..., Updates]:
    """The update rule called ``name`` (case-insensitive; ``-`` and ``_`` are the same).

    ``get_optimizer("adam")(cost, params, learning_rate=0.001)``
    """
    key = str(name).strip().lower().replace("-", "_")
    if key not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer {name!r}. Expected one of: {', '.join(OPTIMIZERS)} "
            "(e.g. --optimizer momentum)."
        )
    return OPTIMIZERS[key]

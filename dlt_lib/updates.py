"""Gradient-descent rules as *update mappings*, composed as in Lasagne.

How a PyTensor model learns
---------------------------
A PyTensor function can change shared variables each time it is called:
``pytensor.function(inputs, cost, updates=updates)`` with ``updates`` an
ordered mapping ``{shared_variable: new_value_expression}``.  All the new
values are computed from the *old* values, then stored together.  A training
step is therefore nothing but an update mapping, and every optimizer in this
module is a short function that builds one::

    updates = sgd(cost, params, learning_rate=0.1)
    train = pytensor.function([x, y], cost, updates=updates)

Rules compose.  :func:`apply_momentum` and :func:`apply_nesterov_momentum`
take the updates of *any* rule and add a velocity to its steps, so
``momentum(...)`` is ``apply_momentum(sgd(...))``; the adaptive rules
rescale each gradient (keeping the statistics they need in extra shared
variables) and then take an :func:`sgd` step along the rescaled gradient.
(``g`` is the gradient of the loss with respect to a parameter ``p``, ``lr``
the learning rate):

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

The state of a rule (velocity, averages) lives in extra shared variables,
one per parameter, made by :func:`zeros_like_param` and named after the
parameter (``W_velocity``).  Their dtype is the parameter's: a ``float32``
model stays ``float32`` (what a GPU wants), a ``float64`` one ``float64``.

The learning rate (and every other hyper-parameter) may be a number or a
symbolic scalar: a shared variable (change it with ``set_value`` between
calls: no new compilation) or a schedule of :func:`step_counter`
(:func:`exponential_decay`, :func:`step_decay`).  A rule
whose learning rate depends on a step counter also advances that counter by
one per update, so a schedule needs no extra bookkeeping.

:data:`OPTIMIZERS` and :func:`get_optimizer` choose a rule by name, as the
``--optimizer`` command-line flag does.

Taught in ``book/gradient_descent.ipynb``.  The design follows Lasagne's
``lasagne/updates.py`` (and optax's small, composable primitives).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable

try:
    from pytensor.graph.traversal import graph_inputs
except ImportError:  # PyTensor before 2.32
    from pytensor.graph.basic import graph_inputs

import dlt_lib.backend  # noqa: F401  (sets floatX=float32 before anything is built)
from dlt_lib.validation import InvalidParameterError, check_option, check_scalar

__all__ = [
    "OPTIMIZERS",
    "adadelta",
    "adagrad",
    "adam",
    "apply_momentum",
    "apply_nesterov_momentum",
    "check_learning_rate",
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

Updates = OrderedDict  # {shared variable: expression of its new value}, in a fixed order

# --------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------


def get_or_compute_grads(loss_or_grads, params) -> list[Variable]:
    """Return one gradient per parameter.

    ``loss_or_grads`` is either a scalar loss, differentiated here with
    ``pytensor.grad``, or a list of gradients already computed (e.g. clipped
    or with noise added), one per parameter and in the same order.  Each
    gradient is cast to its parameter's dtype so that no update is upcast.
    Taught in ``book/gradient_descent.ipynb``.
    """
    params = _check_params(params)
    if isinstance(loss_or_grads, list | tuple):
        grads = list(loss_or_grads)
        if len(grads) != len(params):
            raise InvalidParameterError(
                f"Got {len(grads)} gradients for {len(params)} parameters; "
                "pass exactly one gradient per parameter, in the order of params "
                "(or pass the scalar loss and let the optimizer differentiate it)."
            )
    elif not isinstance(loss_or_grads, Variable):
        raise InvalidParameterError(
            "loss_or_grads must be a scalar PyTensor expression or a list of gradients; "
            f"got {type(loss_or_grads).__name__}."
        )
    elif loss_or_grads.ndim != 0:
        raise InvalidParameterError(
            f"The loss must be a scalar (0-d) expression; got a {loss_or_grads.ndim}-d one. "
            "Reduce it first, e.g. loss.mean() over the minibatch."
        )
    else:
        grads = pytensor.grad(loss_or_grads, params)
    out = []
    for param, grad in zip(params, grads):
        grad = pt.as_tensor_variable(grad)
        if grad.ndim != param.ndim:
            raise InvalidParameterError(
                f"The gradient for {param.name or 'a parameter'} is {grad.ndim}-d but the parameter "
                f"is {param.ndim}-d; gradients must have their parameter's shape."
            )
        out.append(_cast(grad, param.dtype))
    return out


def _check_params(params) -> list:
    params = list(params)
    for i, param in enumerate(params):
        if not isinstance(param, SharedVariable):
            raise InvalidParameterError(
                f"params[{i}] must be a shared variable (the thing an update changes); "
                f"got {type(param).__name__} {param!r}. Create parameters with pytensor.shared(...)."
            )
    if len({id(p) for p in params}) < len(params):
        # Two updates for one variable would make pytensor.function fail later, obscurely.
        twice = next(p for i, p in enumerate(params) if any(p is q for q in params[:i]))
        raise InvalidParameterError(
            f"Parameter {twice.name or twice!r} appears twice in params; pass each shared variable once."
        )
    return params


def zeros_like_param(param: SharedVariable, suffix: str) -> SharedVariable:
    """A new shared variable of zeros with ``param``'s shape, dtype and broadcast pattern.

    Named ``<param name>_<suffix>`` (``W_velocity``) so that it is readable
    in graphs, debug prints and checkpoints.  Taught in ``book/gradient_descent.ipynb``.
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


def _check_hyperparameter(value, name, hint="", **bounds) -> None:
    """A number within ``bounds`` (see :func:`~dlt_lib.validation.check_scalar`), or a symbolic scalar.

    A symbolic value (a shared variable, a schedule) is taken as it is: it
    can change between calls, and a new value needs no new compilation.
    """
    if isinstance(value, Variable):
        if value.ndim != 0:
            raise InvalidParameterError(
                f"A symbolic {name} must be a scalar (0-d); got a {value.ndim}-d expression. "
                "Use a scalar shared variable or a schedule such as exponential_decay(...)."
            )
        return
    check_scalar(value, name, hint=hint, **bounds)


def check_learning_rate(learning_rate) -> None:
    """Raise :class:`~dlt_lib.validation.InvalidParameterError` unless ``learning_rate`` is > 0 or a symbolic scalar.

    See ``book/gradient_descent.ipynb``.
    """
    hint = "Typical values are 0.01-0.1 for sgd/momentum and 0.001 for adam (or pass a symbolic scalar)."
    _check_hyperparameter(learning_rate, "learning_rate", hint, min_val=0, include_boundaries="neither")


def _check_decay(name: str, value, default: float, closed_at_zero=False) -> None:
    hint = f"It is the fraction of the running average kept at each step; use e.g. {name}={default}."
    bounds = "left" if closed_at_zero else "neither"
    _check_hyperparameter(value, name, hint, min_val=0, max_val=1, include_boundaries=bounds)


def _check_epsilon(epsilon) -> None:
    hint = "It keeps the division finite where a gradient is zero (0/0 is NaN); use e.g. 1e-6."
    _check_hyperparameter(epsilon, "epsilon", hint, min_val=0, include_boundaries="neither")


# --------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------


def sgd(loss_or_grads, params, learning_rate) -> Updates:
    """Stochastic (minibatch) gradient descent: ``p <- p - learning_rate * g``.

    The rule of the original Deep Learning Tutorials, and the last step of
    every other rule here, which passes it rescaled gradients.

    Parameters
    ----------
    loss_or_grads : scalar expression or list of expressions
        The loss to minimise, or one gradient per parameter.
    params : list of shared variables
    learning_rate : float or symbolic scalar
        A number > 0, a shared variable, or a schedule of a :func:`step_counter`
        (advanced here by one per update).

    Returns
    -------
    OrderedDict
        ``{param: new value}`` (and ``{counter: counter + 1}`` for a schedule).

    References
    ----------
    Robbins & Monro (1951), "A stochastic approximation method", Ann. Math. Stat. 22.
    Taught in ``book/gradient_descent.ipynb``.
    """
    check_learning_rate(learning_rate)
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = _advance_step_counters(learning_rate)
    for param, grad in zip(params, grads):
        updates[param] = param - _cast(learning_rate, param.dtype) * grad
    return updates


def apply_momentum(updates, params=None, momentum=0.9) -> Updates:
    """Add (Polyak, "heavy ball") momentum to the steps of any rule.

    With ``step = updates[p] - p`` (the rule's own step):
    ``v <- momentum * v + step``;  ``p <- p + v``.

    For SGD this is ``v <- mu v - lr g``, ``p <- p + v``: steps in a
    consistent direction add up (to ``lr / (1 - mu)``, ten times the SGD step
    at ``mu = 0.9``), steps that flip back and forth cancel.

    Parameters
    ----------
    updates : mapping
        The updates of a rule, e.g. ``sgd(loss, params, lr)``.
    params : list of shared variables, optional
        Those to add momentum to; default every variable ``updates`` changes
        except step counters.
    momentum : float in [0, 1)
        The fraction of the previous step kept (0 gives the rule unchanged).

    Returns
    -------
    OrderedDict
        A copy of ``updates`` with one velocity per parameter added.

    References
    ----------
    Polyak (1964), "Some methods of speeding up the convergence of iteration
    methods", USSR Comp. Math. and Math. Physics 4(5).
    Taught in ``book/gradient_descent.ipynb``.
    """
    updates, params = _momentum_arguments(updates, params, momentum)
    for param in params:
        mu = _cast(momentum, param.dtype)
        step = updates[param] - param  # what the rule alone would do
        velocity = zeros_like_param(param, "velocity")
        updates[velocity] = mu * velocity + step
        updates[param] = param + updates[velocity]
    return updates


def apply_nesterov_momentum(updates, params=None, momentum=0.9) -> Updates:
    """Add Nesterov momentum to the steps of any rule (Sutskever et al., 2013).

    With ``step = updates[p] - p``: ``v <- momentum * v + step``;
    ``p <- p + step + momentum * v`` (with the new ``v``).

    Nesterov's method takes the gradient at the look-ahead point
    ``theta + mu v``.  Storing that look-ahead point as the parameter
    (``p = theta + mu v``) lets every rule use the ordinary gradient at ``p``.
    Parameters and Returns as :func:`apply_momentum`.

    References
    ----------
    Nesterov (1983), "A method for unconstrained convex minimization problem
    with the rate of convergence O(1/k^2)", Doklady AN SSSR 269.
    Sutskever, Martens, Dahl & Hinton (2013), "On the importance of
    initialization and momentum in deep learning", ICML.
    Taught in ``book/gradient_descent.ipynb``.
    """
    updates, params = _momentum_arguments(updates, params, momentum)
    for param in params:
        mu = _cast(momentum, param.dtype)
        step = updates[param] - param  # what the rule alone would do
        velocity = zeros_like_param(param, "velocity")
        updates[velocity] = mu * velocity + step
        updates[param] = param + step + mu * updates[velocity]
    return updates


def _momentum_arguments(updates, params, momentum):
    hint = "It is the fraction of the previous step kept; use e.g. momentum=0.9 (0 is plain SGD)."
    _check_hyperparameter(momentum, "momentum", hint, min_val=0, max_val=1, include_boundaries="left")
    updates = OrderedDict(updates)
    if params is None:
        params = [var for var in updates if not _is_step_counter(var)]
    missing = [p.name or repr(p) for p in params if p not in updates]
    if missing:
        raise InvalidParameterError(
            f"updates has no update for {', '.join(missing)}: pass the rule's params."
        )
    return updates, list(params)


def momentum(loss_or_grads, params, learning_rate, momentum=0.9) -> Updates:
    """SGD with Polyak momentum: ``apply_momentum(sgd(...))``.

    Parameters
    ----------
    loss_or_grads, params, learning_rate : as :func:`sgd`.
    momentum : float in [0, 1)

    Returns
    -------
    OrderedDict of the parameters' and velocities' updates.

    References
    ----------
    Polyak (1964); see :func:`apply_momentum`.
    Taught in ``book/gradient_descent.ipynb``.
    """
    updates = sgd(loss_or_grads, params, learning_rate)
    return apply_momentum(updates, params, momentum)


def nesterov_momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    """SGD with Nesterov momentum: ``apply_nesterov_momentum(sgd(...))``.

    Parameters
    ----------
    loss_or_grads, params, learning_rate : as :func:`sgd`.
    momentum : float in [0, 1)

    Returns
    -------
    OrderedDict of the parameters' and velocities' updates.

    References
    ----------
    Sutskever et al. (2013); Nesterov (1983): see
    :func:`apply_nesterov_momentum`.
    Taught in ``book/gradient_descent.ipynb``.
    """
    updates = sgd(loss_or_grads, params, learning_rate)
    return apply_nesterov_momentum(updates, params, momentum)


def adagrad(loss_or_grads, params, learning_rate=1.0, epsilon=1e-6) -> Updates:
    """AdaGrad: an SGD step on the gradient divided by the root of its running sum of squares.

    ``s <- s + g**2``;  ``p <- p - lr * g / (epsilon + sqrt(s))``

    Weights with rare, small gradients keep large steps; but the sum only
    grows, so every step shrinks for ever.  ``epsilon`` sits outside the root,
    as Duchi et al.'s ``delta`` (Lasagne puts it inside; with ``1e-6`` the two
    differ negligibly).

    Parameters
    ----------
    loss_or_grads, params, learning_rate : as :func:`sgd`.
    epsilon : float > 0

    Returns
    -------
    OrderedDict of the sums' and the parameters' updates.

    References
    ----------
    Duchi, Hazan & Singer (2011), "Adaptive subgradient methods for online
    learning and stochastic optimization", JMLR 12.  Taught in ``book/gradient_descent.ipynb``.
    """
    check_learning_rate(learning_rate)
    _check_epsilon(epsilon)
    updates, steps = OrderedDict(), []
    for param, grad in zip(params, get_or_compute_grads(loss_or_grads, params)):
        total = zeros_like_param(param, "sum_sq_grad")
        updates[total] = total + grad**2
        steps.append(grad / (_cast(epsilon, param.dtype) + pt.sqrt(updates[total])))
    return _then_sgd(updates, steps, params, learning_rate)


def rmsprop(loss_or_grads, params, learning_rate=1.0, rho=0.9, epsilon=1e-6) -> Updates:
    """RMSprop: an SGD step on the gradient divided by a running root-mean-square of recent gradients.

    ``a <- rho * a + (1 - rho) * g**2``;  ``p <- p - lr * g / sqrt(a + epsilon)``

    AdaGrad's sum never forgets; a moving average forgets after about
    ``1 / (1 - rho)`` steps.  ``epsilon`` is inside the root, as in Lasagne.
    The default ``learning_rate=1.0`` follows Lasagne; 0.001 is a common choice.

    Parameters
    ----------
    loss_or_grads, params, learning_rate : as :func:`sgd`.
    rho : float in (0, 1)
    epsilon : float > 0

    Returns
    -------
    OrderedDict of the averages' and the parameters' updates.

    References
    ----------
    Tieleman & Hinton (2012), Coursera "Neural Networks for Machine Learning",
    lecture 6.5.  Taught in ``book/gradient_descent.ipynb``.
    """
    check_learning_rate(learning_rate)
    _check_decay("rho", rho, 0.9)
    _check_epsilon(epsilon)
    updates, steps = OrderedDict(), []
    for param, grad in zip(params, get_or_compute_grads(loss_or_grads, params)):
        mean_sq = _running_average(updates, param, "mean_sq_grad", grad**2, rho)
        steps.append(grad / pt.sqrt(mean_sq + _cast(epsilon, param.dtype)))
    return _then_sgd(updates, steps, params, learning_rate)


def adadelta(loss_or_grads, params, learning_rate=1.0, rho=0.95, epsilon=1e-6) -> Updates:
    """AdaDelta: RMSprop with the step scaled by the RMS of past steps.

    ``a <- rho * a + (1 - rho) * g**2``
    ``d = g * sqrt(u + epsilon) / sqrt(a + epsilon)``  (``u`` from the previous step)
    ``p <- p - lr * d``;  ``u <- rho * u + (1 - rho) * d**2``

    The ratio of two RMS values gives the step the units of the weight, so
    the paper uses no learning rate at all (``learning_rate=1.0``).

    Parameters
    ----------
    loss_or_grads, params, learning_rate : as :func:`sgd`.
    rho : float in (0, 1)
    epsilon : float > 0

    Returns
    -------
    OrderedDict of the two averages' and the parameters' updates.

    References
    ----------
    Zeiler (2012), "ADADELTA: An adaptive learning rate method",
    arXiv:1212.5701, Algorithm 1.  Taught in ``book/gradient_descent.ipynb``.
    """
    check_learning_rate(learning_rate)
    _check_decay("rho", rho, 0.95)
    _check_epsilon(epsilon)
    updates, steps = OrderedDict(), []
    for param, grad in zip(params, get_or_compute_grads(loss_or_grads, params)):
        eps = _cast(epsilon, param.dtype)
        mean_sq = _running_average(updates, param, "mean_sq_grad", grad**2, rho)
        mean_sq_step = zeros_like_param(param, "mean_sq_step")
        step = grad * pt.sqrt(mean_sq_step + eps) / pt.sqrt(mean_sq + eps)
        updates[mean_sq_step] = _cast(rho, param.dtype) * mean_sq_step + _cast(1 - rho, param.dtype) * step**2
        steps.append(step)
    return _then_sgd(updates, steps, params, learning_rate)


def adam(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8) -> Updates:
    """Adam: an SGD step on a bias-corrected running mean of the gradient over the root of its second moment.

    ``t <- t + 1``
    ``m <- beta1 * m + (1 - beta1) * g``;  ``v <- beta2 * v + (1 - beta2) * g**2``
    ``p <- p - lr * m_hat / (sqrt(v_hat) + epsilon)``, with
    ``m_hat = m / (1 - beta1**t)`` and ``v_hat = v / (1 - beta2**t)``.

    ``m`` and ``v`` start at zero, so early on they underestimate; dividing by
    ``1 - beta**t`` undoes that.  This is Algorithm 1 of the paper as written
    (Lasagne uses the paper's "efficient" form, which scales ``epsilon``
    slightly differently).  The step counter ``t`` is one floatX shared scalar
    for all parameters, the first entry of the updates.

    Parameters
    ----------
    loss_or_grads, params, learning_rate : as :func:`sgd`.
    beta1, beta2 : floats in [0, 1)
    epsilon : float > 0

    Returns
    -------
    OrderedDict of the counter's, the moments' and the parameters' updates.

    References
    ----------
    Kingma & Ba (2015), "Adam: A method for stochastic optimization", ICLR.
    Taught in ``book/gradient_descent.ipynb``.
    """
    check_learning_rate(learning_rate)
    _check_decay("beta1", beta1, 0.9, closed_at_zero=True)
    _check_decay("beta2", beta2, 0.999, closed_at_zero=True)
    _check_epsilon(epsilon)
    # floatX like all our state; float32 counts exactly up to 2**24 (16.7M) steps.
    t = pytensor.shared(np.asarray(0, dtype=pytensor.config.floatX), name="t")
    updates, steps = OrderedDict([(t, t + 1)]), []
    for param, grad in zip(params, get_or_compute_grads(loss_or_grads, params)):
        dtype, t_p = param.dtype, _cast(updates[t], param.dtype)
        m = _running_average(updates, param, "m", grad, beta1)
        v = _running_average(updates, param, "v", grad**2, beta2)
        m_hat = m / (1 - _cast(beta1, dtype) ** t_p)
        v_hat = v / (1 - _cast(beta2, dtype) ** t_p)
        steps.append(m_hat / (pt.sqrt(v_hat) + _cast(epsilon, dtype)))
    return _then_sgd(updates, steps, params, learning_rate)


def _running_average(updates, param, suffix, value, decay) -> Variable:
    """Add ``a <- decay * a + (1 - decay) * value`` (``a`` a new state of ``param``) to ``updates``; return the new ``a``."""
    average = zeros_like_param(param, suffix)
    dtype = param.dtype
    updates[average] = _cast(decay, dtype) * average + _cast(1.0 - decay, dtype) * value
    return updates[average]


def _then_sgd(updates, steps, params, learning_rate) -> Updates:
    """``updates`` (a rule's state), then an :func:`sgd` step along ``steps`` (its rescaled gradients)."""
    updates.update(sgd(steps, params, learning_rate))
    return updates


# --------------------------------------------------------------------------
# Learning-rate schedules
# --------------------------------------------------------------------------
# A schedule is a symbolic expression of a step counter.  Pass it as the
# learning_rate; the rule advances the counter by one per update:
#
#     step = step_counter()
#     updates = sgd(cost, params, exponential_decay(0.1, 0.96, step, decay_steps=100))


def step_counter(name: str = "step") -> SharedVariable:
    """A shared floatX scalar, starting at 0, that counts updates for a schedule.

    Every rule whose learning rate depends on it adds ``counter <- counter + 1``
    to its updates.  (To drive a schedule yourself, e.g. by epochs, use a
    plain ``pytensor.shared`` scalar and ``set_value``.)  Taught in ``book/gradient_descent.ipynb``.
    """
    counter = pytensor.shared(np.asarray(0, dtype=pytensor.config.floatX), name=name)
    counter.tag.counts_updates = True
    return counter


def _is_step_counter(var) -> bool:
    return getattr(var.tag, "counts_updates", False)


def _advance_step_counters(learning_rate) -> Updates:
    """``{counter: counter + 1}`` for each step counter ``learning_rate`` depends on."""
    if not isinstance(learning_rate, Variable):
        return OrderedDict()
    counters = [var for var in graph_inputs([learning_rate]) if _is_step_counter(var)]
    return OrderedDict((counter, counter + 1) for counter in counters)


def _check_step(step) -> Variable:
    if not isinstance(step, Variable) or step.ndim != 0:
        raise InvalidParameterError(
            f"step must be a symbolic scalar such as step_counter(); got {type(step).__name__} {step!r}."
        )
    return _cast(step, pytensor.config.floatX)


def _check_factor(name, value, example):
    hint = f"It is the factor applied to the rate; use e.g. {name}={example} (1 means no decay)."
    check_scalar(value, name, min_val=0, max_val=1, include_boundaries="right", hint=hint)


def _check_steps(name, value, example):
    hint = f"It is a number of steps; use e.g. {name}={example}."
    check_scalar(value, name, min_val=0, include_boundaries="neither", hint=hint)


def exponential_decay(initial, decay_rate, step, decay_steps=1) -> Variable:
    """``initial * decay_rate ** (step / decay_steps)``: a smooth geometric decay.

    With ``decay_rate=0.96, decay_steps=100`` the rate falls by 4% every
    100 steps.  Returns a floatX scalar expression of ``step``.
    Taught in ``book/gradient_descent.ipynb``.
    """
    check_learning_rate(initial)
    _check_factor("decay_rate", decay_rate, 0.96)
    _check_steps("decay_steps", decay_steps, 100)
    floatx = pytensor.config.floatX
    s = _check_step(step)
    return _cast(initial, floatx) * _cast(decay_rate, floatx) ** (s / _cast(decay_steps, floatx))


def step_decay(initial, drop, step, every) -> Variable:
    """``initial * drop ** floor(step / every)``: multiply the rate by ``drop`` every ``every`` steps.

    The "divide by 10 at fixed epochs" schedule of many classic papers.
    Returns a floatX scalar expression of ``step``.  Taught in ``book/gradient_descent.ipynb``.
    """
    check_learning_rate(initial)
    _check_factor("drop", drop, 0.1)
    _check_steps("every", every, 1000)
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

    ``get_optimizer("adam")(cost, params, learning_rate=0.001)``.  Taught in ``book/gradient_descent.ipynb``.
    """
    key = str(name).strip().lower().replace("-", "_")
    return OPTIMIZERS[check_option(key, "optimizer", tuple(OPTIMIZERS), hint="E.g. --optimizer momentum.")]

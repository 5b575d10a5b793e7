"""Tests for dlt_lib.updates.

Each rule is checked against an independent NumPy implementation written
from its paper (not from our code: momentum as Polyak's two-step recurrence,
Nesterov with the gradient at the look-ahead point as Sutskever et al. write
it), on a small least-squares problem with a matrix and a vector parameter,
in float64, step by step, to rtol 1e-9.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from dlt_lib.backend import get_mode
from dlt_lib.updates import (
    OPTIMIZERS,
    adadelta,
    adagrad,
    adam,
    apply_momentum,
    apply_nesterov_momentum,
    exponential_decay,
    get_optimizer,
    get_or_compute_grads,
    momentum,
    nesterov_momentum,
    rmsprop,
    sgd,
    step_counter,
    step_decay,
    zeros_like_param,
)
from dlt_lib.validation import InvalidParameterError

FAST = "FAST_COMPILE"
STEPS = 30
# float64 throughout, so two correct implementations agree to ~1e-13; 1e-9 is
# far tighter than any formula error (a misplaced epsilon, a missing bias
# correction) and far looser than rounding.
RTOL, ATOL = 1e-9, 1e-12

# --------------------------------------------------------------------------
# The problem: least squares, loss = 0.5/n * sum((X W + b - Y)**2)
# --------------------------------------------------------------------------

_rng = np.random.default_rng(1234)
X = _rng.normal(size=(16, 3))
Y = (
    X @ np.array([[1.0, -2.0], [0.5, 0.0], [-1.5, 1.0]])
    + np.array([0.3, -0.7])
    + 0.1 * _rng.normal(size=(16, 2))
)
W0 = _rng.normal(size=(3, 2))
B0 = _rng.normal(size=(2,))


def np_grads(params):
    W, b = params
    r = X @ W + b - Y
    return [X.T @ r / len(X), r.sum(axis=0) / len(X)]


def make_problem(dtype="float64"):
    W = pytensor.shared(W0.astype(dtype), name="W")
    b = pytensor.shared(B0.astype(dtype), name="b")
    Xc, Yc = pt.constant(X.astype(dtype)), pt.constant(Y.astype(dtype))
    loss = 0.5 * pt.sum((Xc @ W + b - Yc) ** 2) / len(X)
    return loss, [W, b]


def run(updates, params, steps=STEPS, mode=FAST):
    step = pytensor.function([], [], updates=updates, mode=mode)
    trajectory = []
    for _ in range(steps):
        step()
        trajectory.append([p.get_value().copy() for p in params])
    return trajectory


# --------------------------------------------------------------------------
# Independent NumPy references, from the papers
# --------------------------------------------------------------------------


def ref_sgd(steps, lr):
    theta, out = [W0.copy(), B0.copy()], []
    for _ in range(steps):
        theta = [t - lr * g for t, g in zip(theta, np_grads(theta))]
        out.append(theta)
    return out


def ref_polyak(steps, lr, mu):
    # Polyak (1964): theta_{t+1} = theta_t - lr grad(theta_t) + mu (theta_t - theta_{t-1}).
    prev = theta = [W0.copy(), B0.copy()]
    out = []
    for _ in range(steps):
        new = [t - lr * g + mu * (t - tp) for t, g, tp in zip(theta, np_grads(theta), prev)]
        prev, theta = theta, new
        out.append(theta)
    return out


def ref_sutskever(steps, lr, mu):
    # Sutskever et al. (2013), eq. 3-4: the gradient at the look-ahead point
    #   v_{t+1} = mu v_t - lr grad(theta_t + mu v_t);  theta_{t+1} = theta_t + v_{t+1}.
    # The library stores the look-ahead point phi = theta + mu v as the parameter.
    theta, v, out = [W0.copy(), B0.copy()], [np.zeros_like(W0), np.zeros_like(B0)], []
    for _ in range(steps):
        g = np_grads([t + mu * vi for t, vi in zip(theta, v)])
        v = [mu * vi - lr * gi for vi, gi in zip(v, g)]
        theta = [t + vi for t, vi in zip(theta, v)]
        out.append([t + mu * vi for t, vi in zip(theta, v)])
    return out


def ref_adagrad(steps, lr, eps):
    # Duchi et al. (2011), diagonal version: theta -= lr g / (delta + sqrt(sum g^2)).
    theta, G, out = [W0.copy(), B0.copy()], [0.0, 0.0], []
    for _ in range(steps):
        g = np_grads(theta)
        G = [Gi + gi**2 for Gi, gi in zip(G, g)]
        theta = [t - lr * gi / (eps + np.sqrt(Gi)) for t, gi, Gi in zip(theta, g, G)]
        out.append(theta)
    return out


def ref_rmsprop(steps, lr, rho, eps):
    # Tieleman & Hinton (2012): MeanSquare = rho MeanSquare + (1 - rho) g^2; divide g by its root.
    theta, ms, out = [W0.copy(), B0.copy()], [0.0, 0.0], []
    for _ in range(steps):
        g = np_grads(theta)
        ms = [rho * m + (1 - rho) * gi**2 for m, gi in zip(ms, g)]
        theta = [t - lr * gi / np.sqrt(m + eps) for t, gi, m in zip(theta, g, ms)]
        out.append(theta)
    return out


def ref_adadelta(steps, lr, rho, eps):
    # Zeiler (2012), Algorithm 1; lr multiplies the step (1.0 in the paper).
    theta, Eg2, Edx2, out = [W0.copy(), B0.copy()], [0.0, 0.0], [0.0, 0.0], []
    for _ in range(steps):
        g = np_grads(theta)
        Eg2 = [rho * e + (1 - rho) * gi**2 for e, gi in zip(Eg2, g)]
        dx = [-np.sqrt(ed + eps) / np.sqrt(eg + eps) * gi for ed, eg, gi in zip(Edx2, Eg2, g)]
        Edx2 = [rho * ed + (1 - rho) * d**2 for ed, d in zip(Edx2, dx)]
        theta = [t + lr * d for t, d in zip(theta, dx)]
        out.append(theta)
    return out


def ref_adam(steps, lr, beta1, beta2, eps):
    # Kingma & Ba (2015), Algorithm 1, literally.
    theta, m, v, out = [W0.copy(), B0.copy()], [0.0, 0.0], [0.0, 0.0], []
    for t in range(1, steps + 1):
        g = np_grads(theta)
        m = [beta1 * mi + (1 - beta1) * gi for mi, gi in zip(m, g)]
        v = [beta2 * vi + (1 - beta2) * gi**2 for vi, gi in zip(v, g)]
        m_hat = [mi / (1 - beta1**t) for mi in m]
        v_hat = [vi / (1 - beta2**t) for vi in v]
        theta = [th - lr * mh / (np.sqrt(vh) + eps) for th, mh, vh in zip(theta, m_hat, v_hat)]
        out.append(theta)
    return out


# (rule, its keyword arguments, the reference and its arguments).  A large
# epsilon in some cases pins down where epsilon sits in the formula.
CASES = {
    "sgd": (sgd, dict(learning_rate=0.1), ref_sgd, (0.1,)),
    "momentum": (momentum, dict(learning_rate=0.05), ref_polyak, (0.05, 0.9)),
    "momentum-0.5": (momentum, dict(learning_rate=0.1, momentum=0.5), ref_polyak, (0.1, 0.5)),
    "momentum-0-is-sgd": (momentum, dict(learning_rate=0.1, momentum=0.0), ref_sgd, (0.1,)),
    "nesterov": (nesterov_momentum, dict(learning_rate=0.05), ref_sutskever, (0.05, 0.9)),
    "nesterov-0.6": (nesterov_momentum, dict(learning_rate=0.1, momentum=0.6), ref_sutskever, (0.1, 0.6)),
    "adagrad": (adagrad, dict(learning_rate=0.5), ref_adagrad, (0.5, 1e-6)),
    "adagrad-big-eps": (adagrad, dict(learning_rate=0.5, epsilon=0.5), ref_adagrad, (0.5, 0.5)),
    "rmsprop": (rmsprop, dict(learning_rate=0.01), ref_rmsprop, (0.01, 0.9, 1e-6)),
    "rmsprop-big-eps": (
        rmsprop,
        dict(learning_rate=0.05, rho=0.8, epsilon=0.5),
        ref_rmsprop,
        (0.05, 0.8, 0.5),
    ),
    "adadelta": (adadelta, dict(), ref_adadelta, (1.0, 0.95, 1e-6)),
    "adadelta-big-eps": (
        adadelta,
        dict(learning_rate=0.5, rho=0.9, epsilon=1e-2),
        ref_adadelta,
        (0.5, 0.9, 1e-2),
    ),
    "adam": (adam, dict(learning_rate=0.05), ref_adam, (0.05, 0.9, 0.999, 1e-8)),
    "adam-big-eps": (
        adam,
        dict(learning_rate=0.05, beta1=0.8, beta2=0.99, epsilon=0.1),
        ref_adam,
        (0.05, 0.8, 0.99, 0.1),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_trajectory_matches_numpy_reference(case):
    rule, kwargs, ref, ref_args = CASES[case]
    loss, params = make_problem()
    got = run(rule(loss, params, **kwargs), params)
    want = ref(STEPS, *ref_args)
    for step, (g, w) in enumerate(zip(got, want)):
        for name, gp, wp in zip("Wb", g, w):
            np.testing.assert_allclose(
                gp, wp, rtol=RTOL, atol=ATOL, err_msg=f"{case}: {name} at step {step + 1}"
            )
    # The comparison means something only if the parameters really moved.
    moved = max(np.abs(got[-1][0] - W0).max(), np.abs(got[-1][1] - B0).max())
    assert moved > 1e-2, f"{case}: parameters moved only {moved:g}"


def test_trajectory_in_c_mode():
    # The same graph through the C back end the book uses by default.
    loss, params = make_problem()
    got = run(adam(loss, params, learning_rate=0.05), params, steps=10, mode=get_mode("C"))
    want = ref_adam(10, 0.05, 0.9, 0.999, 1e-8)
    for g, w in zip(got, want):
        for gp, wp in zip(g, w):
            np.testing.assert_allclose(gp, wp, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------
# Composition: momentum added to any rule
# --------------------------------------------------------------------------


def ref_momentum_on(rule_ref_steps, mu, nesterov=False):
    """Momentum on top of a rule given as ``step(theta, state) -> (step, state)``, by the textbook recurrence."""
    theta, v, state, out = [W0.copy(), B0.copy()], [0.0, 0.0], None, []
    for _ in range(STEPS):
        step, state = rule_ref_steps(theta, state)
        v = [mu * vi + si for vi, si in zip(v, step)]
        theta = [t + si + mu * vi if nesterov else t + vi for t, si, vi in zip(theta, step, v)]
        out.append(theta)
    return out


def adagrad_step(theta, state, lr=0.5, eps=1e-6):
    g = np_grads(theta)
    state = [s + gi**2 for s, gi in zip(state or [0.0, 0.0], g)]
    return [-lr * gi / (eps + np.sqrt(s)) for gi, s in zip(g, state)], state


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_composes_with_another_rule(nesterov):
    loss, params = make_problem()
    apply = apply_nesterov_momentum if nesterov else apply_momentum
    got = run(apply(adagrad(loss, params, learning_rate=0.5), params, momentum=0.8), params)
    want = ref_momentum_on(adagrad_step, 0.8, nesterov)
    for g, w in zip(got, want):
        for gp, wp in zip(g, w):
            np.testing.assert_allclose(gp, wp, rtol=RTOL, atol=ATOL)


def test_a_shared_momentum_gives_the_numeric_trajectory():
    loss, params = make_problem()
    mu = pytensor.shared(0.9, name="mu")
    got = run(momentum(loss, params, learning_rate=0.05, momentum=mu), params)
    for g, w in zip(got, ref_polyak(STEPS, 0.05, 0.9)):
        for gp, wp in zip(g, w):
            np.testing.assert_allclose(gp, wp, rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="symbolic momentum must be a scalar"):
        momentum(loss, params, learning_rate=0.05, momentum=pt.vector("mu"))


def test_momentum_leaves_a_schedule_counter_alone():
    loss, params = make_problem()
    step = step_counter()
    updates = apply_momentum(sgd(loss, params, exponential_decay(0.1, 0.5, step, decay_steps=4)))
    assert [v.name for v in updates] == ["step", "W", "b", "W_velocity", "b_velocity"]
    run(updates, params, steps=3)
    assert step.get_value() == 3
    with pytest.raises(ValueError, match="updates has no update for x"):
        apply_momentum(sgd(loss, params, 0.1), [pytensor.shared(np.zeros(2), name="x")])


# --------------------------------------------------------------------------
# Loss or gradients; errors in the arguments
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("container", [list, tuple])
def test_gradients_instead_of_loss_give_the_same_steps(name, container):
    rule = OPTIMIZERS[name]
    kwargs = {"learning_rate": 0.05}
    loss, params = make_problem()
    from_loss = run(rule(loss, params, **kwargs), params, steps=5)
    loss, params = make_problem()
    grads = container(pytensor.grad(loss, params))
    from_grads = run(rule(grads, params, **kwargs), params, steps=5)
    for a, b in zip(from_loss, from_grads):
        for pa, pb in zip(a, b):
            np.testing.assert_allclose(pa, pb, rtol=1e-14, atol=0)


def test_mismatched_gradient_count_is_a_clear_error():
    loss, params = make_problem()
    grads = pytensor.grad(loss, params)
    with pytest.raises(ValueError, match=r"Got 1 gradients for 2 parameters"):
        sgd(grads[:1], params, 0.1)
    with pytest.raises(ValueError, match=r"Got 3 gradients for 2 parameters"):
        adam([*grads, grads[0]], params)


def test_argument_errors():
    loss, params = make_problem()
    W, b = params
    with pytest.raises(ValueError, match="appears twice"):
        sgd(loss, [W, W], 0.1)
    with pytest.raises(TypeError, match="must be a shared variable"):
        sgd(loss, [W, pt.vector("x")], 0.1)
    with pytest.raises(ValueError, match="must be a scalar"):
        sgd((X.shape[0] * W).sum(axis=0), params, 0.1)
    with pytest.raises(TypeError, match="scalar PyTensor expression or a list"):
        sgd(3.0, params, 0.1)
    with pytest.raises(ValueError, match="gradient for W is 1-d"):
        sgd([b, b], params, 0.1)


BAD = [
    (sgd, dict(learning_rate=0), "learning_rate must be a number > 0; got 0. Typical values"),
    (sgd, dict(learning_rate=-0.1), r"got -0\.1"),
    (sgd, dict(learning_rate=math.nan), "learning_rate must be a number > 0; got nan"),
    (sgd, dict(learning_rate=math.inf), "learning_rate must be a number > 0; got inf"),
    (sgd, dict(learning_rate="0.1"), "learning_rate must be a number > 0; got str '0.1'.* symbolic scalar"),
    (sgd, dict(learning_rate=True), "got bool"),
    (sgd, dict(learning_rate=None), "got NoneType"),
    (sgd, dict(learning_rate=pt.vector("lr")), "symbolic learning_rate must be a scalar"),
    (
        momentum,
        dict(learning_rate=0.1, momentum=1.0),
        r"momentum must be a number in \[0, 1\); got 1\.0\. .*momentum=0\.9",
    ),
    (momentum, dict(learning_rate=0.1, momentum=-0.1), r"momentum must be a number in \[0, 1\); got -0\.1"),
    (momentum, dict(learning_rate=0.1, momentum="0.9"), r"momentum must be a number in \[0, 1\); got str"),
    (nesterov_momentum, dict(learning_rate=0.1, momentum=1.5), r"momentum must be a number in \[0, 1\)"),
    (nesterov_momentum, dict(learning_rate=-1), "learning_rate"),
    (adagrad, dict(epsilon=0), r"epsilon must be a number > 0; got 0\. .*0/0"),
    (adagrad, dict(learning_rate=0), "learning_rate"),
    (rmsprop, dict(rho=1.0), r"rho must be a number in \(0, 1\); got 1\.0\. .*rho=0\.9"),
    (rmsprop, dict(rho=0), r"rho must be a number in \(0, 1\)"),
    (rmsprop, dict(epsilon=-1e-6), "epsilon must be a number > 0"),
    (adadelta, dict(rho=1.2), r"rho must be a number in \(0, 1\); got 1\.2\. .*rho=0\.95"),
    (adadelta, dict(epsilon=0.0), "epsilon must be a number > 0"),
    (adam, dict(beta1=1.0), r"beta1 must be a number in \[0, 1\); got 1\.0"),
    (adam, dict(beta2=-0.1), r"beta2 must be a number in \[0, 1\)"),
    (adam, dict(epsilon=0), "epsilon must be a number > 0"),
    (adam, dict(learning_rate=0), "learning_rate"),
]


@pytest.mark.parametrize(("rule", "kwargs", "match"), BAD, ids=[f"{r.__name__}-{k}" for r, k, _ in BAD])
def test_invalid_hyper_parameters_raise_value_error(rule, kwargs, match):
    loss, params = make_problem()
    with pytest.raises(ValueError, match=match) as info:
        rule(loss, params, **kwargs)
    assert isinstance(info.value, InvalidParameterError)


# --------------------------------------------------------------------------
# Shape of the update list and of the state
# --------------------------------------------------------------------------

EXPECTED_NAMES = {
    "sgd": ["W", "b"],
    "momentum": ["W", "b", "W_velocity", "b_velocity"],
    "nesterov_momentum": ["W", "b", "W_velocity", "b_velocity"],
    "adagrad": ["W_sum_sq_grad", "b_sum_sq_grad", "W", "b"],
    "rmsprop": ["W_mean_sq_grad", "b_mean_sq_grad", "W", "b"],
    "adadelta": ["W_mean_sq_grad", "W_mean_sq_step", "b_mean_sq_grad", "b_mean_sq_step", "W", "b"],
    "adam": ["t", "W_m", "W_v", "b_m", "b_v", "W", "b"],
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_updates_are_an_ordered_deterministic_mapping(name):
    loss, params = make_problem()
    first = OPTIMIZERS[name](loss, params, learning_rate=0.1)
    second = OPTIMIZERS[name](loss, params, learning_rate=0.1)
    assert isinstance(first, OrderedDict)
    assert [v.name for v in first] == [v.name for v in second] == EXPECTED_NAMES[name]
    # Each call makes its own state: two optimizers never share a velocity.
    state_first = {id(v) for v in first} - {id(p) for p in params}
    state_second = {id(v) for v in second} - {id(p) for p in params}
    assert not state_first & state_second
    # Every piece of state starts at zero.
    for var in first:
        if var not in params:
            assert not np.any(var.get_value())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_float32_parameters_stay_float32(name):
    assert pytensor.config.floatX == "float32"
    W = pytensor.shared(W0.astype("float32"), name="W")
    # A broadcastable row, as a bias often is: the state must keep its type.
    c = pytensor.shared(B0[None, :].astype("float32"), name="c", shape=(1, None))
    x = pt.constant(X.astype("float32"))
    loss = pt.mean((x @ W + c - Y.astype("float32")) ** 2)
    # A float64 learning rate, numeric or symbolic, must not upcast either.
    for lr in (0.05, pytensor.shared(np.float64(0.05), name="lr")):
        updates = OPTIMIZERS[name](loss, [W, c], learning_rate=lr)
        for var, expr in updates.items():
            assert var.dtype == "float32", var.name
            assert expr.dtype == var.dtype, f"{var.name}: update is {expr.dtype}"
            assert expr.type.broadcastable == var.type.broadcastable, var.name
        step = pytensor.function([], loss, updates=updates, mode=FAST)
        for _ in range(3):
            assert step().dtype == np.float32
        for var in updates:
            value = var.get_value()
            assert value.dtype == np.float32 and np.all(np.isfinite(value)), var.name


def test_float64_gradients_are_cast_to_the_parameter_dtype():
    W = pytensor.shared(np.ones(3, dtype="float32"), name="W")
    g64 = pt.as_tensor_variable(np.full(3, 0.5))
    (new_w,) = sgd([g64], [W], learning_rate=0.1).values()
    assert new_w.dtype == "float32"


def test_state_keeps_parameter_shape_type_and_name():
    W = pytensor.shared(np.zeros((1, 4), dtype="float32"), name="W", shape=(1, None))
    velocity = zeros_like_param(W, "velocity")
    assert velocity.name == "W_velocity"
    assert velocity.type == W.type
    assert velocity.get_value().shape == (1, 4)
    unnamed = pytensor.shared(np.zeros(2))
    assert zeros_like_param(unnamed, "velocity").name == "velocity"
    assert zeros_like_param(unnamed, "velocity").dtype == "float64"


def test_adam_counts_steps_in_a_floatx_counter():
    loss, params = make_problem()
    updates = adam(loss, params)
    t = next(iter(updates))
    assert t.name == "t" and t.dtype == "float32"
    run(updates, params, steps=4)
    assert t.get_value() == 4


def test_get_or_compute_grads_returns_one_gradient_per_parameter():
    loss, params = make_problem()
    grads = get_or_compute_grads(loss, params)
    f = pytensor.function([], grads, mode=FAST)
    for got, want in zip(f(), np_grads([W0, B0])):
        np.testing.assert_allclose(got, want, rtol=1e-12)


# --------------------------------------------------------------------------
# Learning rates that change
# --------------------------------------------------------------------------


def test_shared_learning_rate_can_be_changed_without_recompiling():
    loss, params = make_problem()
    lr = pytensor.shared(0.1, name="lr")
    step = pytensor.function([], [], updates=sgd(loss, params, lr), mode=FAST)
    step()
    np.testing.assert_allclose(params[0].get_value(), ref_sgd(1, 0.1)[0][0], rtol=RTOL)
    before = params[0].get_value().copy()
    lr.set_value(0.0)
    step()
    np.testing.assert_array_equal(params[0].get_value(), before)


def _evaluate(expr, step, values):
    f = pytensor.function([], expr, mode=FAST)
    out = []
    for value in values:
        step.set_value(np.float32(value))
        out.append(f())
    return np.array(out)


def test_exponential_decay_values():
    step = step_counter()
    assert step.name == "step" and step.dtype == "float32" and step.get_value() == 0
    lr = exponential_decay(0.1, 0.5, step, decay_steps=2)
    assert lr.dtype == "float32"
    steps = np.array([0, 1, 2, 3, 10, 20])
    # float32 arithmetic: agree to a few float32 ulps.
    np.testing.assert_allclose(_evaluate(lr, step, steps), 0.1 * 0.5 ** (steps / 2), rtol=1e-6)


def test_step_decay_values():
    step = step_counter("epoch")
    lr = step_decay(0.1, 0.1, step, every=3)
    assert lr.dtype == "float32"
    got = _evaluate(lr, step, [0, 1, 2, 3, 5, 6, 9, 10])
    np.testing.assert_allclose(got, [0.1, 0.1, 0.1, 0.01, 0.01, 1e-3, 1e-4, 1e-4], rtol=1e-6)


def test_schedule_drives_sgd_and_the_rule_advances_its_counter():
    loss, params = make_problem()
    step = step_counter()
    lr = step_decay(0.2, 0.5, step, every=2)
    updates = sgd(loss, params, lr)  # no (step, step + 1) to add by hand
    assert updates[step] is not None
    got = run(updates, params, steps=6)
    theta = [W0.copy(), B0.copy()]
    for k in range(6):
        rate = np.float64(np.float32(0.2) * np.float32(0.5) ** (k // 2))
        theta = [t - rate * g for t, g in zip(theta, np_grads(theta))]
        # lr is a float32 expression cast to float64: exact here (powers of two times 0.2f).
        np.testing.assert_allclose(got[k][0], theta[0], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(got[k][1], theta[1], rtol=RTOL, atol=ATOL)
    assert step.get_value() == 6


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: exponential_decay(0.1, 0.0, s), r"decay_rate must be a number in \(0, 1\]"),
        (lambda s: exponential_decay(0.1, 1.5, s), r"decay_rate must be a number in \(0, 1\]; got 1\.5"),
        (lambda s: exponential_decay(0.1, 0.9, s, decay_steps=0), "decay_steps must be a number > 0"),
        (lambda s: exponential_decay(-0.1, 0.9, s), "learning_rate must be a number > 0"),
        (lambda s: step_decay(0.1, 2.0, s, every=10), r"drop must be a number in \(0, 1\]"),
        (lambda s: step_decay(0.1, 0.5, s, every=0), "every must be a number > 0"),
    ],
)
def test_invalid_schedule_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(step_counter())


def test_schedule_needs_a_symbolic_step():
    with pytest.raises(TypeError, match="step must be a symbolic scalar"):
        exponential_decay(0.1, 0.9, 3)


# --------------------------------------------------------------------------
# Choosing by name
# --------------------------------------------------------------------------


def test_optimizers_by_name():
    assert list(OPTIMIZERS) == [
        "sgd",
        "momentum",
        "nesterov_momentum",
        "adagrad",
        "rmsprop",
        "adadelta",
        "adam",
    ]
    for name, rule in OPTIMIZERS.items():
        assert get_optimizer(name) is rule
        assert rule.__doc__ and rule.__name__ == name
    assert get_optimizer(" Nesterov-Momentum ") is nesterov_momentum
    assert get_optimizer("ADAM") is adam


def test_unknown_optimizer_lists_the_valid_names():
    with pytest.raises(ValueError, match="optimizer must be one of .*; got 'adamw'") as info:
        get_optimizer("adamw")
    for name in OPTIMIZERS:
        assert name in str(info.value)

"""Losses and models checked against plain NumPy on fixed inputs."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from dlt_lib import losses
from dlt_lib.models import MLP, LogisticRegression, glorot_uniform

P = np.array(
    [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.5, 0.25], [0.05, 0.05, 0.9], [0.4, 0.35, 0.25]],
    dtype="float64",
)
Y = np.array([0, 2, 0, 2, 1], dtype="int32")


def _eval(expr, p, y):
    return expr.eval({p_var: p, y_var: y})


p_var = pt.dmatrix("p")
y_var = pt.ivector("y")


def test_zero_one_loss_counts_and_rates_mistakes():
    wrong = np.argmax(P, axis=1) != Y  # rows 2 and 4 are wrong
    assert wrong.sum() == 2
    assert _eval(losses.zero_one_loss(p_var, y_var), P, Y) == 2
    assert _eval(losses.zero_one_rate(p_var, y_var), P, Y) == pytest.approx(0.4)


def test_negative_log_likelihood_mean_and_sum():
    picked = np.log(P[np.arange(len(Y)), Y])
    assert _eval(losses.negative_log_likelihood(p_var, y_var, "sum"), P, Y) == pytest.approx(
        -picked.sum(), rel=1e-12
    )
    assert _eval(losses.negative_log_likelihood(p_var, y_var), P, Y) == pytest.approx(
        -picked.mean(), rel=1e-12
    )
    with pytest.raises(ValueError, match="reduction"):
        losses.negative_log_likelihood(p_var, y_var, "median")


def test_log_probabilities_pick_one_entry_per_row():
    got = losses.log_probabilities_of_labels(p_var, y_var).eval({p_var: P, y_var: Y})
    np.testing.assert_array_equal(got, P[np.arange(5), Y])


def test_penalties_match_numpy():
    a = np.array([[1.0, -2.0], [0.5, -0.25]])
    b = np.array([3.0, -4.0])
    sa, sb = pytensor.shared(a), pytensor.shared(b)
    assert losses.l1_penalty([sa, sb]).eval() == pytest.approx(np.abs(a).sum() + np.abs(b).sum())
    assert losses.l2_penalty([sa, sb]).eval() == pytest.approx((a**2).sum() + (b**2).sum())
    assert losses.l1_penalty([sb]).eval() == pytest.approx(7.0)
    with pytest.raises(ValueError, match="at least one"):
        losses.l2_penalty([])


def test_labels_must_be_integer_vectors():
    with pytest.raises(TypeError, match="integers"):
        losses.zero_one_loss(p_var, pt.dvector("y"))
    with pytest.raises(TypeError, match="vector"):
        losses.negative_log_likelihood(p_var, pt.imatrix("y"))


def _numpy_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_logistic_regression_matches_numpy():
    rng = np.random.default_rng(0)
    model = LogisticRegression(6, 4)
    assert not model.W.get_value().any() and not model.b.get_value().any()  # zero start, as in the tutorial
    W = rng.normal(size=(6, 4)).astype("float32")
    b = rng.normal(size=4).astype("float32")
    model.set_param_values({"W": W, "b": b})
    X = rng.normal(size=(9, 6)).astype("float32")
    y = rng.integers(0, 4, size=9).astype("int32")
    expected = _numpy_softmax(X.astype(float) @ W + b)
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.predict(X), expected.argmax(axis=1))
    yv = pt.ivector("y")
    nll = pytensor.function([model.input, yv], model.negative_log_likelihood(yv))(X, y)
    err = pytensor.function([model.input, yv], model.errors(yv))(X, y)
    assert nll == pytest.approx(-np.log(expected[np.arange(9), y]).mean(), rel=1e-5)
    assert err == pytest.approx(np.mean(expected.argmax(1) != y))
    assert model.error_rate(X, y) == pytest.approx(err)


def test_nll_is_finite_for_extreme_logits():
    # log(softmax) computed naively gives log(0) = -inf here; the model's log-softmax does not.
    model = LogisticRegression(1, 2)
    model.set_param_values({"W": np.array([[200.0, -200.0]], "float32"), "b": np.zeros(2, "float32")})
    yv = pt.ivector("y")
    nll = pytensor.function([model.input, yv], model.negative_log_likelihood(yv))
    value = nll(np.array([[1.0]], "float32"), np.array([1], "int32"))
    assert np.isfinite(value) and value == pytest.approx(400.0, rel=1e-4)


def _log_softmax_reference(z):
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("mode", ["C", "NUMBA", pytest.param("JAX", marks=pytest.mark.jax)])
def test_log_softmax_and_its_gradient_are_stable_in_every_mode(mode):
    # Mode C turns PyTensor's log-sum-exp stabilising rewrite off (dlt_lib.backend),
    # and the max is under zero_grad: the model's log-softmax must still neither
    # overflow (exp(1000)) nor underflow to -inf/NaN, forward or backward.
    from dlt_lib import backend
    from dlt_lib.models import log_softmax

    z = pt.matrix("z")
    y = pt.ivector("y")
    log_p = log_softmax(z)
    cost = losses.negative_log_likelihood(None, y, log_p_y_given_x=log_p)
    f = pytensor.function([z, y], [log_p, cost, pytensor.grad(cost, z)], mode=backend.get_mode(mode))
    logits = np.array(
        [[1000.0, 0.0, -5.0], [1.0, 2.0, 3.0], [-1e4, -1e4, -1e4], [-88.0, 88.0, 0.0]], "float32"
    )
    labels = np.array([1, 2, 0, 0], "int32")
    got_log_p, got_cost, got_grad = f(logits, labels)
    ref = _log_softmax_reference(logits)
    rows = np.arange(len(labels))
    one_hot = np.eye(3)[labels]
    np.testing.assert_allclose(got_log_p, ref, rtol=1e-6, atol=1e-4)
    assert got_cost == pytest.approx(-ref[rows, labels].mean(), rel=1e-6)
    # d mean NLL / d z = (softmax(z) - one_hot(y)) / n
    np.testing.assert_allclose(got_grad, (np.exp(ref) - one_hot) / len(labels), atol=1e-7)


def test_glorot_uniform_bounds_and_sigmoid_factor():
    rng = np.random.default_rng(1)
    W = glorot_uniform(rng, 784, 500)
    bound = np.sqrt(6 / (784 + 500))
    assert W.dtype == np.float32 and W.shape == (784, 500)
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.99 * bound
    Ws = glorot_uniform(np.random.default_rng(1), 784, 500, activation="sigmoid")
    np.testing.assert_allclose(Ws, 4 * W, rtol=1e-6)
    # ReLU: the tutorials had no rule for it and used tanh's bound; so do we.
    np.testing.assert_array_equal(glorot_uniform(np.random.default_rng(1), 784, 500, "relu"), W)
    with pytest.raises(ValueError, match="activation"):
        glorot_uniform(rng, 2, 2, activation="softplus")


def test_mlp_matches_numpy_and_is_seeded():
    model = MLP(5, 7, 3, seed=42)
    again = MLP(5, 7, 3, seed=42)
    other = MLP(5, 7, 3, seed=43)
    values = model.get_param_values()
    assert sorted(values) == ["hidden_W", "hidden_b", "output_W", "output_b"]
    np.testing.assert_array_equal(values["hidden_W"], again.get_param_values()["hidden_W"])
    assert not np.array_equal(values["hidden_W"], other.get_param_values()["hidden_W"])
    rng = np.random.default_rng(2)
    model.set_param_values({**values, "output_W": rng.normal(size=(7, 3)).astype("float32")})
    v = model.get_param_values()
    X = rng.normal(size=(4, 5)).astype("float32")
    h = np.tanh(X @ v["hidden_W"] + v["hidden_b"])
    np.testing.assert_allclose(
        model.predict_proba(X), _numpy_softmax(h @ v["output_W"] + v["output_b"]), rtol=1e-5
    )
    # L1 and L2 cover the weights only, not the biases
    assert model.L1.eval() == pytest.approx(
        np.abs(v["hidden_W"]).sum() + np.abs(v["output_W"]).sum(), rel=1e-5
    )
    assert model.L2_sqr.eval() == pytest.approx(
        (v["hidden_W"] ** 2).sum() + (v["output_W"] ** 2).sum(), rel=1e-5
    )


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.zeros((3, 5), "float32"), None, r"shape \(n_examples, 4\); got \(3, 5\)"),
        (np.zeros((3, 2, 2), "float32"), None, r"got \(3, 2, 2\)"),
        (np.zeros((3, 4), "float32"), np.array([0, 1, 3]), r"0\.\.2 .* got values from 0 to 3"),
        (np.zeros((3, 4), "float32"), np.array([0, 1]), r"one label per example"),
        (np.zeros((3, 4), "float32"), np.array([0.0, 1.0, 2.0]), r"integers"),
    ],
)
def test_clear_errors_for_wrong_shapes_and_labels(X, y, message):
    model = LogisticRegression(4, 3)
    with pytest.raises(ValueError, match=message):
        model.check_data(X, y)


def test_constructor_and_parameter_errors():
    with pytest.raises(ValueError, match="n_in must be an integer >= 1"):
        LogisticRegression(0, 10)
    with pytest.raises(ValueError, match="expects n_in=4"):
        LogisticRegression(4, 2, input=pt.matrix("x", shape=(None, 3)))
    model = LogisticRegression(4, 3)
    with pytest.raises(ValueError, match=r"shape \(4, 3\); the value given has shape \(3, 4\)"):
        model.set_param_values({"W": np.zeros((3, 4), "float32"), "b": np.zeros(3, "float32")})
    with pytest.raises(ValueError, match="missing"):
        model.set_param_values({"W": np.zeros((4, 3), "float32")})


def test_picking_log_probabilities_ignores_minus_infinity_elsewhere():
    # A probability of exactly 0 for a wrong class (log = -inf) must not turn the picked value into NaN.
    log_p = np.array([[0.0, -np.inf, -np.inf], [-np.inf, np.log(0.5), np.log(0.5)]])
    got = losses.log_probabilities_of_labels(p_var, y_var).eval(
        {p_var: log_p, y_var: np.array([0, 2], "int32")}
    )
    np.testing.assert_allclose(got, [0.0, np.log(0.5)])

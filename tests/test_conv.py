"""Convolution and max-pooling (dlt_lib.conv) against independent references, in every mode.

References: SciPy's ``signal.convolve`` / ``signal.correlate`` summed over
channels, plain NumPy loops, and finite differences (``pytensor.gradient.verify_grad``).
Float64 throughout, to 1e-5; inputs of random shapes, some of them
non-contiguous views.
"""

import importlib.util

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import signal
from support import require

from dlt_lib import backend, conv

MODES = ["C", "NUMBA", pytest.param("JAX", marks=pytest.mark.jax)]
TOL = 1e-5


@pytest.fixture(params=MODES)
def mode(request):
    """The PyTensor mode object for one dlt_lib mode, with JAX in 64-bit for the float64 checks."""
    name = request.param
    if name == "JAX":
        require(importlib.util.find_spec("jax") is not None, "jax is not installed")
        import jax

        compiled = backend.get_mode("JAX")  # imports PyTensor's JAX back end, which sets x64 from floatX
        jax.config.update("jax_enable_x64", True)
        yield compiled
        jax.config.update("jax_enable_x64", False)
    else:
        yield backend.get_mode(name)


def _random_case(rng):
    n, c, k = (int(v) for v in rng.integers(1, 4, size=3))
    fr, fc = (int(v) for v in rng.integers(1, 5, size=2))
    rows, cols = fr + int(rng.integers(0, 6)), fc + int(rng.integers(0, 6))
    return rng.normal(size=(n, c, rows, cols)), rng.normal(size=(k, c, fr, fc))


def _non_contiguous(a, rng):
    """The same values as ``a`` in a strided, non-contiguous view."""
    big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    big[..., 1::2] = rng.normal(size=a.shape)  # garbage between the values
    view = big[..., ::2]
    assert not view.flags.c_contiguous
    return view


def scipy_conv2d(x, w, flip=True):
    """``out[n, k] = sum_c convolve(x[n, c], w[k, c])``, valid; correlate when ``flip`` is False."""
    op = signal.convolve if flip else signal.correlate
    return np.array([[sum(op(x[i, c], w[k, c], mode="valid") for c in range(x.shape[1]))
                      for k in range(w.shape[0])] for i in range(x.shape[0])])  # fmt: skip


def loop_corr2d(x, w):
    """The definition, one multiply-add at a time."""
    n, c, rows, cols = x.shape
    k, _, fr, fc = w.shape
    out = np.zeros((n, k, rows - fr + 1, cols - fc + 1))
    for i in range(n):
        for f in range(k):
            for r in range(rows - fr + 1):
                for s in range(cols - fc + 1):
                    out[i, f, r, s] = np.sum(x[i, :, r : r + fr, s : s + fc] * w[f])
    return out


def loop_max_pool(x, ph, pw):
    n, c, rows, cols = x.shape
    out = np.empty((n, c, rows // ph, cols // pw))
    for r in range(rows // ph):
        for s in range(cols // pw):
            out[:, :, r, s] = x[:, :, r * ph : (r + 1) * ph, s * pw : (s + 1) * pw].max(axis=(2, 3))
    return out


def _compile(mode, inputs, outputs):
    return pytensor.function(inputs, outputs, mode=mode)


def test_im2col_times_the_filters_is_the_correlation_and_col2im_is_its_transpose():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, w = _random_case(rng)
        k, c, fr, fc = w.shape
        cols = conv.im2col(x, fr, fc)
        out = (w.reshape(k, -1) @ cols).reshape(k, x.shape[0], x.shape[2] - fr + 1, -1).transpose(1, 0, 2, 3)
        np.testing.assert_allclose(out, loop_corr2d(x, w), atol=TOL, rtol=TOL)
        np.testing.assert_allclose(out, scipy_conv2d(x, w, flip=False), atol=TOL, rtol=TOL)
        # <im2col(x), g> = <x, col2im(g)>: col2im is the transpose (the gradient) of im2col
        g = rng.normal(size=cols.shape)
        back = conv.col2im(g, x.shape, fr, fc)
        assert np.sum(cols * g) == pytest.approx(np.sum(x * back), rel=1e-10)


@pytest.mark.parametrize("flip", [True, False])
def test_conv2d_forward_and_gradients_match_scipy(request, mode, flip):
    rng = np.random.default_rng(1 + flip)
    # Numba compiles each new graph for tens of seconds: fewer cases there
    # (its operations run the same NumPy code as mode C's).
    n_cases = 2 if "NUMBA" in request.node.name else 4
    for case in range(n_cases):
        x, w = _random_case(rng)
        if case % 2:
            x, w = _non_contiguous(x, rng), _non_contiguous(w, rng)
        # The filters' size is part of the graph (as Theano's filter_shape was).
        # Static shapes, as in a model (mode JAX compiles for fixed sizes).
        X = pt.tensor4("x", dtype="float64", shape=x.shape)
        W = pt.tensor4("w", dtype="float64", shape=w.shape)
        G = pt.dtensor4("g")
        out = conv.conv2d(X, W, filter_flip=flip)
        # The gradients for an arbitrary output gradient G: d(sum(out * G)).
        f = _compile(mode, [X, W, G], [out, *pytensor.grad(pt.sum(out * G), [X, W])])
        expected = scipy_conv2d(x, w, flip)
        g = rng.normal(size=expected.shape)
        got, got_gx, got_gw = f(x, w, g)
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=TOL)
        # Independent gradients: out is linear in x and in w.
        # d/dx: each output's gradient spreads over its patch (a "full" correlation / convolution).
        back = signal.correlate if flip else signal.convolve
        ref_gx = np.array([[sum(back(g[i, k], w[k, c], mode="full") for k in range(w.shape[0]))
                            for c in range(x.shape[1])] for i in range(x.shape[0])])  # fmt: skip
        np.testing.assert_allclose(got_gx, ref_gx, atol=TOL, rtol=TOL)
        # d/dw[k, c] = sum_n correlate(x[n, c], g[n, k]) (flipped back for a convolution).
        ref_gw = np.array([[sum(signal.correlate(x[i, c], g[i, k], mode="valid") for i in range(x.shape[0]))
                            for c in range(x.shape[1])] for k in range(w.shape[0])])  # fmt: skip
        if flip:
            ref_gw = ref_gw[:, :, ::-1, ::-1]
        np.testing.assert_allclose(got_gw, ref_gw, atol=TOL, rtol=TOL)


def test_conv2d_verify_grad(mode):
    rng = np.random.default_rng(3)
    for _ in range(2):
        x, w = _random_case(rng)

        def f(a, b, x_shape=x.shape, w_shape=w.shape):
            return conv.conv2d(pt.specify_shape(a, x_shape), pt.specify_shape(b, w_shape))

        pytensor.gradient.verify_grad(f, [x, w], rng=rng, mode=mode, abs_tol=TOL, rel_tol=TOL)


def test_second_derivatives_through_the_gradient_operations():
    # The gradient operations have gradients of their own (used by e.g. a gradient penalty).
    rng = np.random.default_rng(4)
    x, w = _random_case(rng)
    mode = backend.get_mode("C")

    def grad_of_sum_of_squares(a, b):
        b = pt.specify_shape(b, w.shape)
        gx, gw = pytensor.grad(pt.sum(conv.conv2d(a, b) ** 2), [a, b])
        return pt.sum(gx**2) + pt.sum(gw**2)

    pytensor.gradient.verify_grad(
        grad_of_sum_of_squares, [x, w], rng=rng, mode=mode, abs_tol=1e-3, rel_tol=1e-3
    )


@pytest.mark.parametrize("ws", [(2, 2), (3, 2), (1, 3)])
def test_max_pool_forward_and_gradient(mode, ws):
    rng = np.random.default_rng(5)
    X, G = pt.dtensor4("x"), pt.dtensor4("g")
    out = conv.max_pool_2d(X, ws)
    f = _compile(mode, [X, G], [out, pytensor.grad(pt.sum(out * G), X)])
    for case in range(4):
        shape = (2, 3, int(rng.integers(ws[0], 9)), int(rng.integers(ws[1], 9)))  # partial windows included
        x = rng.normal(size=shape)
        if case % 2:
            x = _non_contiguous(x, rng)
        expected = loop_max_pool(x, *ws)
        g = rng.normal(size=expected.shape)
        got, got_gx = f(x, g)
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=TOL)
        ref_gx = np.zeros(shape)
        for i, k, r, s in np.ndindex(expected.shape):
            window = x[i, k, r * ws[0] : (r + 1) * ws[0], s * ws[1] : (s + 1) * ws[1]]
            a, b = np.unravel_index(np.argmax(window), window.shape)
            ref_gx[i, k, r * ws[0] + a, s * ws[1] + b] = g[i, k, r, s]
        np.testing.assert_allclose(got_gx, ref_gx, atol=TOL, rtol=TOL)
    pytensor.gradient.verify_grad(lambda a: conv.max_pool_2d(a, ws), [rng.normal(size=(2, 2, 6, 6))],
                                  rng=rng, mode=mode, abs_tol=TOL, rel_tol=TOL)  # fmt: skip


def test_max_pool_gives_ties_the_gradient_as_theano():
    x = np.zeros((1, 1, 2, 2))
    X = pt.dtensor4("x")
    gx = pytensor.grad(pt.sum(conv.max_pool_2d(X)), X).eval({X: x}, mode=backend.get_mode("C"))
    np.testing.assert_array_equal(gx, np.ones((1, 1, 2, 2)))


def test_float32_graph_stays_float32():
    X, W = pt.tensor4("x", dtype="float32"), pt.tensor4("w", dtype="float32", shape=(3, 2, 2, 2))
    out = conv.max_pool_2d(conv.conv2d(X, W))
    assert out.dtype == "float32"
    assert all(g.dtype == "float32" for g in pytensor.grad(pt.sum(out), [X, W]))


def test_static_shapes_and_clear_errors():
    X = pt.tensor4("x", shape=(None, 1, 28, 28))
    W = pt.tensor4("w", shape=(20, 1, 5, 5))
    out = conv.conv2d(X, W)
    assert out.type.shape == (None, 20, 24, 24)
    assert conv.conv2d(pt.tensor4("x"), W).type.shape == (None, 20, None, None)
    assert conv.max_pool_2d(out).type.shape == (None, 20, 12, 12)
    with pytest.raises(ValueError, match="channels"):
        conv.conv2d(X, pt.tensor4("w", shape=(20, 3, 5, 5)))
    with pytest.raises(ValueError, match="4-d"):
        conv.conv2d(pt.matrix("x"), W)
    with pytest.raises(ValueError, match="more than the input"):
        conv.conv2d(pt.tensor4("x", shape=(None, 1, 4, 4)), W)
    with pytest.raises(ValueError, match="positive integers"):
        conv.max_pool_2d(X, (0, 2))
    with pytest.raises(ValueError, match="must be known"):
        conv.conv2d(X, pt.tensor4("w"))
    with pytest.raises(NotImplementedError, match="ignore_border"):
        conv.max_pool_2d(X, ignore_border=False)

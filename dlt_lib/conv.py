"""Convolution and max-pooling for images, as PyTensor operations.

Taught in the LeNet chapter (``book/lenet.ipynb``).  Theano had
``theano.tensor.nnet.conv2d`` and ``theano.tensor.signal.pool.pool_2d``;
PyTensor removed both, so this module provides them again, with Theano's
conventions:

- images are 4-d tensors ``(batch, channels, rows, columns)``, filters
  ``(n_filters, channels, filter rows, filter columns)``;
- :func:`conv2d` computes a *valid* convolution (no padding, stride 1) and,
  like Theano's, **flips** the filters: a true convolution, as
  ``scipy.signal.convolve`` computes.  ``filter_flip=False`` gives the
  cross-correlation that PyTorch's ``Conv2d`` and JAX's ``lax.conv`` compute;
- :func:`max_pool_2d` takes the maximum over non-overlapping windows and,
  like the tutorials' ``ignore_border=True``, drops a last partial window.

**How the convolution is computed.**  A convolution is a matrix product in
disguise: copy every ``channels x rows x columns`` patch of the input into a
column of a matrix (:func:`im2col`); then one matrix product with the
filters, each flattened into a row, computes every output at once
(:func:`corr2d`).  Its gradients are matrix products of the same kind
(:func:`corr2d_grad_weights`, :func:`corr2d_grad_inputs`), so the operations
:class:`Corr2d`, :class:`Corr2dGradWeights` and :class:`Corr2dGradInputs`
run NumPy code whose time is spent in the BLAS.  ``benchmarks/README.md``
measured this against an im2col written as a PyTensor graph, PyTensor's
``signal.convolve2d`` and PyTorch.

**Max-pooling** is a loop over windows (:func:`pool_max`,
:func:`pool_max_grad`), compiled once by Numba: as whole-array NumPy or
PyTensor expressions it took 3-5 times longer.

**Modes.**  In mode C (PyTensor's CVM) the operations run the functions
above.  :func:`register_backend`, called by :func:`dlt_lib.backend.get_mode`,
has mode NUMBA compile the same functions into its graph and mode JAX use
``jax.lax.conv_general_dilated`` and a reshape-max instead.
"""

from __future__ import annotations

import types

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.scalar import upcast

# ----------------------------------------------------------------------------
# The kernels, on NumPy arrays.  The convolution's are whole-array NumPy that
# Numba also compiles unchanged (mode NUMBA); the pooling's are loops, always
# compiled by Numba.
# ----------------------------------------------------------------------------


def im2col(x, filter_rows, filter_cols):
    """The patches of ``x`` as columns: ``cols[(c, a, b), (n, i, j)] = x[n, c, i + a, j + b]``.

    Returns an array of shape ``(channels * filter_rows * filter_cols,
    batch * out_rows * out_cols)``.  Row ``(c, a, b)`` is channel ``c`` of
    every image shifted by ``(a, b)``: one slice copy per row.
    """
    n, c, rows, cols_ = x.shape
    out_rows, out_cols = rows - filter_rows + 1, cols_ - filter_cols + 1
    cols = np.empty((c, filter_rows, filter_cols, n, out_rows, out_cols), dtype=x.dtype)
    for ci in range(c):
        for a in range(filter_rows):
            for b in range(filter_cols):
                cols[ci, a, b] = x[:, ci, a : a + out_rows, b : b + out_cols]
    return cols.reshape((c * filter_rows * filter_cols, n * out_rows * out_cols))


def corr2d(x, w):
    """Valid cross-correlation: ``out[n, k, i, j] = sum_{c,a,b} x[n, c, i+a, j+b] w[k, c, a, b]``."""
    n = x.shape[0]
    k, c, filter_rows, filter_cols = w.shape
    out_rows, out_cols = x.shape[2] - filter_rows + 1, x.shape[3] - filter_cols + 1
    w_rows = np.ascontiguousarray(w).reshape((k, c * filter_rows * filter_cols))
    out = np.dot(w_rows, im2col(x, filter_rows, filter_cols))  # (k, n * out_rows * out_cols)
    return np.ascontiguousarray(out.reshape((k, n, out_rows, out_cols)).transpose((1, 0, 2, 3)))


def corr2d_grad_weights(x, gz):
    """Gradient of :func:`corr2d` with respect to ``w``, given ``gz``, the gradient of its output."""
    k, filter_rows = gz.shape[1], x.shape[2] - gz.shape[2] + 1
    c, filter_cols = x.shape[1], x.shape[3] - gz.shape[3] + 1
    gz_rows = np.ascontiguousarray(gz.transpose((1, 0, 2, 3))).reshape((k, -1))  # (k, n*rows*cols)
    gw = np.dot(gz_rows, im2col(x, filter_rows, filter_cols).T)
    return gw.reshape((k, c, filter_rows, filter_cols))


def corr2d_grad_inputs(w, gz, x_like):
    """Gradient of :func:`corr2d` with respect to ``x``: the columns' gradients added back (col2im).

    ``x_like`` is only used for its shape.
    """
    n, k, out_rows, out_cols = gz.shape
    c, filter_rows, filter_cols = w.shape[1], w.shape[2], w.shape[3]
    w_rows = np.ascontiguousarray(w).reshape((k, c * filter_rows * filter_cols))
    gz_rows = np.ascontiguousarray(gz.transpose((1, 0, 2, 3))).reshape((k, n * out_rows * out_cols))
    gcols = np.dot(w_rows.T, gz_rows).reshape((c, filter_rows, filter_cols, n, out_rows, out_cols))
    gx = np.zeros(x_like.shape, dtype=gz.dtype)
    for ci in range(c):
        for a in range(filter_rows):
            for b in range(filter_cols):
                gx[:, ci, a : a + out_rows, b : b + out_cols] += gcols[ci, a, b]
    return gx


def pool_max(x, pool_rows, pool_cols):
    """``out[n, c, r, s]``: the maximum of ``x[n, c]`` over window ``(r, s)``; a partial last window is dropped."""
    n, c = x.shape[0], x.shape[1]
    out_rows, out_cols = x.shape[2] // pool_rows, x.shape[3] // pool_cols
    out = np.empty((n, c, out_rows, out_cols), dtype=x.dtype)
    for i in range(n):
        for k in range(c):
            for r in range(out_rows):
                for s in range(out_cols):
                    top, left = r * pool_rows, s * pool_cols
                    m = x[i, k, top, left]
                    for a in range(pool_rows):
                        for b in range(pool_cols):
                            m = max(m, x[i, k, top + a, left + b])
                    out[i, k, r, s] = m
    return out


def pool_max_grad(x, out, gz):
    """Gradient of :func:`pool_max`: each window's ``gz`` goes where ``x`` equals the maximum.

    Every position that ties for a window's maximum receives it, as in Theano.
    """
    n, c, out_rows, out_cols = out.shape
    pool_rows, pool_cols = x.shape[2] // out_rows, x.shape[3] // out_cols
    gx = np.zeros(x.shape, dtype=gz.dtype)
    for i in range(n):
        for k in range(c):
            for r in range(out_rows):
                for s in range(out_cols):
                    top, left = r * pool_rows, s * pool_cols
                    m, g = out[i, k, r, s], gz[i, k, r, s]
                    for a in range(pool_rows):
                        for b in range(pool_cols):
                            if x[i, k, top + a, left + b] == m:
                                gx[i, k, top + a, left + b] = g
    return gx


_compiled = {}


def _numba(fn, **rebind):
    """``fn`` compiled by Numba (once, cached on disk), with global names rebound to compiled versions."""
    if fn.__name__ not in _compiled:
        import numba

        code = fn if not rebind else types.FunctionType(fn.__code__, dict(globals(), **rebind), fn.__name__)
        _compiled[fn.__name__] = numba.njit(cache=True)(code)
    return _compiled[fn.__name__]


# ----------------------------------------------------------------------------
# The operations
# ----------------------------------------------------------------------------
def _as_4d(x, name):
    x = pt.as_tensor_variable(x)
    if x.ndim != 4:
        raise ValueError(
            f"{name} must be a 4-d tensor (batch, channels, rows, columns); got a {x.ndim}-d "
            f"variable {x}. Reshape rows of pixels first, e.g. x.reshape((-1, 1, 28, 28))."
        )
    return x


def _valid(size, filter_size):
    return None if size is None or filter_size is None else size - filter_size + 1


class Corr2d(Op):
    """:func:`corr2d` as a PyTensor operation; its gradient is the two operations below."""

    __props__ = ()

    def make_node(self, x, w):
        x, w = _as_4d(x, "The input"), _as_4d(w, "The filters")
        (n, _, rows, cols), (k, _, fr, fc) = x.type.shape, w.type.shape
        out = pt.tensor(dtype=upcast(x.dtype, w.dtype), shape=(n, k, _valid(rows, fr), _valid(cols, fc)))
        return Apply(self, [x, w], [out])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = corr2d(*inputs).astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, fgraph, node, shapes):
        (n, _, rows, cols), (k, _, fr, fc) = shapes
        return [(n, k, rows - fr + 1, cols - fc + 1)]

    def pullback(self, inputs, outputs, output_grads):
        x, w = inputs
        (gz,) = output_grads
        return [Corr2dGradInputs()(w, gz, x), Corr2dGradWeights()(x, gz)]


class Corr2dGradWeights(Op):
    """:func:`corr2d_grad_weights`: ``dw`` from the input ``x`` and the output gradient ``gz``."""

    __props__ = ()

    def make_node(self, x, gz):
        x, gz = _as_4d(x, "x"), _as_4d(gz, "gz")
        (_, c, rows, cols), (_, k, out_rows, out_cols) = x.type.shape, gz.type.shape
        shape = (k, c, _valid(rows, out_rows), _valid(cols, out_cols))
        return Apply(self, [x, gz], [pt.tensor(dtype=upcast(x.dtype, gz.dtype), shape=shape)])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = corr2d_grad_weights(*inputs).astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, fgraph, node, shapes):
        (_, c, rows, cols), (_, k, out_rows, out_cols) = shapes
        return [(k, c, rows - out_rows + 1, cols - out_cols + 1)]

    def pullback(self, inputs, outputs, output_grads):
        # dw is linear in x and in gz: its gradients are the other two operations.
        x, gz = inputs
        (g_w,) = output_grads
        return [Corr2dGradInputs()(g_w, gz, x), Corr2d()(x, g_w)]


class Corr2dGradInputs(Op):
    """:func:`corr2d_grad_inputs`: ``dx`` from the filters ``w`` and the output gradient ``gz``.

    The third input, ``x``, is there for its shape only.
    """

    __props__ = ()

    def make_node(self, w, gz, x):
        w, gz, x = _as_4d(w, "w"), _as_4d(gz, "gz"), _as_4d(x, "x")
        return Apply(self, [w, gz, x], [pt.tensor(dtype=upcast(w.dtype, gz.dtype), shape=x.type.shape)])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = corr2d_grad_inputs(*inputs).astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[2]]

    def connection_pattern(self, node):
        return [[True], [True], [False]]

    def pullback(self, inputs, outputs, output_grads):
        w, gz, _ = inputs
        (g_x,) = output_grads
        return [Corr2dGradWeights()(g_x, gz), Corr2d()(g_x, w), disconnected_type()]


class MaxPool2d(Op):
    """:func:`pool_max` over ``(pool_rows, pool_cols)`` windows, as a PyTensor operation."""

    __props__ = ("pool_rows", "pool_cols")

    def __init__(self, pool_rows: int, pool_cols: int):
        self.pool_rows, self.pool_cols = int(pool_rows), int(pool_cols)

    def make_node(self, x):
        x = _as_4d(x, "The input")
        n, c, rows, cols = x.type.shape
        shape = (
            n,
            c,
            None if rows is None else rows // self.pool_rows,
            None if cols is None else cols // self.pool_cols,
        )
        return Apply(self, [x], [pt.tensor(dtype=x.dtype, shape=shape)])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = _numba(pool_max)(inputs[0], self.pool_rows, self.pool_cols)

    def infer_shape(self, fgraph, node, shapes):
        n, c, rows, cols = shapes[0]
        return [(n, c, rows // self.pool_rows, cols // self.pool_cols)]

    def pullback(self, inputs, outputs, output_grads):
        return [MaxPool2dGrad()(inputs[0], outputs[0], output_grads[0])]


class MaxPool2dGrad(Op):
    """:func:`pool_max_grad`: ``dx`` of :class:`MaxPool2d` from ``x``, its output and the output gradient."""

    __props__ = ()

    def make_node(self, x, out, gz):
        x, out, gz = _as_4d(x, "x"), _as_4d(out, "out"), _as_4d(gz, "gz")
        return Apply(self, [x, out, gz], [pt.tensor(dtype=gz.dtype, shape=x.type.shape)])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = _numba(pool_max_grad)(*inputs)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]


# ----------------------------------------------------------------------------
# What the models call
# ----------------------------------------------------------------------------
def conv2d(input, filters, *, filter_flip: bool = True, input_shape=None, filter_shape=None):
    """Valid 2-d convolution of a batch of multi-channel images, as Theano's ``conv2d``.

    Parameters
    ----------
    input : 4-d tensor ``(batch, channels, rows, columns)``
    filters : 4-d tensor ``(n_filters, channels, filter_rows, filter_columns)``
    filter_flip : bool
        ``True`` (Theano's default, and the tutorials'): flip each filter
        before sliding it, a convolution in the mathematical sense.
        ``False``: the cross-correlation that PyTorch and JAX compute.
        A learned filter just comes out flipped; nothing else changes.
    input_shape, filter_shape : tuples, optional
        Known shapes (``None`` for an unknown size), checked against each other.

    Returns
    -------
    ``(batch, n_filters, rows - filter_rows + 1, columns - filter_columns + 1)``
    """
    input, filters = _as_4d(input, "The input"), _as_4d(filters, "The filters")
    if input_shape is not None:
        input = pt.specify_shape(input, tuple(input_shape))
    if filter_shape is not None:
        filters = pt.specify_shape(filters, tuple(filter_shape))
    c_in, c_filters = input.type.shape[1], filters.type.shape[1]
    if c_in is not None and c_filters is not None and c_in != c_filters:
        raise ValueError(
            f"The input has {c_in} channels but the filters expect {c_filters} "
            "(filters are (n_filters, channels, rows, columns))."
        )
    for axis, name in ((2, "rows"), (3, "columns")):
        size, filter_size = input.type.shape[axis], filters.type.shape[axis]
        if size is not None and filter_size is not None and filter_size > size:
            raise ValueError(f"The filters have {filter_size} {name}, more than the input's {size}.")
    if filter_flip:
        filters = filters[:, :, ::-1, ::-1]
    return Corr2d()(input, filters)


def max_pool_2d(input, ws=(2, 2), *, ignore_border: bool = True):
    """Maximum over non-overlapping ``ws[0] x ws[1]`` windows of the last two axes (Theano's ``pool_2d``).

    As the tutorials' ``ignore_border=True``: rows and columns left over when
    the size is not a multiple of the window are dropped.  The gradient flows
    to the position of each window's maximum (to every position that ties for
    it, as in Theano).
    """
    if not ignore_border:
        raise NotImplementedError("Only ignore_border=True (the tutorials' setting) is implemented.")
    ws = tuple(ws)
    if len(ws) != 2 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in ws):
        raise ValueError(f"The pooling window must be two positive integers (rows, columns); got {ws}.")
    return MaxPool2d(*ws)(_as_4d(input, "The input"))


# ----------------------------------------------------------------------------
# Modes NUMBA and JAX
# ----------------------------------------------------------------------------
_registered = set()


def register_backend(mode: str) -> None:
    """Teach PyTensor's Numba or JAX back end this module's operations (once per mode).

    :func:`dlt_lib.backend.get_mode` calls it; call it yourself only if you
    compile with a PyTensor mode directly (``pytensor.function(..., mode="JAX")``).
    Without it, Numba runs the operations through Python (with a warning)
    and JAX refuses the graph.
    """
    mode = str(mode).upper()
    if mode in _registered or mode not in ("NUMBA", "JAX"):
        return
    _register_numba() if mode == "NUMBA" else _register_jax()
    _registered.add(mode)


def _register_numba():
    import warnings

    from pytensor.link.numba.dispatch.basic import generate_fallback_impl, numba_funcify

    def through_python(op, node=None, **kwargs):
        # Numba calls the operation's perform (NumPy and the BLAS, or the
        # pooling loops compiled by Numba) from its compiled graph, which
        # costs microseconds against milliseconds of work per call.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Numba will use object mode")
            return generate_fallback_impl(op, node, **kwargs)

    for op_type in (Corr2d, Corr2dGradWeights, Corr2dGradInputs, MaxPool2d, MaxPool2dGrad):
        numba_funcify.register(op_type)(through_python)


def _register_jax():
    import jax
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify

    numbers = ("NCHW", "OIHW", "NCHW")

    def corr(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=numbers)

    def grad_weights(x, gz):
        shape = (gz.shape[1], x.shape[1], x.shape[2] - gz.shape[2] + 1, x.shape[3] - gz.shape[3] + 1)
        return jax.vjp(lambda w: corr(x, w), jnp.zeros(shape, gz.dtype))[1](gz)[0]

    def grad_inputs(w, gz, x):
        return jax.vjp(lambda x_: corr(x_, w), x)[1](gz)[0]

    def windows(x, out_shape):
        n, c, out_rows, out_cols = out_shape
        rows, cols = x.shape[2] // out_rows, x.shape[3] // out_cols
        x = x[:, :, : out_rows * rows, : out_cols * cols]
        return x.reshape((n, c, out_rows, rows, out_cols, cols))

    def pool_grad(x, out, gz):
        # Every position that ties for the maximum gets the gradient, as pool_max_grad.
        hit = windows(x, out.shape) == out[:, :, :, None, :, None]
        gx = jnp.where(hit, gz[:, :, :, None, :, None], 0)
        gx = gx.reshape((out.shape[0], out.shape[1], gx.shape[2] * gx.shape[3], gx.shape[4] * gx.shape[5]))
        border = ((0, 0), (0, 0), (0, x.shape[2] - gx.shape[2]), (0, x.shape[3] - gx.shape[3]))
        return jnp.pad(gx, border)

    jax_funcify.register(Corr2d)(lambda op, **kwargs: corr)
    jax_funcify.register(Corr2dGradWeights)(lambda op, **kwargs: grad_weights)
    jax_funcify.register(Corr2dGradInputs)(lambda op, **kwargs: grad_inputs)
    jax_funcify.register(MaxPool2dGrad)(lambda op, **kwargs: pool_grad)

    @jax_funcify.register(MaxPool2d)
    def _max_pool(op, **kwargs):
        def max_pool(x):
            n, c = x.shape[:2]
            out_shape = (n, c, x.shape[2] // op.pool_rows, x.shape[3] // op.pool_cols)
            return windows(x, out_shape).max(axis=(3, 5))

        return max_pool

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
filters, each flattened into a row, computes every output at once.  That is
what :func:`conv2d` builds: an :class:`Im2Col` operation (NumPy) and
PyTensor's own ``dot`` (the BLAS in mode C).  Differentiating a product is
PyTensor's business; the one new gradient is :class:`Col2Im`, which adds the
columns' gradients back into image positions.  The same patch matrix serves
the forward product and the filters' gradient, so it is built once per step.
``benchmarks/README.md`` measured this against an im2col written with
PyTensor's own operations, PyTensor's ``signal.convolve2d`` and PyTorch.

**Max-pooling** is a loop over windows (:func:`pool_max`,
:func:`pool_max_grad`), compiled once by Numba: as whole-array NumPy or
PyTensor expressions it took 3-5 times longer.

**Modes.**  In mode C (PyTensor's CVM) the operations run the functions
above.  :func:`register_backend`, called by :func:`dlt_lib.backend.get_mode`,
has mode NUMBA call them from its compiled graph and gives mode JAX
equivalents (``jax.lax.conv_general_dilated_patches``, a reshape and max).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

# ----------------------------------------------------------------------------
# The kernels, on NumPy arrays.  im2col and col2im copy whole slices (one per
# filter position); the pooling kernels are loops, compiled by Numba.
# ----------------------------------------------------------------------------


def im2col(x, filter_rows, filter_cols):
    """The patches of ``x`` as columns: ``cols[(c, a, b), (n, i, j)] = x[n, c, i + a, j + b]``.

    Returns an array of shape ``(channels * filter_rows * filter_cols,
    batch * out_rows * out_cols)``.  Row ``(c, a, b)`` is channel ``c`` of
    every image shifted by ``(a, b)``: one slice copy per row.
    Taught in ``book/lenet.ipynb``.
    """
    n, c, rows, cols_ = x.shape
    out_rows, out_cols = rows - filter_rows + 1, cols_ - filter_cols + 1
    cols = np.empty((c, filter_rows, filter_cols, n, out_rows, out_cols), dtype=x.dtype)
    for ci in range(c):
        for a in range(filter_rows):
            for b in range(filter_cols):
                cols[ci, a, b] = x[:, ci, a : a + out_rows, b : b + out_cols]
    return cols.reshape((c * filter_rows * filter_cols, n * out_rows * out_cols))


def col2im(cols, x_shape, filter_rows, filter_cols):
    """The inverse bookkeeping of :func:`im2col`: add each column entry back at its image position.

    This is the gradient of :func:`im2col`: an input pixel that appears in
    several patches receives the sum of their gradients.
    Taught in ``book/lenet.ipynb``.
    """
    n, c, rows, cols_ = x_shape
    out_rows, out_cols = rows - filter_rows + 1, cols_ - filter_cols + 1
    patches = cols.reshape((c, filter_rows, filter_cols, n, out_rows, out_cols))
    x = np.zeros((n, c, rows, cols_), dtype=cols.dtype)
    for ci in range(c):
        for a in range(filter_rows):
            for b in range(filter_cols):
                x[:, ci, a : a + out_rows, b : b + out_cols] += patches[ci, a, b]
    return x


def pool_max(x, pool_rows, pool_cols):
    """``out[n, c, r, s]``: the maximum of ``x[n, c]`` over window ``(r, s)``; a partial last window is dropped.

    Taught in ``book/lenet.ipynb``.
    """
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


def pool_max_grad(x, out, gz, pool_rows, pool_cols):
    """Gradient of :func:`pool_max`: each window's ``gz`` goes where ``x`` equals the maximum.

    Every position that ties for a window's maximum receives it, as in Theano.
    Taught in ``book/lenet.ipynb``.
    """
    n, c, out_rows, out_cols = out.shape
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


def _numba(fn):
    """``fn`` compiled by Numba, once (and cached on disk for the next process)."""
    if fn.__name__ not in _compiled:
        import numba

        _compiled[fn.__name__] = numba.njit(cache=True)(fn)
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


class Im2Col(Op):
    """:func:`im2col` as a PyTensor operation, for filters of ``filter_rows x filter_cols``.

    Taught in ``book/lenet.ipynb``.
    """

    __props__ = ("filter_rows", "filter_cols")

    def __init__(self, filter_rows: int, filter_cols: int):
        self.filter_rows, self.filter_cols = int(filter_rows), int(filter_cols)

    def make_node(self, x):
        x = _as_4d(x, "The input")
        n, c, rows, cols = x.type.shape
        out_rows, out_cols = _valid(rows, self.filter_rows), _valid(cols, self.filter_cols)
        known = None not in (n, out_rows, out_cols)
        shape = (
            None if c is None else c * self.filter_rows * self.filter_cols,
            n * out_rows * out_cols if known else None,
        )
        return Apply(self, [x], [pt.tensor(dtype=x.dtype, shape=shape)])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = im2col(inputs[0], self.filter_rows, self.filter_cols)

    def infer_shape(self, fgraph, node, shapes):
        n, c, rows, cols = shapes[0]
        out_rows, out_cols = rows - self.filter_rows + 1, cols - self.filter_cols + 1
        return [(c * self.filter_rows * self.filter_cols, n * out_rows * out_cols)]

    def pullback(self, inputs, outputs, output_grads):
        return [Col2Im(self.filter_rows, self.filter_cols)(output_grads[0], inputs[0])]


class Col2Im(Op):
    """:func:`col2im`, the gradient of :class:`Im2Col`; its second input, ``x``, gives the shape.

    Taught in ``book/lenet.ipynb``.
    """

    __props__ = ("filter_rows", "filter_cols")

    def __init__(self, filter_rows: int, filter_cols: int):
        self.filter_rows, self.filter_cols = int(filter_rows), int(filter_cols)

    def make_node(self, cols, x):
        cols, x = pt.as_tensor_variable(cols), _as_4d(x, "x")
        if cols.ndim != 2:
            raise ValueError(f"Col2Im takes a matrix of columns; got a {cols.ndim}-d variable.")
        return Apply(self, [cols, x], [pt.tensor(dtype=cols.dtype, shape=x.type.shape)])

    def perform(self, node, inputs, outputs):
        cols, x = inputs
        outputs[0][0] = col2im(cols, x.shape, self.filter_rows, self.filter_cols)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[1]]

    def connection_pattern(self, node):
        return [[True], [False]]

    def pullback(self, inputs, outputs, output_grads):
        # col2im is linear and the transpose of im2col: its gradient is im2col.
        return [Im2Col(self.filter_rows, self.filter_cols)(output_grads[0]), disconnected_type()]


class MaxPool2d(Op):
    """:func:`pool_max` over ``(pool_rows, pool_cols)`` windows, as a PyTensor operation.

    Taught in ``book/lenet.ipynb``.
    """

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
        return [MaxPool2dGrad(self.pool_rows, self.pool_cols)(inputs[0], outputs[0], output_grads[0])]


class MaxPool2dGrad(Op):
    """:func:`pool_max_grad`: ``dx`` of :class:`MaxPool2d` from ``x``, its output and the output gradient.

    Taught in ``book/lenet.ipynb``.
    """

    __props__ = ("pool_rows", "pool_cols")

    def __init__(self, pool_rows: int, pool_cols: int):
        self.pool_rows, self.pool_cols = int(pool_rows), int(pool_cols)

    def make_node(self, x, out, gz):
        x, out, gz = _as_4d(x, "x"), _as_4d(out, "out"), _as_4d(gz, "gz")
        return Apply(self, [x, out, gz], [pt.tensor(dtype=gz.dtype, shape=x.type.shape)])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = _numba(pool_max_grad)(*inputs, self.pool_rows, self.pool_cols)

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
    Taught in ``book/lenet.ipynb``.
    """
    input, filters = _as_4d(input, "The input"), _as_4d(filters, "The filters")
    input, filters = _with_shape(input, input_shape), _with_shape(filters, filter_shape)
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
    n_filters, channels, filter_rows, filter_cols = filters.type.shape
    if filter_rows is None or filter_cols is None:
        raise ValueError(
            "The filters' rows and columns must be known when the graph is built: give a filter "
            "variable with a static shape, or filter_shape=(n_filters, channels, rows, columns)."
        )
    if filter_flip:
        filters = filters[:, :, ::-1, ::-1]
    # Sizes as numbers when they are known, so that the reshapes below have
    # constant shapes (JAX compiles only those); symbolic otherwise.
    rows, cols = (
        s if s is not None else input.shape[i]
        for i, s in ((2, input.type.shape[2]), (3, input.type.shape[3]))
    )
    k = n_filters if n_filters is not None else filters.shape[0]
    out_rows, out_cols = rows - filter_rows + 1, cols - filter_cols + 1
    # One row per filter, one column per (image, position): a single matrix product.
    filter_matrix = filters.reshape((k, -1))
    out = pt.dot(filter_matrix, Im2Col(filter_rows, filter_cols)(input))
    return out.reshape((k, -1, out_rows, out_cols)).dimshuffle(1, 0, 2, 3)


def _with_shape(x, shape):
    """``x`` with the sizes in ``shape`` (None: unknown) as its static shape.

    No new operation when ``x`` already has them: each kind of operation in a
    graph is one more module for mode C to compile.
    """
    if shape is None:
        return x
    shape = tuple(None if s is None else int(s) for s in shape)
    if len(shape) != x.ndim:
        raise ValueError(f"The shape {shape} has {len(shape)} entries; the variable has {x.ndim} dimensions.")
    for known, given in zip(x.type.shape, shape):
        if known is not None and given is not None and known != given:
            raise ValueError(f"The variable has shape {x.type.shape}; the shape given is {shape}.")
    if all(given is None or known == given for known, given in zip(x.type.shape, shape)):
        return x
    return pt.specify_shape(x, shape)


def max_pool_2d(input, ws=(2, 2), *, ignore_border: bool = True):
    """Maximum over non-overlapping ``ws[0] x ws[1]`` windows of the last two axes (Theano's ``pool_2d``).

    As the tutorials' ``ignore_border=True``: rows and columns left over when
    the size is not a multiple of the window are dropped.  The gradient flows
    to the position of each window's maximum (to every position that ties for
    it, as in Theano).
    Taught in ``book/lenet.ipynb``.
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
    Taught in ``book/lenet.ipynb``.
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

    for op_type in (Im2Col, Col2Im, MaxPool2d, MaxPool2dGrad):
        numba_funcify.register(op_type)(through_python)


def _register_jax():
    import jax
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify

    def patches(x, filter_rows, filter_cols):
        # (n, c * rows * cols, out_rows, out_cols), features ordered (c, a, b) as im2col's rows
        p = jax.lax.conv_general_dilated_patches(x, (filter_rows, filter_cols), (1, 1), "VALID")
        return p.transpose((1, 0, 2, 3)).reshape((p.shape[1], -1))

    @jax_funcify.register(Im2Col)
    def _im2col(op, **kwargs):
        return lambda x: patches(x, op.filter_rows, op.filter_cols)

    @jax_funcify.register(Col2Im)
    def _col2im(op, **kwargs):
        def col2im_jax(cols, x):
            return jax.vjp(lambda x_: patches(x_, op.filter_rows, op.filter_cols), x)[1](cols)[0]

        return col2im_jax

    def windows(x, rows, cols):
        n, c, out_rows, out_cols = x.shape[0], x.shape[1], x.shape[2] // rows, x.shape[3] // cols
        x = x[:, :, : out_rows * rows, : out_cols * cols]  # drop a partial last window
        return x.reshape((n, c, out_rows, rows, out_cols, cols))

    def pool_grad(x, out, gz, rows, cols):
        # Every position that ties for the maximum gets the gradient, as pool_max_grad.
        hit = windows(x, rows, cols) == out[:, :, :, None, :, None]
        gx = jnp.where(hit, gz[:, :, :, None, :, None], 0)
        gx = gx.reshape((out.shape[0], out.shape[1], gx.shape[2] * gx.shape[3], gx.shape[4] * gx.shape[5]))
        border = ((0, 0), (0, 0), (0, x.shape[2] - gx.shape[2]), (0, x.shape[3] - gx.shape[3]))
        return jnp.pad(gx, border)

    @jax_funcify.register(MaxPool2dGrad)
    def _max_pool_grad(op, **kwargs):
        return lambda x, out, gz: pool_grad(x, out, gz, op.pool_rows, op.pool_cols)

    @jax_funcify.register(MaxPool2d)
    def _max_pool(op, **kwargs):
        return lambda x: windows(x, op.pool_rows, op.pool_cols).max(axis=(3, 5))

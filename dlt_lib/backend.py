"""Choose how PyTensor compiles our graphs, and say which choice is in force.

Theano compiled every graph to C. Its successor PyTensor has several
*modes*, each a different back end for the same symbolic graph:

=========  ==============================================================
``"C"``    PyTensor's ``CVM`` mode: each operation is C code, linked
           against a BLAS for the matrix products, run by a small C
           virtual machine.  (PyTensor's own mode called ``"C"`` compiles
           the *whole* graph into one C module instead; it compiles our
           graphs too, but each new graph is then a new module to build,
           where ``CVM`` reuses the cached code of every operation it has
           seen.)  Three measured speed-ups are added: see :func:`get_mode`.
``"NUMBA"`` every operation compiled by Numba (LLVM).  PyTensor's default.
``"JAX"``  the graph is handed to JAX/XLA.  The GPU path (e.g. on Colab).
=========  ==============================================================

Everything in ``dlt_lib`` compiles with :func:`get_mode`, so one call to
:func:`set_mode` (or the ``DLT_MODE`` environment variable) switches a whole
chapter.  ``floatX`` is ``float32``, as on a GPU.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlt_lib.validation import InvalidParameterError, check_option

MODES = ("C", "NUMBA", "JAX")
DEFAULT_MODE = "C"

# Where Debian/Ubuntu (libopenblas-dev) and conda put OpenBLAS.
_BLAS_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    os.path.join(sys.prefix, "lib"),
)


def find_blas_ldflags() -> str:
    """Return linker flags for an OpenBLAS on this machine, or ``""``.

    PyTensor's C back end calls a BLAS (``sgemm``) for matrix products.  A
    plain ``pip install`` leaves it without one and it falls back to a NumPy
    C-API loop that is 2-4x slower, so we look for ``libopenblas`` ourselves.
    See ``book/backends.ipynb``.
    """
    for directory in _BLAS_CANDIDATES:
        if (Path(directory) / "libopenblas.so").exists():
            # No commas here: PYTENSOR_FLAGS is a comma-separated list.
            return f"-L{directory} -Xlinker -rpath -Xlinker {directory} -lopenblas"
    return ""


# PyTensor compiles every C module with debug information (g++ -g), which
# only someone stepping through the generated C in a debugger uses.  Without
# it (-g0, which wins over the earlier -g) g++ writes the same machine code
# faster: 36 s instead of 42 s for 30 of the book's modules, compiled one
# after the other on the 2-core machine.  A cold build of the book compiles
# about 160.
NO_DEBUG_INFO = "-g0"


def _configure_before_import() -> None:
    # PyTensor reads PYTENSOR_FLAGS once, when it is first imported; setting
    # the BLAS flags there also silences its "could not link to a BLAS"
    # warning.  A user's own flags always win.
    if "pytensor" in sys.modules:
        return
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    extra = []
    if "floatX" not in flags:
        extra.append("floatX=float32")
    if "blas__ldflags" not in flags and "blas.ldflags" not in flags:
        ldflags = find_blas_ldflags()
        if ldflags:
            extra.append(f"blas__ldflags={ldflags}")
    if "cxxflags" not in flags:
        extra.append(f"gcc__cxxflags={NO_DEBUG_INFO}")
    if extra:
        os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, *extra]))


_configure_before_import()

import pytensor  # noqa: E402  (must come after the environment is set)
import pytensor.tensor as pt  # noqa: E402
from pytensor.compile.mode import Mode  # noqa: E402
from pytensor.compile.mode import get_mode as _pytensor_get_mode  # noqa: E402
from pytensor.graph.rewriting.basic import in2out, node_rewriter  # noqa: E402
from pytensor.scalar.basic import Tanh  # noqa: E402
from pytensor.tensor.elemwise import Elemwise  # noqa: E402

# When PyTensor was imported before dlt_lib, the flags above came too late: set the values directly
# (unless the user chose them).
if pytensor.config.floatX != "float32" and "floatX" not in os.environ.get("PYTENSOR_FLAGS", ""):
    pytensor.config.floatX = "float32"
if not pytensor.config.blas__ldflags:
    pytensor.config.blas__ldflags = find_blas_ldflags()
if not pytensor.config.gcc__cxxflags:
    pytensor.config.gcc__cxxflags = NO_DEBUG_INFO

_current_mode = None


def normalise_mode(name: str) -> str:
    """'c', 'cvm', 'Numba', ... -> 'C', 'NUMBA', 'JAX'; a clear error for anything else.

    Taught in ``book/backends.ipynb``.
    """
    key = str(name).strip().upper()
    if key == "CVM":
        key = "C"
    if key not in MODES:  # the message names the value as it was given
        hint = "Set it with dlt_lib.backend.set_mode(...) or the DLT_MODE environment variable."
        check_option(name, "the PyTensor mode", MODES, hint=hint)
    return key


def set_mode(name: str) -> str:
    """Make ``name`` ("C", "NUMBA" or "JAX") the mode every dlt_lib function uses.

    Returns the normalised name.  JAX mode needs ``jax`` installed; we check
    that here so the error comes now, not halfway through compiling.
    Taught in ``book/backends.ipynb``.
    """
    global _current_mode
    key = normalise_mode(name)
    if key == "JAX":
        try:
            import jax  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise ImportError(
                "Mode 'JAX' needs the jax package: pip install jax jaxlib "
                "(on a CUDA machine: pip install 'jax[cuda12]')."
            ) from exc
    _current_mode = key
    return key


def environment_mode() -> str:
    """The mode ``DLT_MODE`` names (``C`` when unset), normalised; an error that names the variable otherwise.

    Taught in ``book/backends.ipynb``.
    """
    name = os.environ.get("DLT_MODE", DEFAULT_MODE)
    try:
        return normalise_mode(name)
    except InvalidParameterError:
        raise InvalidParameterError(
            f"DLT_MODE={name!r} is not a PyTensor mode: set it to C, NUMBA or JAX (any case), or unset it."
        ) from None


def mode_name() -> str:
    """The name of the mode in force ("C", "NUMBA" or "JAX").  Taught in ``book/backends.ipynb``."""
    if _current_mode is None:
        set_mode(environment_mode())
    return _current_mode


@node_rewriter([Elemwise])
def tanh_via_sigmoid(fgraph, node):
    """Rewrite float32 ``tanh(x)`` as ``2 sigmoid(2x) - 1`` (the same function).

    The C back end calls the C library's scalar ``tanhf``, one element at a
    time, which is about 20 times slower than NumPy's vectorised tanh; its
    sigmoid is much cheaper.  It takes about a fifth off the MLP's training
    epoch at batch 20 (``benchmarks/README.md``).  The result differs from
    tanh by float32 rounding only (at most ~2e-7, tested).
    """
    if isinstance(node.op.scalar_op, Tanh) and node.outputs[0].dtype == "float32":
        x = node.inputs[0]
        # Constants of x's rank, so that no broadcasting step is left for every call.
        one, two = (np.full((1,) * x.ndim, v, dtype="float32") for v in (1, 2))
        return [two * pt.sigmoid(two * x) - one]
    return None


_c_mode = None


def _make_c_mode() -> Mode:
    mode = _pytensor_get_mode("CVM")
    # allow_gc=False: keep each intermediate array between calls and write
    # into it again, instead of freeing it and allocating a new one at every
    # call.  A training step at batch 20 is ~30 small operations, so this
    # saves ~5% (more memory held: the intermediates of one call).
    mode = mode.clone(link_kwargs=dict(allow_gc=False))
    # Before PyTensor fuses elementwise operations (position 49), so that the
    # rewritten tanh is fused with its neighbours.
    mode = mode.register((in2out(tanh_via_sigmoid), 48.5))
    # PyTensor rewrites log(sum(exp(x))) into max(x) + log(sum(exp(x - max(x)))) so
    # that it cannot overflow.  dlt_lib.models.log_softmax already subtracts the
    # maximum, so the rewrite only adds a second max and its bookkeeping: three
    # of the ~30 small operations of a logistic-regression step, 8% of a batch-20
    # epoch.  Without it, a log(sum(exp(x))) you write yourself is computed as
    # written: subtract the maximum first, as log_softmax does.
    return mode.excluding("local_log_sum_exp")


def get_mode(name: str | None = None) -> Mode:
    """The PyTensor ``Mode`` object to pass to ``pytensor.function(mode=...)``.

    Mode ``"C"`` is PyTensor's ``CVM`` with three changes measured in
    ``benchmarks/``: intermediate arrays are kept between calls
    (``allow_gc=False``), float32 ``tanh`` is computed through the sigmoid
    (:func:`tanh_via_sigmoid`), and the rewrite that stabilises
    ``log(sum(exp(x)))`` is off, because our log-softmax is already stable.
    Numba and JAX are PyTensor's own modes.
    Taught in ``book/backends.ipynb``.
    """
    global _c_mode
    key = normalise_mode(name) if name is not None else mode_name()
    if key == "C":
        if _c_mode is None:
            _c_mode = _make_c_mode()
        return _c_mode
    if key in ("NUMBA", "JAX"):
        # dlt_lib's own operations (convolution, pooling) need a translation
        # for these back ends; importing them costs 1-2 s, so only now.
        from dlt_lib import conv

        conv.register_backend(key)
    if key == "JAX":
        import warnings

        # JAX runs in 32-bit by default and warns whenever a graph asks for a 64-bit
        # type (PyTensor's int64 indices, the float64 divisor of a mean); our data is
        # float32 and int32 anyway, so the truncation is what we want.
        warnings.filterwarnings("ignore", message="Explicitly requested dtype (float64|int64)")
    return _pytensor_get_mode(key)


def place_on_device(shared_variables, name: str | None = None) -> None:
    """In JAX mode, move the values of ``shared_variables`` into JAX's own buffers, once.

    A shared variable holding a NumPy array is converted to a JAX array at
    *every* call of a JAX-mode function: the whole training set copied (to the
    GPU, on a GPU) for each minibatch.  This is the seed's advice about shared
    variables on a GPU, made explicit.  In the C and Numba modes it does nothing.
    The JAX array is always a copy: on a CPU, ``jax.device_put`` may use a
    (64-byte aligned) NumPy array in place, and a buffer refilled later (the
    trainer's chunks) would then change under it.
    Taught in ``book/backends.ipynb``.
    """
    key = normalise_mode(name) if name is not None else mode_name()
    if key != "JAX":
        return
    import jax.numpy as jnp

    for var in shared_variables:
        var.container.storage[0] = jnp.array(var.get_value(borrow=True), copy=True)


@dataclass(frozen=True)
class BackendInfo:
    """What :func:`describe` returns: mode, device, float type and BLAS.  Taught in ``book/backends.ipynb``."""

    mode: str
    device: str
    floatX: str
    blas: str

    def __str__(self) -> str:
        # One short line for the page: the BLAS by library name ("openblas"),
        # not the linker flags (``blas`` keeps those).
        libraries = re.findall(r"(?:^|\s)-l(\S+)", self.blas)
        blas = ", ".join(libraries) if libraries else self.blas
        return f"PyTensor {pytensor.__version__}, mode {self.mode} on {self.device}, floatX={self.floatX}, BLAS: {blas}"


def describe(name: str | None = None) -> BackendInfo:
    """Which mode, device, float type and BLAS a compiled function will use.

    Taught in ``book/backends.ipynb``.
    """
    key = normalise_mode(name) if name is not None else mode_name()
    device = "cpu"
    if key == "JAX":
        import jax

        dev = jax.devices()[0]
        device = f"{dev.platform}:{dev.id} ({getattr(dev, 'device_kind', dev.platform)})"
    if key == "C":
        blas = pytensor.config.blas__ldflags or "none (slow NumPy C-API fallback)"
    elif key == "NUMBA":
        blas = "NumPy's (called from Numba)"
    else:
        blas = "XLA's own"
    return BackendInfo(mode=key, device=device, floatX=pytensor.config.floatX, blas=blas)

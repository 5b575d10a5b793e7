#!/usr/bin/env python
"""Speed of one LeNet training epoch: dlt_lib's convolution against the alternatives, PyTorch and JAX.

The tutorials' LeNet (``convolutional_mlp.py``: 20 and 50 filters of 5 x 5,
2 x 2 max-pooling, 500 tanh units, softmax; SGD with learning rate 0.1 at
batch 500) trained for one epoch on 50,000 MNIST-shaped examples, timed for

- ``dlt_lib``'s trainer (``dlt_lib.training.compile_updates`` on
  ``dlt_lib.models.LeNet``), in modes C, NUMBA and JAX: the convolution and
  pooling operations of ``dlt_lib.conv``;
- the same LeNet, in mode C, with ``dlt_lib.conv``'s first design: the
  convolution and each of its gradients as one NumPy operation, each building
  its own patch matrix (three operations instead of ``Im2Col`` + ``Col2Im``);
- the same LeNet, in mode C, with the convolution written as an **im2col
  graph** of PyTensor operations (25 shifted slices joined, one ``dot``) and
  the pooling as a reshape and ``max``: what a chapter could write without
  a new operation;
- the same with PyTensor's own ``pytensor.tensor.signal.convolve2d`` (one
  SciPy call per image, filter and channel): timed on one minibatch only and
  reported per epoch, because an epoch would take an hour;
- PyTorch on the CPU: ``nn.Conv2d``, ``nn.MaxPool2d``, autograd and
  ``torch.optim.SGD``;
- JAX: the epoch as one jit-compiled ``lax.scan`` of ``jax.lax.conv`` steps,
  gradients by ``jax.value_and_grad``, the data on the device once.

Every library runs on one thread (see ``bench_epoch.py``).  Every
implementation starts from the same initial parameters (``LeNet(seed=23455)``,
the tutorials' draws; PyTorch and JAX get the filters flipped, since they
compute cross-correlations), runs one warm-up epoch, which is also the
correctness check (its parameters must equal PyTorch's to a float32
tolerance), then all are timed in turn, interleaved, ``--repeats`` times;
reported are medians and ratios paired against PyTorch in the same repeat.
Cold compile times (empty PyTensor, Numba caches) come from fresh subprocesses.

Run from the repository root::

    pip install torch==2.13.0                 # CPU wheel; not a requirement of dlt_lib
    python benchmarks/bench_lenet.py          # the full run: 50,000 examples, 3 repeats, compile times
    python benchmarks/bench_lenet.py --quick  # 5,000 examples (10 minibatches), 2 repeats, no compile times
"""

from __future__ import annotations

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import bench_epoch as common  # noqa: I001  (first: sets one thread per library before numpy loads)
import numpy as np  # noqa: E402

torch, jax = common.torch, common.jax

BATCH, LEARNING_RATE, SEED = 500, 0.1, 23455
SMALL_BATCH = 10  # signal.convolve2d is timed on one update of this many images
FULL_N, QUICK_N = 50_000, 5_000
# Same parameters after one epoch, to float32 precision: max |p - p_torch| <= ATOL + RTOL * max |p_torch|
# per parameter.  Different summation orders drift by ~1e-6 relative over 100 steps; a wrong
# gradient (a filter not flipped, a missing 1/batch) moves them by 1e-2 or more.
ATOL, RTOL = 1e-5, 2e-3
NAMES = ("conv1_W", "conv1_b", "conv2_W", "conv2_b", "hidden_W", "hidden_b", "output_W", "output_b")


def flop_per_example():
    """Multiply-adds x 2 of the convolutions and matrix products, forward and backward (x 3)."""
    conv1 = 20 * 24 * 24 * 25  # 20 filters of 5x5 over a 24x24 output
    conv2 = 50 * 8 * 8 * (20 * 25)
    hidden, output = 800 * 500, 500 * 10
    # conv1's input gradient is not needed (its input is the data): 2 products there, 3 elsewhere.
    return 2 * (2 * conv1 + 3 * (conv2 + hidden + output))


# ----------------------------------------------------------------------------
# Implementations: reset(), epoch(), params() (a dict in NAMES)
# ----------------------------------------------------------------------------
class DltLeNet:
    """``dlt_lib.models.LeNet`` trained by the trainer's own compiled updates."""

    def __init__(self, X, y, mode, init, variant=None, batch_size=BATCH):
        from dlt_lib import conv, models, training

        saved = conv.conv2d, conv.max_pool_2d
        if variant == "im2col graph":
            conv.conv2d, conv.max_pool_2d = im2col_graph_conv2d, reshape_max_pool
        elif variant == "three ops":
            conv.conv2d = three_ops_conv2d
        elif variant == "signal.convolve2d":
            conv.conv2d, conv.max_pool_2d = signal_conv2d, reshape_max_pool
        try:
            self.model = models.LeNet(seed=SEED)
        finally:
            conv.conv2d, conv.max_pool_2d = saved
        t0 = time.perf_counter()
        self.runner = training.compile_updates(
            self.model, X, y, batch_size=batch_size, learning_rate=LEARNING_RATE, mode=mode
        )
        self.compile_s = time.perf_counter() - t0
        self.init = init

    def reset(self):
        self.model.set_param_values(self.init)

    def epoch(self, n_batches=None):
        return self.runner(0, n_batches or self.runner.n_batches)

    def params(self):
        return self.model.get_param_values()


def im2col_graph_conv2d(input, filters, *, filter_flip=True, input_shape=None, filter_shape=None):
    """The convolution as a graph: the 25 shifted copies of the input joined, then one matrix product."""
    import pytensor.tensor as pt

    k, c, fr, fc = filter_shape
    _, _, rows, cols = input_shape
    out_rows, out_cols = rows - fr + 1, cols - fc + 1
    if filter_flip:
        filters = filters[:, :, ::-1, ::-1]
    patches = pt.stack(
        [input[:, :, a : a + out_rows, b : b + out_cols] for a in range(fr) for b in range(fc)], axis=2
    )  # (n, c, fr*fc, out_rows, out_cols)
    columns = patches.reshape((input.shape[0], c * fr * fc, out_rows * out_cols))
    out = pt.tensordot(filters.reshape((k, c * fr * fc)), columns, axes=[[1], [1]])  # (k, n, rows*cols)
    return out.dimshuffle(1, 0, 2).reshape((input.shape[0], k, out_rows, out_cols))


# The first design of dlt_lib.conv (commit 076a7eb): the convolution and each of its two
# gradients as one NumPy operation, each building its own patch matrix.  Kept to measure it.
def _corr2d(x, w):
    from dlt_lib.conv import im2col

    k, c, fr, fc = w.shape
    out = np.dot(np.ascontiguousarray(w).reshape(k, -1), im2col(x, fr, fc))
    return np.ascontiguousarray(out.reshape(k, x.shape[0], x.shape[2] - fr + 1, -1).transpose(1, 0, 2, 3))


def _corr2d_grad_weights(x, gz):
    from dlt_lib.conv import im2col

    k, fr, fc = gz.shape[1], x.shape[2] - gz.shape[2] + 1, x.shape[3] - gz.shape[3] + 1
    gz_rows = np.ascontiguousarray(gz.transpose(1, 0, 2, 3)).reshape(k, -1)
    return np.dot(gz_rows, im2col(x, fr, fc).T).reshape(k, x.shape[1], fr, fc)


def _corr2d_grad_inputs(w, gz, x):
    from dlt_lib.conv import col2im

    k, c, fr, fc = w.shape
    gz_rows = np.ascontiguousarray(gz.transpose(1, 0, 2, 3)).reshape(k, -1)
    return col2im(np.dot(np.ascontiguousarray(w).reshape(k, -1).T, gz_rows), x.shape, fr, fc)


def _numpy_op(kernel, pullback=None):
    """A PyTensor operation running ``kernel`` (NumPy) on 4-d tensors; ``pullback`` gives its gradients."""
    import pytensor.tensor as pt
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class NumpyOp(Op):
        __props__ = ()

        def make_node(self, *inputs):
            inputs = [pt.as_tensor_variable(v) for v in inputs]
            return Apply(self, inputs, [pt.tensor(dtype=inputs[0].dtype, shape=(None,) * 4)])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = kernel(*inputs).astype(node.outputs[0].dtype, copy=False)

    if pullback is not None:
        NumpyOp.pullback = lambda self, inputs, outputs, grads: pullback(*inputs, grads[0])
    NumpyOp.__name__ = kernel.__name__.strip("_")
    return NumpyOp()


_GRAD_INPUTS = _numpy_op(_corr2d_grad_inputs)
_GRAD_WEIGHTS = _numpy_op(_corr2d_grad_weights)
_CORR2D = _numpy_op(_corr2d, lambda x, w, gz: [_GRAD_INPUTS(w, gz, x), _GRAD_WEIGHTS(x, gz)])


def three_ops_conv2d(input, filters, *, filter_flip=True, input_shape=None, filter_shape=None):
    import pytensor.tensor as pt

    if filter_flip:
        filters = filters[:, :, ::-1, ::-1]
    n, _, rows, cols = input_shape
    k, _, fr, fc = filter_shape
    return pt.specify_shape(_CORR2D(input, filters), (n, k, rows - fr + 1, cols - fc + 1))


def reshape_max_pool(input, ws=(2, 2), *, ignore_border=True):
    import pytensor.tensor as pt

    n, c, rows, cols = input.shape
    return pt.max(input.reshape((n, c, rows // ws[0], ws[0], cols // ws[1], ws[1])), axis=(3, 5))


def signal_conv2d(input, filters, *, filter_flip=True, input_shape=None, filter_shape=None):
    """PyTensor's ``signal.convolve2d`` (a true convolution), batched over images, filters and channels."""
    from pytensor.tensor.signal import convolve2d

    if not filter_flip:
        filters = filters[:, :, ::-1, ::-1]
    return convolve2d(input[:, None], filters[None], mode="valid").sum(axis=2)


class TorchLeNet:
    """PyTorch on the CPU, one thread: nn.Conv2d, nn.MaxPool2d, autograd, torch.optim.SGD."""

    name = "PyTorch 2 CPU (nn.Conv2d, autograd, optim.SGD)"

    def __init__(self, X3, y3, init):
        nn = torch.nn
        torch.set_num_threads(1)
        self.net = nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Tanh(),
            nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.Tanh(),
            nn.Flatten(), nn.Linear(800, 500), nn.Tanh(), nn.Linear(500, 10),
        )  # fmt: skip
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=LEARNING_RATE)
        self.X3 = torch.from_numpy(X3).reshape(len(X3), BATCH, 1, 28, 28)
        self.y3 = torch.from_numpy(y3.astype(np.int64))
        self.init = init

    def reset(self):
        torch_init = to_cross_correlation(self.init)
        layers = [m for m in self.net if hasattr(m, "weight")]
        with torch.no_grad():
            for layer, name in zip(layers, ("conv1", "conv2", "hidden", "output")):
                W = torch_init[f"{name}_W"]
                layer.weight.copy_(
                    torch.from_numpy(W if W.ndim == 4 else W.T.copy())
                )  # Linear keeps W transposed
                layer.bias.copy_(torch.from_numpy(torch_init[f"{name}_b"]))

    def epoch(self, n_batches=None):
        F = torch.nn.functional
        costs = []
        for i in range(n_batches or len(self.X3)):
            self.optimizer.zero_grad()
            loss = F.cross_entropy(self.net(self.X3[i]), self.y3[i])
            loss.backward()
            self.optimizer.step()
            costs.append(loss.item())
        return np.array(costs)

    def params(self):
        layers = [m for m in self.net if hasattr(m, "weight")]
        out = {}
        for layer, name in zip(layers, ("conv1", "conv2", "hidden", "output")):
            W = layer.weight.detach().numpy()
            out[f"{name}_W"], out[f"{name}_b"] = (
                (W if W.ndim == 4 else W.T.copy()),
                layer.bias.detach().numpy().copy(),
            )
        return from_cross_correlation(out)


class JaxLeNet:
    """A whole epoch as one jit-compiled ``lax.scan`` of ``jax.lax.conv`` steps."""

    name = "JAX lax.conv, lax.scan epoch"

    def __init__(self, X3, y3, init):
        import jax.numpy as jnp

        lr = np.float32(LEARNING_RATE)

        def pool(x):
            n, c, rows, cols = x.shape
            return x.reshape(n, c, rows // 2, 2, cols // 2, 2).max(axis=(3, 5))

        def loss(p, x, t):
            x = x.reshape(-1, 1, 28, 28)
            for name in ("conv1", "conv2"):
                x = jax.lax.conv(x, p[f"{name}_W"], (1, 1), "VALID")  # cross-correlation, NCHW/OIHW
                x = jnp.tanh(pool(x) + p[f"{name}_b"][None, :, None, None])
            h = jnp.tanh(x.reshape(x.shape[0], -1) @ p["hidden_W"] + p["hidden_b"])
            logp = jax.nn.log_softmax(h @ p["output_W"] + p["output_b"], axis=1)
            return -jnp.mean(jnp.take_along_axis(logp, t[:, None], axis=1))

        def step(p, xt):
            cost, grads = jax.value_and_grad(loss)(p, *xt)
            return {k: p[k] - lr * grads[k] for k in p}, cost

        self._epoch = jax.jit(lambda p, X, Y: jax.lax.scan(step, p, (X, Y)))
        self._loss = loss
        self.X3, self.y3 = jax.device_put(X3), jax.device_put(y3)
        self.init = init
        self._short = {}

    def reset(self):
        self.p = {k: jax.device_put(v) for k, v in to_cross_correlation(self.init).items()}

    def epoch(self, n_batches=None):
        if n_batches is None or n_batches == len(self.X3):
            X, Y = self.X3, self.y3
        else:
            X, Y = self.X3[:n_batches], self.y3[:n_batches]
        self.p, costs = self._epoch(self.p, X, Y)
        return np.asarray(jax.block_until_ready(costs))

    def params(self):
        return from_cross_correlation({k: np.asarray(v) for k, v in self.p.items()})


def to_cross_correlation(params):
    """dlt_lib's filters flipped for a library that slides them unflipped (the same network)."""
    return {
        k: (np.ascontiguousarray(v[:, :, ::-1, ::-1]) if v.ndim == 4 else v.copy()) for k, v in params.items()
    }


from_cross_correlation = to_cross_correlation  # flipping twice is the identity


# ----------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------
def _timed(impl, n_batches=None):
    impl.reset()
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        impl.epoch(n_batches)
        return time.perf_counter() - t0
    finally:
        gc.enable()


def max_difference(params, reference):
    """max over parameters of max |p - ref| / (ATOL + RTOL * max |ref|): <= 1 passes."""
    return max(
        float(np.max(np.abs(params[k] - reference[k])) / (ATOL + RTOL * np.max(np.abs(reference[k]))))
        for k in NAMES
    )


def run(X, y, modes, repeats, log, one_batch_only=("signal.convolve2d",)):
    from dlt_lib import models

    n_batches = len(X) // BATCH
    X3 = np.ascontiguousarray(X[: n_batches * BATCH].reshape(n_batches, BATCH, 784))
    y3 = y[: n_batches * BATCH].reshape(n_batches, BATCH)
    init = models.LeNet(seed=SEED).get_param_values()
    flop = flop_per_example() * n_batches * BATCH
    log(
        f"\n=== LeNet 20-50-500, batch {BATCH}: {n_batches} minibatches, {flop / 1e9:.0f} GFLOP per epoch ==="
    )

    builders = []
    if torch is not None:
        builders.append((TorchLeNet.name, lambda: TorchLeNet(X3, y3, init)))
    for mode in modes:
        default = " (default)" if mode == "C" else ""
        builders.append((f"dlt {mode}: dlt_lib.conv{default}", lambda m=mode: DltLeNet(X, y, m, init)))
    builders.append(("dlt C: three NumPy ops (first design)", lambda: DltLeNet(X, y, "C", init, "three ops")))
    builders.append(("dlt C: im2col graph", lambda: DltLeNet(X, y, "C", init, "im2col graph")))
    small = SMALL_BATCH  # its cost is linear in the batch: time a small one, scale it
    builders.append(
        (
            "dlt C: signal.convolve2d",
            lambda: DltLeNet(X[:small], y[:small], "C", init, "signal.convolve2d", small),
        )
    )
    if jax is not None:
        builders.append((JaxLeNet.name, lambda: JaxLeNet(X3, y3, init)))

    rows, impls = [], []
    reference = None
    for name, build in builders:
        t0 = time.perf_counter()
        try:
            impl = build()
        except Exception as exc:  # noqa: BLE001 - a path that cannot compile is a result
            log(f"  {name}: FAILED to build: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            continue
        built = time.perf_counter() - t0
        one = any(tag in name for tag in one_batch_only)
        impl.reset()
        t1 = time.perf_counter()
        impl.epoch(1 if one else None)  # warm-up: compiles on first call (Numba, JAX)
        warm = time.perf_counter() - t1
        row = {"name": name, "build_s": built, "warmup_s": warm, "times": [], "one_minibatch": one}
        if one:
            # One timed update of a SMALL_BATCH minibatch, scaled to the epoch.
            one_update = _timed(impl, 1)
            row["times"] = [one_update * (BATCH / SMALL_BATCH) * n_batches]
            row["check"] = f"not checked (one update of {SMALL_BATCH} images, scaled)"
            log(
                f"  {name}: built {built:.1f} s; one update of {SMALL_BATCH} images {one_update:.1f} s "
                f"-> {row['times'][0]:.0f} s per epoch (extrapolated)"
            )
            rows.append(row)
            continue
        params = impl.params()
        if reference is None:
            reference = params
            # The check means something only if an epoch moves the parameters by far more than the tolerance.
            moved = max_difference(init, reference)
            row["check"] = f"reference (the epoch moved the parameters by {moved:.0f} x the tolerance)"
        else:
            d = max_difference(params, reference)
            row["check"] = f"{'ok' if d <= 1 else 'WRONG RESULT'} ({d:.2f} of tolerance)"
        log(f"  {name}: built {built:.1f} s, warm-up epoch {warm:.1f} s, check: {row['check']}")
        rows.append(row)
        if "WRONG" not in row["check"]:
            impls.append((impl, row))

    for rep in range(repeats):
        order = impls[rep % len(impls) :] + impls[: rep % len(impls)]
        for impl, row in order:
            row["times"].append(_timed(impl))
        log(
            f"  repeat {rep + 1}/{repeats}: "
            + ", ".join(f"{r['name'].split(':')[0]} {r['times'][-1]:.1f} s" for _, r in order)
        )

    torch_times = rows[0]["times"] if rows and rows[0]["name"] == TorchLeNet.name else None
    log(f"\n{'implementation':52} {'s/epoch':>8} {'min-max':>13} {'/ PyTorch':>10} {'GFLOP/s':>8}  check")
    for row in rows:
        t = np.array(row["times"])
        med = float(np.median(t))
        if torch_times is not None and not row["one_minibatch"] and len(t) == len(torch_times):
            ratio = float(np.median(t / np.array(torch_times)))
        elif torch_times is not None:
            ratio = med / float(np.median(torch_times))
        else:
            ratio = float("nan")
        row.update(median_s=med, ratio_to_torch=ratio, gflops=flop / med / 1e9)
        spread = f"{t.min():.1f}-{t.max():.1f}" if len(t) > 1 else "one"
        log(f"{row['name']:52} {med:8.1f} {spread:>13} {ratio:10.2f} {flop / med / 1e9:8.1f}  {row['check']}")
    return rows


# ----------------------------------------------------------------------------
# Cold compile time, in fresh processes with empty caches
# ----------------------------------------------------------------------------
_COMPILE_SNIPPET = """
import time, numpy as np
t0 = time.perf_counter()
import dlt_lib
from dlt_lib import models, training
X = np.random.default_rng(0).random((1000, 784), dtype=np.float32)
y = (np.arange(1000) % 10).astype(np.int32)
t1 = time.perf_counter()
model = models.LeNet()
runner = training.compile_updates(model, X, y, batch_size=500, learning_rate=0.1, mode={mode!r})
runner(0, 1)
t2 = time.perf_counter()
print("RESULT", t2 - t1, t2 - t0)
"""


def compile_times(modes, log):
    results = {}
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="dlt-compile-") as tmp:
            env = dict(os.environ)
            env["PYTENSOR_FLAGS"] = f"base_compiledir={tmp},compiledir={tmp}/compiledir"
            env["NUMBA_CACHE_DIR"] = tmp
            found = []
            for kind in ("cold", "cached"):
                out = subprocess.run(
                    [sys.executable, "-c", _COMPILE_SNIPPET.format(mode=mode)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
                if not line:
                    log(f"  compile {mode} {kind}: FAILED\n{out.stderr[-800:]}")
                    break
                graph_s, process_s = (float(v) for v in line[0].split()[1:])
                found.append((kind, graph_s, process_s))
                log(f"  compile {mode} {kind}: {graph_s:.1f} s (whole process {process_s:.1f} s)")
            results[mode] = found
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 examples, 2 repeats, no compile times")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed epochs per implementation (default 3; 2 with --quick)",
    )
    parser.add_argument("--modes", default="C,NUMBA,JAX", help="dlt_lib modes to time")
    parser.add_argument("--compile-times", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    n = QUICK_N if args.quick else FULL_N
    repeats = args.repeats or (2 if args.quick else 3)
    modes = [m.strip().upper() for m in args.modes.split(",") if m.strip()]
    if jax is None:
        modes = [m for m in modes if m != "JAX"]

    def log(text=""):
        print(text, flush=True)

    import pytensor

    import dlt_lib

    log(
        f"bench_lenet: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}, PyTensor {pytensor.__version__}, "
        f"NumPy {np.__version__}, torch {getattr(torch, '__version__', 'absent')}, jax {getattr(jax, '__version__', 'absent')}, "
        f"dlt_lib {dlt_lib.__version__}"
    )
    X, y = common.make_data(n)
    rows = run(X, y, modes, repeats, log)
    compile_results = None
    if args.compile_times if args.compile_times is not None else not args.quick:
        log("\nCold compile time of the LeNet training step (build + first call), empty caches:")
        compile_results = compile_times(modes, log)
    log(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(
            json.dumps({"n": n, "rows": rows, "compile": compile_results}, indent=2, default=str)
        )
    return 1 if any("WRONG" in r.get("check", "") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

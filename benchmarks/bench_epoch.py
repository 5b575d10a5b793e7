#!/usr/bin/env python
"""Speed of one training epoch: dlt_lib's trainer against NumPy, PyTorch and JAX.

One full-size epoch (50,000 MNIST-shaped float32 examples, 784 inputs, 10 classes)
of SGD on logistic regression at batch sizes 20, 100 and 600, and on the
784-500-10 tanh MLP at batch size 20, timed for

- ``dlt_lib``'s trainer, through ``dlt_lib.training.compile_updates`` (the
  updates ``train`` compiles), one call ``runner.epoch()`` = ``runner(0, n_batches)``
  per epoch, in each mode: the default path (the per-minibatch step in C and JAX,
  a scanned chunk in NUMBA) and, in C and NUMBA, the other one;
- a hand-written NumPy loop (the reference every ratio is paired against);
- PyTorch on the CPU with manual gradients (optional: skipped without torch);
- a JAX epoch written as one jit-compiled ``lax.scan`` with the data put on the
  device once (optional: skipped without jax).

Every library runs on one thread.  Each implementation is compiled and warmed
up with one epoch from the same initial parameters (that epoch is also the
correctness check: every implementation must end it with NumPy's parameters,
to a float32 tolerance), then the implementations are timed in turn, N times,
interleaved (the order rotated each repeat), each from the initial parameters,
and the median is reported.  An implementation whose warm-up epoch is more than
20 times NumPy's and 10 s is not run again (its warm-up is its one timing).
Compile time (cold and cached) is measured in fresh subprocesses.
``--stock`` adds a row for mode C's default path compiled with PyTensor's own
``CVM`` mode, without the three changes ``dlt_lib.backend.get_mode`` makes.

Run from the repository root::

    python benchmarks/bench_epoch.py                 # the full run (several minutes)
    python benchmarks/bench_epoch.py --quick         # 10,000 examples, 2 repeats, no compile times
    python benchmarks/bench_epoch.py --modes C,NUMBA --only logreg --repeats 9 --json out.json
"""

from __future__ import annotations

import os

# One thread for every library.  This must happen before numpy, jax, torch or
# numba are imported: their thread pools read these variables when they load.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = "1"
_XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
if _XLA_ONE_THREAD not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_XLA_ONE_THREAD}".strip()

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import dlt_lib  # noqa: E402  (configures PyTensor, float32 and the BLAS for mode C, before anything imports it)

# JAX mode casts one index to float64, which JAX (float32 by default) truncates, with a warning each compile.
warnings.filterwarnings("ignore", message="Explicitly requested dtype float64")


N_IN, N_HIDDEN, N_OUT = 784, 500, 10
LEARNING_RATE = {"logreg": 0.13, "mlp": 0.01}  # the tutorials' rates (logistic_sgd.py, mlp.py)
MLP_SEED = 1234
DATA_SEED = 20261126
FULL_N, QUICK_N = 50_000, 10_000
CONFIGS = [("logreg", 20), ("logreg", 100), ("logreg", 600), ("mlp", 20)]
# An implementation whose warm-up epoch takes more than SLOW_FACTOR times NumPy's and more than SLOW_S
# seconds is not run again: its warm-up epoch is its time (first-call compile included: ~1 s of minutes).
# Only the JAX path that copies the whole training set at every call is that slow; timing it N more times
# would take most of an hour.
SLOW_FACTOR, SLOW_S = 20.0, 10.0
TIE = 0.03  # paired ratios within 3% of 1 are called a tie: repeat runs on this kind of machine move them that much

# A float32 tolerance for "same parameters after one epoch": max |p - p_numpy| <= ATOL + RTOL * max |p_numpy|.
# Different but correct float32 summation orders drift by ~1e-6 relative over an epoch; a real bug
# (a missing 1/batch, a skipped minibatch, a stale update) moves the parameters by 1e-2 or more.
TOLERANCE = {"logreg": (1e-5, 1e-4), "mlp": (1e-5, 1e-3)}


def _optional(name):
    try:
        return __import__(name)
    except ImportError:
        return None


torch = _optional("torch")
jax = _optional("jax")


# ----------------------------------------------------------------------------
# Data and the problem
# ----------------------------------------------------------------------------
def make_data(n, seed=DATA_SEED):
    """MNIST-shaped data: 28x28 "images" in [0, 1], ~19% ink, centred; labels from a linear teacher.

    The statistics matter for a fair SGD benchmark: with MNIST-like inputs
    (sum of squares ~ 90) the tutorials' learning rates are stable, so the
    parameters after one epoch are a meaningful thing to compare.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    p_ink = (0.45 * np.exp(-((yy - 13.5) ** 2 + (xx - 13.5) ** 2) / (2 * 7.0**2))).reshape(-1)
    X = np.empty((n, N_IN), dtype=np.float32)
    for lo in range(0, n, 10_000):  # in blocks: no 300 MB float64 temporaries
        hi = min(n, lo + 10_000)
        ink = rng.random((hi - lo, N_IN)) < p_ink
        X[lo:hi] = np.where(ink, rng.uniform(0.25, 1.0, (hi - lo, N_IN)), 0.0)
    teacher = rng.standard_normal((N_IN, N_OUT))
    y = np.argmax((X - X.mean(axis=0)) @ teacher, axis=1).astype(np.int32)
    return X, y


def flop_per_epoch(model, n_used):
    """Multiply-adds x 2 of the forward and backward matrix products, per epoch (elementwise work ignored)."""
    if model == "logreg":
        per_example = 2 * (2 * N_IN * N_OUT)  # x @ W and x.T @ d
    else:  # x @ W1, h @ W2 forward; h.T @ d2, d2 @ W2.T, x.T @ dh backward
        per_example = 2 * (2 * N_IN * N_HIDDEN) + 3 * (2 * N_HIDDEN * N_OUT)
    return per_example * n_used


def initial_params(model):
    """The parameters every implementation starts from, as dlt_lib's models create them."""
    if model == "logreg":
        return {"W": np.zeros((N_IN, N_OUT), np.float32), "b": np.zeros(N_OUT, np.float32)}
    from dlt_lib.models import MLP

    return MLP(N_IN, N_HIDDEN, N_OUT, seed=MLP_SEED).get_param_values()


PARAM_NAMES = {"logreg": ("W", "b"), "mlp": ("hidden_W", "hidden_b", "output_W", "output_b")}


# ----------------------------------------------------------------------------
# Implementations.  Each has: name, reset() (back to the initial parameters),
# epoch() (one epoch, finished when it returns), params() (a list of NumPy arrays
# in PARAM_NAMES order).
# ----------------------------------------------------------------------------
class DltTrainer:
    """The trainer's own compiled objects, built as ``dlt_lib.training.train`` builds them.

    ``stock=True`` (``--stock``) compiles mode C with PyTensor's own ``CVM`` mode
    instead of ``dlt_lib.backend.get_mode("C")``, to measure what its changes bring.
    """

    def __init__(self, model, X, y, batch_size, mode, use_scan, init, stock=False):
        import pytensor

        from dlt_lib import backend, models, training

        self.model = (
            models.LogisticRegression(N_IN, N_OUT)
            if model == "logreg"
            else models.MLP(N_IN, N_HIDDEN, N_OUT, seed=MLP_SEED)
        )
        lr = LEARNING_RATE[model]
        t0 = time.perf_counter()
        dlt_get_mode = backend.get_mode
        if stock:
            backend.get_mode = lambda name=None: pytensor.compile.mode.get_mode("CVM")
        try:
            # The trainer's public way to compile exactly the updates train() runs.
            self.runner = training.compile_updates(
                self.model, X, y, batch_size=batch_size, learning_rate=lr, mode=mode, use_scan=use_scan
            )
        finally:
            backend.get_mode = dlt_get_mode
        self.compile_s = time.perf_counter() - t0
        self.init = init

    def reset(self):
        self.model.set_param_values(self.init)

    def epoch(self):
        return self.runner.epoch()  # runner(0, n_batches): the whole epoch, one chunk, as train() runs it

    def params(self):
        return [np.asarray(p.get_value()) for p in self.model.params]


class NumpyLoop:
    """Hand-written NumPy: forward, log-softmax, manual gradients, SGD; the same math as the graph."""

    name = "NumPy, hand-written"

    def __init__(self, model, X3, y3, init):
        self.model, self.X3, self.y3, self.init = model, X3, y3, init
        self.n_batches, self.batch = X3.shape[:2]
        self.lr = np.float32(LEARNING_RATE[model])
        self.inv_batch = np.float32(1.0 / self.batch)

    def reset(self):
        self.p = [np.array(self.init[k], copy=True) for k in PARAM_NAMES[self.model]]

    def _softmax_grad(self, z, t, rows):
        """Turn logits ``z`` into ``d cost / d z`` in place; return the mean NLL."""
        z -= z.max(axis=1, keepdims=True)
        z_label = z[rows, t]
        np.exp(z, out=z)
        s = z.sum(axis=1)
        cost = np.mean(np.log(s) - z_label)  # -log p(y|x) = log sum exp z - z_y
        z /= s[:, None]
        z[rows, t] -= 1.0
        z *= self.inv_batch
        return cost

    def epoch(self):
        rows = np.arange(self.batch)
        costs = np.empty(self.n_batches, np.float32)
        lr = self.lr
        if self.model == "logreg":
            W, b = self.p
            for i in range(self.n_batches):
                x, t = self.X3[i], self.y3[i]
                z = x @ W
                z += b
                costs[i] = self._softmax_grad(z, t, rows)
                gW = x.T @ z
                gW *= lr
                W -= gW
                b -= lr * z.sum(axis=0)
        else:
            W1, b1, W2, b2 = self.p
            for i in range(self.n_batches):
                x, t = self.X3[i], self.y3[i]
                h = x @ W1
                h += b1
                np.tanh(h, out=h)
                z = h @ W2
                z += b2
                costs[i] = self._softmax_grad(z, t, rows)
                dh = z @ W2.T  # with the old W2, as the graph does
                dh *= 1.0 - h * h
                gW2 = h.T @ z
                gW1 = x.T @ dh
                gW1 *= lr
                W1 -= gW1
                b1 -= lr * dh.sum(axis=0)
                gW2 *= lr
                W2 -= gW2
                b2 -= lr * z.sum(axis=0)
        return costs

    def params(self):
        return [a.copy() for a in self.p]


class TorchLoop:
    """PyTorch on the CPU, one thread, manual gradients with fused in-place updates."""

    name = "PyTorch (manual grads)"

    def __init__(self, model, X3, y3, init):
        torch.set_num_threads(1)
        self.model, self.init = model, init
        self.X3 = torch.from_numpy(X3)
        self.y3 = torch.from_numpy(y3.astype(np.int64))
        self.n_batches, self.batch = X3.shape[:2]
        self.step = LEARNING_RATE[model] / self.batch  # lr * (1 / batch) folded into one alpha
        self.rows = torch.arange(self.batch)

    def reset(self):
        self.p = [torch.tensor(self.init[k]) for k in PARAM_NAMES[self.model]]

    def epoch(self):
        F = torch.nn.functional
        costs = torch.empty(self.n_batches)
        a, rows = -self.step, self.rows
        with torch.inference_mode():
            if self.model == "logreg":
                W, b = self.p
                for i in range(self.n_batches):
                    x, t = self.X3[i], self.y3[i]
                    logp = torch.log_softmax(torch.addmm(b, x, W), dim=1)
                    costs[i] = F.nll_loss(logp, t)
                    d = logp.exp_()
                    d[rows, t] -= 1.0  # batch * d cost / d z
                    W.addmm_(x.t(), d, alpha=a)
                    b.add_(d.sum(0), alpha=a)
            else:
                W1, b1, W2, b2 = self.p
                for i in range(self.n_batches):
                    x, t = self.X3[i], self.y3[i]
                    h = torch.tanh(torch.addmm(b1, x, W1))
                    logp = torch.log_softmax(torch.addmm(b2, h, W2), dim=1)
                    costs[i] = F.nll_loss(logp, t)
                    d = logp.exp_()
                    d[rows, t] -= 1.0
                    dh = torch.mm(d, W2.t()).mul_(1.0 - h * h)
                    W2.addmm_(h.t(), d, alpha=a)
                    b2.add_(d.sum(0), alpha=a)
                    W1.addmm_(x.t(), dh, alpha=a)
                    b1.add_(dh.sum(0), alpha=a)
        return costs.numpy()

    def params(self):
        return [p.numpy().copy() for p in self.p]


class JaxScan:
    """A whole epoch as one jit-compiled ``lax.scan``; the data put on the device once."""

    name = "JAX lax.scan epoch"

    def __init__(self, model, X3, y3, init):
        import jax.numpy as jnp

        self.model, self.init = model, init
        lr = np.float32(LEARNING_RATE[model])

        def loss(p, x, t):
            if model == "logreg":
                z = x @ p[0] + p[1]
            else:
                z = jnp.tanh(x @ p[0] + p[1]) @ p[2] + p[3]
            logp = jax.nn.log_softmax(z, axis=1)
            return -jnp.mean(jnp.take_along_axis(logp, t[:, None], axis=1))

        def step(p, xt):
            cost, grads = jax.value_and_grad(loss)(p, *xt)
            return tuple(a - lr * g for a, g in zip(p, grads)), cost

        self._epoch = jax.jit(lambda p, X, Y: jax.lax.scan(step, p, (X, Y)))
        self.X3, self.y3 = jax.device_put(X3), jax.device_put(y3)

    def reset(self):
        self.p = tuple(jax.device_put(self.init[k]) for k in PARAM_NAMES[self.model])

    def epoch(self):
        self.p, costs = self._epoch(self.p, self.X3, self.y3)
        return np.asarray(jax.block_until_ready(costs))

    def params(self):
        return [np.asarray(a) for a in self.p]


def dlt_variants(modes, stock=False):
    """(label, mode, use_scan, stock) for each dlt_lib path to time; the default path first."""
    from dlt_lib.training import scans_by_default

    out = []
    for mode in modes:
        default = scans_by_default(mode)
        out.append((f"dlt {mode} {'scan' if default else 'step'} (default)", mode, default, False))
        if mode != "JAX":  # JAX mode cannot scan a chunk of dynamic length
            out.append((f"dlt {mode} {'step' if default else 'scan'}", mode, not default, False))
        if stock and mode == "C":
            out.append(("dlt C step, stock CVM", "C", default, True))
    return out


# ----------------------------------------------------------------------------
# Timing one configuration
# ----------------------------------------------------------------------------
def _timed_epoch(impl):
    impl.reset()
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        impl.epoch()
        return time.perf_counter() - t0
    finally:
        gc.enable()


def run_config(model, batch_size, X, y, modes, repeats, log, stock=False):
    n_batches = len(X) // batch_size
    n_used = n_batches * batch_size
    X3 = X[:n_used].reshape(n_batches, batch_size, N_IN)
    y3 = y[:n_used].reshape(n_batches, batch_size)
    init = initial_params(model)
    flop = flop_per_epoch(model, n_used)
    title = f"{'logistic regression' if model == 'logreg' else 'MLP 784-500-10 tanh'}, batch {batch_size}"
    log(f"\n=== {title}: {n_batches} minibatches, {n_used} examples, {flop / 1e9:.2f} GFLOP per epoch ===")

    impls, skipped = [], []
    builders = [(NumpyLoop.name, lambda: NumpyLoop(model, X3, y3, init))]
    for label, mode, use_scan, stock_mode in dlt_variants(modes, stock):
        builders.append(
            (
                label,
                lambda m=mode, s=use_scan, st=stock_mode: DltTrainer(model, X, y, batch_size, m, s, init, st),
            )
        )
    if torch is None:
        skipped.append((TorchLoop.name, "skipped: torch not installed"))
    else:
        builders.append((TorchLoop.name, lambda: TorchLoop(model, X3, y3, init)))
    if jax is None:
        skipped.append((JaxScan.name, "skipped: jax not installed"))
    else:
        builders.append((JaxScan.name, lambda: JaxScan(model, X3, y3, init)))

    rows = []
    for name, build in builders:
        t0 = time.perf_counter()
        try:
            impl = build()
        except Exception as exc:  # a mode that cannot compile this graph is a result, not a crash
            log(f"  {name}: FAILED to build: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            skipped.append((name, f"failed to build: {type(exc).__name__}"))
            continue
        impl.name = name
        # Warm-up: one epoch from the initial parameters; also the correctness check.
        impl.reset()
        t1 = time.perf_counter()
        costs = np.asarray(impl.epoch(), dtype=np.float64)
        warm = time.perf_counter() - t1
        log(f"  built {name} in {t1 - t0:.1f} s, warm-up epoch {warm:.2f} s, last cost {costs[-1]:.4f}")
        impls.append(impl)
        row = {"name": name, "params_after_one_epoch": impl.params(), "warmup_s": warm, "times": []}
        if rows and warm > max(SLOW_S, SLOW_FACTOR * rows[0]["warmup_s"]):
            row["times"], row["warmup_reused"] = [warm], True
        rows.append(row)

    # Correctness: everyone's parameters after one epoch against NumPy's.
    ref = rows[0]["params_after_one_epoch"]
    atol, rtol = TOLERANCE[model]
    for row in rows:
        got = row.pop("params_after_one_epoch")
        diffs = [float(np.max(np.abs(a.astype(np.float64) - r))) for a, r in zip(got, ref)]
        scale = max(float(np.max(np.abs(r))) for r in ref)
        row["max_abs_diff"] = max(diffs)
        row["ok"] = bool(all(np.isfinite(diffs)) and max(diffs) <= atol + rtol * scale)
        row["tolerance"] = atol + rtol * scale
        if not row["ok"]:
            log(
                f"  !!! {row['name']}: parameters differ from NumPy's by {max(diffs):.3g} (tolerance {atol + rtol * scale:.3g})"
            )

    # Timing: interleaved, the order rotated each repeat, so noise hits every implementation alike.
    k = len(impls)
    for r in range(repeats):
        for j in range(k):
            i = (j + r) % k
            if not rows[i]["ok"] or rows[i].get("warmup_reused"):
                continue
            rows[i]["times"].append(_timed_epoch(impls[i]))
        log(f"  repeat {r + 1}/{repeats} done")

    # Paired ratio: in each repeat, an implementation's time over NumPy's in the same repeat.
    numpy_times = rows[0]["times"]
    for row in rows:
        t = row["times"]
        if not t:
            continue
        row["median_s"] = statistics.median(t)
        row["min_s"], row["max_s"] = min(t), max(t)
        row["epochs_per_s"] = 1.0 / row["median_s"]
        row["ratio_vs_numpy"] = statistics.median(a / b for a, b in zip(t, numpy_times))
        row["gflop_per_s"] = flop / row["median_s"] / 1e9
    return {
        "model": model,
        "batch_size": batch_size,
        "n_batches": n_batches,
        "n_examples": n_used,
        "gflop_per_epoch": flop / 1e9,
        "results": rows,
        "skipped": [{"name": n, "why": w} for n, w in skipped],
    }


def format_config(cfg):
    title = "logistic regression" if cfg["model"] == "logreg" else "MLP 784-500-10 tanh"
    lines = [
        f"{title}, batch {cfg['batch_size']} ({cfg['n_examples']} examples, {cfg['gflop_per_epoch']:.2f} GFLOP/epoch)",
        f"  {'implementation':<32} {'epochs/s':>8} {'ms/epoch':>9} {'[min-max]':>15} {'/ NumPy':>8} "
        f"{'GFLOP/s':>8} {'max|dp|':>9}",
    ]
    for row in cfg["results"]:
        if "median_s" not in row:
            lines.append(f"  {row['name']:<32} {'WRONG RESULT: not timed':>51} {row['max_abs_diff']:9.2g}")
            continue
        once = " (1 run)" if len(row["times"]) == 1 else ""
        if row.get("warmup_reused"):
            once = " (1 run: the warm-up)"
        spread = f"[{1e3 * row['min_s']:.0f}-{1e3 * row['max_s']:.0f}]"
        lines.append(
            f"  {row['name']:<32} {row['epochs_per_s']:8.2f} {1e3 * row['median_s']:9.1f} {spread:>15} "
            f"{row['ratio_vs_numpy']:8.2f} {row['gflop_per_s']:8.1f} {row['max_abs_diff']:9.2g}{once}"
        )
    for s in cfg["skipped"]:
        lines.append(f"  {s['name']:<32} {s['why']}")
    tol = cfg["results"][0]["tolerance"]
    lines.append(
        f"  (max|dp| must be <= {tol:.2g}: parameters after one epoch from the same start, vs NumPy)"
    )
    return "\n".join(lines)


def target_check(configs):
    """The project's target: the default path (mode C) beats NumPy and PyTorch everywhere
    and is at least as fast as the JAX lax.scan epoch at batch 20 (paired ratios of epoch times)."""
    lines = []
    for cfg in configs:
        by = {r["name"]: r for r in cfg["results"] if "median_s" in r}
        label = f"{cfg['model']} bs {cfg['batch_size']}"
        others = [NumpyLoop.name, TorchLoop.name] + ([JaxScan.name] if cfg["batch_size"] == 20 else [])
        for ours_name, short in (("dlt C step (default)", "C default"),):
            ours = by.get(ours_name)
            if ours is None:
                continue
            for other in others:
                if other not in by:
                    continue
                paired = statistics.median(a / b for a, b in zip(ours["times"], by[other]["times"]))
                verdict = (
                    "faster" if paired < 1 - TIE else "SLOWER" if paired > 1 + TIE else "tie (within noise)"
                )
                lines.append(f"  {label:<13} {short:<12} / {other:<24} {paired:5.2f}  {verdict}")
        if by:
            fastest = min(by.values(), key=lambda r: r["median_s"])
            lines.append(f"  {label:<13} fastest: {fastest['name']} ({1e3 * fastest['median_s']:.1f} ms)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Compile time, in fresh processes
# ----------------------------------------------------------------------------
def compile_child(mode, n):
    """Build the logistic-regression bs-20 trainer step and call it once; print the times as JSON."""
    X, y = make_data(n)
    t0 = time.perf_counter()
    trainer = DltTrainer("logreg", X, y, 20, mode, mode != "JAX", initial_params("logreg"))
    t1 = time.perf_counter()
    trainer.runner(0, 1)  # Numba and JAX compile on the first call
    t2 = time.perf_counter()
    print(json.dumps({"build_s": t1 - t0, "first_call_s": t2 - t1, "compile_s": t2 - t0}))


def compile_times(modes, n, log):
    out = {}
    for mode in modes:
        if mode == "JAX" and jax is None:
            out[mode] = {"skipped": "jax not installed"}
            continue
        with tempfile.TemporaryDirectory(prefix="bench-compile-") as tmp:
            env = dict(os.environ)
            flags = env.get("PYTENSOR_FLAGS", "")
            # PyTensor keeps its Numba cache under base_compiledir, its C modules under compiledir.
            fresh = f"base_compiledir={tmp}/pytensor,compiledir={tmp}/pytensor/compiledir"
            env["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, fresh]))
            env["NUMBA_CACHE_DIR"] = f"{tmp}/numba"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--compile-child", mode, "--n", str(n)]
            res = {}
            for which in ("cold", "cached"):
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if proc.returncode != 0:
                    res[which] = {"error": proc.stderr.strip().splitlines()[-1:] or ["?"]}
                    log(f"  compile {mode} {which}: FAILED {res[which]['error']}")
                    continue
                res[which] = json.loads(proc.stdout.strip().splitlines()[-1])
                res[which]["process_s"] = wall
                log(f"  compile {mode} {which}: {res[which]['compile_s']:.1f} s (process {wall:.1f} s)")
            out[mode] = res
    return out


def format_compile(ct):
    lines = [
        "Compile time, logistic regression bs 20 trainer step (build graph + compile + first call), seconds",
        f"  {'mode':<6} {'cold':>8} {'cached':>8}   {'cold process':>12} {'cached process':>14}",
    ]
    for mode, res in ct.items():
        if "skipped" in res:
            lines.append(f"  {mode:<6} {res['skipped']}")
            continue
        cells = []
        for key in ("compile_s", "process_s"):
            for which in ("cold", "cached"):
                cells.append(f"{res[which][key]:.1f}" if key in res.get(which, {}) else "failed")
        lines.append(f"  {mode:<6} {cells[0]:>8} {cells[1]:>8}   {cells[2]:>12} {cells[3]:>14}")
    lines.append(
        "  (cold: empty PyTensor base_compiledir/compiledir and NUMBA_CACHE_DIR; cached: the same command"
    )
    lines.append("   again, same directories;")
    lines.append("   process: the whole subprocess, with Python start-up, imports and making the data)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
def machine_description():
    import pytensor

    from dlt_lib import backend

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {
        "python": platform.python_version(),
        "dlt_lib": dlt_lib.__version__,
        "pytensor": pytensor.__version__,
        "numpy": np.__version__,
        "jax": getattr(jax, "__version__", None),
        "torch": getattr(torch, "__version__", None),
        "numba": getattr(_optional("numba"), "__version__", None),
    }
    return {
        "cpu": cpu,
        "cpus_visible": os.cpu_count(),
        "versions": versions,
        "blas_for_C_mode": backend.describe("C").blas,
        "threads": "1 (OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1, XLA single-threaded, torch.set_num_threads(1))",
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed epochs per implementation (default 5; 2 with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="10,000 examples, 2 repeats, no compile times")
    parser.add_argument("--modes", default="C,NUMBA,JAX", help="dlt_lib modes to time (default C,NUMBA,JAX)")
    parser.add_argument("--only", choices=("logreg", "mlp"), help="only this model")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--stock",
        action="store_true",
        help="also time mode C's default path compiled with PyTensor's own CVM mode (without dlt_lib's changes)",
    )
    parser.add_argument(
        "--compile-times",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure cold and cached compile times (default: yes, except with --quick)",
    )
    parser.add_argument("--compile-child", metavar="MODE", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    n = args.n or (QUICK_N if args.quick else FULL_N)
    if args.compile_child:
        compile_child(args.compile_child, n)
        return 0

    from dlt_lib import backend

    modes = [backend.normalise_mode(m) for m in args.modes.split(",") if m.strip()]
    if "JAX" in modes and jax is None:
        print("dlt JAX mode: skipped: jax not installed")
        modes.remove("JAX")
    repeats = args.repeats or (2 if args.quick else 5)
    want_compile = (not args.quick) if args.compile_times is None else args.compile_times

    def log(msg):
        print(msg, flush=True)

    info = machine_description()
    log(f"Machine: {info['cpu']}, {info['cpus_visible']} CPUs visible; threads: {info['threads']}")
    log("Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    log(f"Mode C = PyTensor CVM, BLAS: {info['blas_for_C_mode']}")
    if torch is None:
        log("PyTorch: skipped: torch not installed")
    if jax is None:
        log("JAX lax.scan: skipped: jax not installed")
    log(f"{n} examples, {repeats} timed repeats (median), modes {','.join(modes)}")

    X, y = make_data(n)
    configs = []
    for model, bs in CONFIGS:
        if args.only and model != args.only:
            continue
        configs.append(run_config(model, bs, X, y, modes, repeats, log, args.stock))

    ct = {}
    if want_compile:
        log("\n=== compile times (fresh subprocesses) ===")
        ct = compile_times(modes, n, log)

    log("\n" + "=" * 100)
    log(
        f"RESULTS: one epoch, median of {repeats} interleaved repeats; '/ NumPy' = paired ratio of epoch times"
    )
    log("(< 1 is faster than NumPy); max|dp| = max abs difference from NumPy's parameters after one epoch.")
    log("Mode C = dlt_lib.backend.get_mode('C'): PyTensor's CVM with allow_gc=False, float32 tanh via")
    log("the sigmoid and no log-sum-exp stabilisation rewrite (dlt_lib's log-softmax is already stable).")
    log("=" * 100)
    for cfg in configs:
        log("\n" + format_config(cfg))
    if ct:
        log("\n" + format_compile(ct))
    check = target_check(configs)
    if check:
        log(
            "\nTarget: the default path (dlt C step) faster than NumPy and PyTorch everywhere and at least as"
            "\nfast as the JAX lax.scan epoch at batch 20 (paired ratio of epoch times, < 1 = faster;"
            f"\nwithin {TIE:.0%} of 1 = a tie)"
        )
        log(check)

    wrong = [(c["model"], c["batch_size"], r["name"]) for c in configs for r in c["results"] if not r["ok"]]
    if args.json:
        for cfg in configs:
            for row in cfg["results"]:
                row["times"] = [float(t) for t in row["times"]]
        payload = {
            "machine": info,
            "n_examples": n,
            "repeats": repeats,
            "modes": modes,
            "configs": configs,
            "compile_times": ct,
            "wrong_results": wrong,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        Path(args.json).write_text(json.dumps(payload, indent=1))
        log(f"\nwrote {args.json}")
    if wrong:
        log("\n!!! CORRECTNESS FAILURE: these implementations did not reproduce NumPy's parameters:")
        for w in wrong:
            log(f"!!!   {w[0]} bs {w[1]}: {w[2]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

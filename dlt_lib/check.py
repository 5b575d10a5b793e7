"""Checks for the exercises: test a reader's function on cases generated here.

Each ``check.<name>(your_function)`` builds fresh random cases, runs your
function on them (compiling it first when it returns a PyTensor expression),
compares with the library's reference and returns a :class:`CheckResult`
that says what was right or what went wrong, on which input::

    from dlt_lib import check
    check.zero_one_loss(my_zero_one_loss)
    # ✔ zero_one_loss: correct on all 6 cases.

Nothing here raises by default, so a wrong answer prints a diagnosis rather
than stopping the notebook; pass ``strict=True`` to raise instead (for tests
and autograders).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytensor
import pytensor.tensor as pt

from dlt_lib import backend


@dataclass
class CheckResult:
    name: str
    passed: int
    total: int
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.passed == self.total and not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"✔ {self.name}: correct on all {self.total} cases."
        lines = [f"✘ {self.name}: {self.passed} of {self.total} cases correct."]
        lines += [f"  - {p}" for p in self.problems[:3]]
        if len(self.problems) > 3:
            lines.append(f"  ... and {len(self.problems) - 3} more.")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle):  # what Jupyter shows
        printer.text(str(self))


def _evaluate(fn, *values, symbolic_types):
    """Call ``fn`` on symbolic inputs and compile, or on NumPy arrays if it does not build a graph."""
    inputs = [t() for t in symbolic_types]
    try:
        out = fn(*inputs)
    except Exception:  # noqa: BLE001 - it may be a NumPy function: try it on arrays instead
        out = None
    if isinstance(out, pt.TensorVariable):
        compiled = pytensor.function(inputs, out, mode=backend.get_mode(), on_unused_input="ignore")
        return np.asarray(compiled(*values))
    return np.asarray(fn(*values))


def _run(name, fn, cases, reference, symbolic_types, rtol=1e-5, atol=1e-6, strict=False):
    result = CheckResult(name, 0, len(cases))
    for i, values in enumerate(cases):
        expected = np.asarray(reference(*values))
        try:
            got = _evaluate(fn, *values, symbolic_types=symbolic_types)
        except Exception as exc:  # noqa: BLE001 - report any failure of the reader's code
            result.problems.append(f"case {i + 1}: your function raised {type(exc).__name__}: {exc}")
            continue
        if got.shape != expected.shape:
            result.problems.append(
                f"case {i + 1}: expected a result of shape {expected.shape}, got shape {got.shape} "
                "(did you reduce over the wrong axis, or forget to reduce?)"
            )
        elif not np.allclose(got, expected, rtol=rtol, atol=atol):
            shapes = ", ".join(str(np.shape(v)) for v in values)
            result.problems.append(
                f"case {i + 1} (inputs of shapes {shapes}): expected {np.round(expected, 6).tolist()}, "
                f"got {np.round(got, 6).tolist()}"
            )
        else:
            result.passed += 1
    if strict and not result.ok:
        raise AssertionError(str(result))
    return result


def _probability_cases(rng, n_cases=6):
    cases = []
    for i in range(n_cases):
        n, k = int(rng.integers(1, 12)), int(rng.integers(2, 8))
        logits = rng.normal(size=(n, k)) * (3 if i % 2 else 1)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = (p / p.sum(axis=1, keepdims=True)).astype(pytensor.config.floatX)
        y = rng.integers(0, k, size=n).astype("int32")
        cases.append((p, y))
    return cases


def zero_one_loss(fn, seed: int = 0, strict: bool = False) -> CheckResult:
    """Check ``fn(p_y_given_x, y)`` returns the *number* of misclassified rows."""
    rng = np.random.default_rng(seed)
    return _run(
        "zero_one_loss",
        fn,
        _probability_cases(rng),
        lambda p, y: np.sum(np.argmax(p, axis=1) != y),
        (pt.matrix, pt.ivector),
        strict=strict,
    )


def negative_log_likelihood(fn, seed: int = 0, strict: bool = False) -> CheckResult:
    """Check ``fn(p_y_given_x, y)`` returns the *mean* negative log-likelihood of the labels."""
    rng = np.random.default_rng(seed)
    return _run(
        "negative_log_likelihood",
        fn,
        _probability_cases(rng),
        lambda p, y: -np.mean(np.log(p[np.arange(len(y)), y])),
        (pt.matrix, pt.ivector),
        rtol=1e-4,
        strict=strict,
    )


def _weight_cases(rng, n_cases=5):
    return [
        (rng.normal(size=(int(rng.integers(1, 6)), int(rng.integers(1, 6)))).astype(pytensor.config.floatX),)
        for _ in range(n_cases)
    ]


def l1_penalty(fn, seed: int = 0, strict: bool = False) -> CheckResult:
    """Check ``fn(W)`` returns ``sum |W|``."""
    rng = np.random.default_rng(seed)
    return _run(
        "l1_penalty",
        fn,
        _weight_cases(rng),
        lambda W: np.abs(W).sum(),
        (pt.matrix,),
        rtol=1e-4,
        strict=strict,
    )


def l2_penalty(fn, seed: int = 0, strict: bool = False) -> CheckResult:
    """Check ``fn(W)`` returns the *squared* L2 norm ``sum W**2``."""
    rng = np.random.default_rng(seed)
    return _run(
        "l2_penalty", fn, _weight_cases(rng), lambda W: (W**2).sum(), (pt.matrix,), rtol=1e-4, strict=strict
    )


def validation_frequency(fn, strict: bool = False) -> CheckResult:
    """Check ``fn(n_train_batches, patience)`` gives the tutorials' ``min(n_train_batches, patience // 2)``."""
    cases = [(np.int64(a), np.int64(b)) for a, b in [(83, 5000), (2500, 10000), (10, 10), (7, 3), (100, 150)]]

    result = CheckResult("validation_frequency", 0, len(cases))
    for n, p in cases:
        expected, got = min(int(n), int(p) // 2), fn(int(n), int(p))
        if not isinstance(got, (int, np.integer)):
            result.problems.append(
                f"n_train_batches={n}, patience={p}: you returned {got!r} of type {type(got).__name__}; "
                "a frequency counts minibatches, so it must be an int (use // for the division)."
            )
        elif got != expected:
            result.problems.append(f"n_train_batches={n}, patience={p}: expected {expected}, got {got}")
        else:
            result.passed += 1
    if strict and not result.ok:
        raise AssertionError(str(result))
    return result


def sgd_step(fn, seed: int = 0, strict: bool = False) -> CheckResult:
    """Check ``fn(param, grad, learning_rate)`` returns the new value ``param - learning_rate * grad``."""
    rng = np.random.default_rng(seed)
    cases = [
        (
            rng.normal(size=4).astype(pytensor.config.floatX),
            rng.normal(size=4).astype(pytensor.config.floatX),
            np.asarray(lr, dtype=pytensor.config.floatX),
        )
        for lr in (0.1, 0.01, 1.0, 0.5)
    ]
    return _run(
        "sgd_step", fn, cases, lambda p, g, lr: p - lr * g, (pt.vector, pt.vector, pt.scalar), strict=strict
    )


# ============================================================================
# Checks for the model chapters: softmax regression, the MLP, LeNet
# (book/softmax_regression.ipynb, book/mlp.ipynb, book/lenet.ipynb).
# Self-contained: they use only CheckResult and _run above.
# ============================================================================
def _finish(result, strict):
    if strict and not result.ok:
        raise AssertionError(str(result))
    return result


_FAILED = object()


def _call(result, label, fn, *args):
    """``fn(*args)``, or ``_FAILED`` after noting what it raised: a reader's error is reported, not raised."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        result.problems.append(f"{label}: your function raised {type(exc).__name__}: {exc}")
        return _FAILED


def _compare(result, label, got, expected, rtol=1e-5, atol=1e-6):
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if got.shape != expected.shape:
        result.problems.append(f"{label}: expected shape {expected.shape}, got {got.shape}")
    elif not np.all(np.isfinite(got)):
        result.problems.append(f"{label}: your result holds inf or NaN (did something overflow?)")
    elif not np.allclose(got, expected, rtol=rtol, atol=atol):
        worst = float(np.max(np.abs(got - expected)))
        result.problems.append(f"{label}: wrong values (largest difference {worst:.3g})")
    else:
        result.passed += 1


def log_softmax(fn, seed: int = 0, strict: bool = False) -> CheckResult:
    """Check ``fn(z)`` returns ``log softmax(z)`` row by row, finite even for scores of +-10,000."""
    rng = np.random.default_rng(seed)
    cases = [
        rng.normal(size=(4, 5)),
        rng.normal(size=(3, 10)) * 5,
        np.array([[1000.0, 0.0, -5.0], [-1e4, -1e4, -1e4], [88.0, 89.0, 90.0], [0.0, -120.0, -200.0]]),
        np.array([[3.0, 3.0]]),
    ]
    cases = [(c.astype(pytensor.config.floatX),) for c in cases]

    def reference(z):
        z = z.astype(np.float64)
        shifted = z - z.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    return _run("log_softmax", fn, cases, reference, (pt.matrix,), rtol=1e-5, atol=1e-4, strict=strict)


def softmax_regression_gradient(fn, seed: int = 0, strict: bool = False) -> CheckResult:
    """Check ``fn(X, y, W, b)`` returns ``(dW, db)``, the gradient of the *mean* NLL of softmax regression."""
    rng = np.random.default_rng(seed)
    result = CheckResult("softmax_regression_gradient", 0, 0)
    for case in range(4):
        n, d, k = int(rng.integers(1, 9)), int(rng.integers(1, 7)), int(rng.integers(2, 6))
        X, W = rng.normal(size=(n, d)), rng.normal(size=(d, k)) * (3 if case == 3 else 1)
        b, y = rng.normal(size=k), rng.integers(0, k, size=n)
        z = X @ W + b
        P = np.exp(z - z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        G = (P - np.eye(k)[y]) / n
        result.total += 2
        got = _call(result, f"case {case + 1}", fn, X.copy(), y.copy(), W.copy(), b.copy())
        if got is _FAILED:
            continue
        dW, db = got
        _compare(result, f"case {case + 1} ({n} examples), dW", dW, X.T @ G)
        _compare(result, f"case {case + 1} ({n} examples), db", db, G.sum(axis=0))
    return _finish(result, strict)


def tutorial_error_rate(fn, strict: bool = False) -> CheckResult:
    """Check ``fn(y_pred, y, batch_size)`` averages per-minibatch error rates over *full* minibatches only."""
    rng = np.random.default_rng(1)
    result = CheckResult("tutorial_error_rate", 0, 0)
    for n, batch_size in [(1429, 600), (10000, 600), (10000, 500), (50, 20), (7, 7)]:
        y = rng.integers(0, 10, size=n)
        y_pred = np.where(rng.random(n) < 0.1, rng.integers(0, 10, size=n), y)
        n_batches = n // batch_size
        expected = np.mean([np.mean(y_pred[i * batch_size : (i + 1) * batch_size] != y[i * batch_size : (i + 1) * batch_size])
                            for i in range(n_batches)])  # fmt: skip
        result.total += 1
        got = _call(result, f"n={n}, batch_size={batch_size}", fn, y_pred, y, batch_size)
        if got is _FAILED:
            continue
        got = float(got)
        if abs(got - expected) > 1e-9:
            every = np.mean(y_pred != y)
            hint = " (that is the rate over every example)" if abs(got - every) < 1e-12 else ""
            result.problems.append(
                f"n={n}, batch_size={batch_size}: expected {expected:.6f}, got {got:.6f}{hint}"
            )
        else:
            result.passed += 1
    return _finish(result, strict)


def glorot_bound(fn, strict: bool = False) -> CheckResult:
    """Check ``fn(n_in, n_out, activation)`` gives mlp.py's bound: sqrt(6 / (n_in + n_out)), x4 for "sigmoid"."""
    cases = [
        (784, 500, "tanh"),
        (784, 500, "sigmoid"),
        (500, 10, "tanh"),
        (3, 5, "sigmoid"),
        (800, 500, "tanh"),
    ]
    result = CheckResult("glorot_bound", 0, len(cases))
    for n_in, n_out, activation in cases:
        expected = np.sqrt(6.0 / (n_in + n_out)) * (4 if activation == "sigmoid" else 1)
        got = _call(result, f"{(n_in, n_out, activation)}", fn, n_in, n_out, activation)
        if got is _FAILED:
            continue
        got = float(got)
        if not np.isclose(got, expected, rtol=1e-6):
            result.problems.append(f"{(n_in, n_out, activation)}: expected {expected:.6f}, got {got:.6f}")
        else:
            result.passed += 1
    return _finish(result, strict)


def mlp_forward(fn, seed: int = 0, strict: bool = False) -> CheckResult:
    """Check ``fn(X, W1, b1, W2, b2)`` returns the class probabilities of a one-hidden-layer tanh MLP."""
    rng = np.random.default_rng(seed)
    result = CheckResult("mlp_forward", 0, 0)
    for case in range(4):
        n, d, h, k = (int(v) for v in rng.integers(1, 8, size=4))
        k = max(k, 2)
        X, W1, b1 = rng.normal(size=(n, d)), rng.normal(size=(d, h)), rng.normal(size=h)
        W2, b2 = rng.normal(size=(h, k)) * 4, rng.normal(size=k)
        z = np.tanh(X @ W1 + b1) @ W2 + b2
        P = np.exp(z - z.max(axis=1, keepdims=True))
        result.total += 1
        got = _call(result, f"case {case + 1}", fn, X, W1, b1, W2, b2)
        if got is _FAILED:
            continue
        _compare(result, f"case {case + 1}", got, P / P.sum(axis=1, keepdims=True))
    return _finish(result, strict)


def _conv_reference(x, w):
    from scipy import signal

    return np.array([[sum(signal.convolve(x[i, c], w[k, c], mode="valid") for c in range(x.shape[1]))
                      for k in range(w.shape[0])] for i in range(x.shape[0])])  # fmt: skip


def conv2d(fn, seed: int = 0, strict: bool = False) -> CheckResult:
    """Check ``fn(x, w)`` computes Theano's ``conv2d``: valid, filters flipped, summed over channels.

    ``x`` is ``(batch, channels, rows, cols)``, ``w`` is ``(filters, channels, rows, cols)``.
    """
    rng = np.random.default_rng(seed)
    result = CheckResult("conv2d", 0, 0)
    for case in range(5):
        n, c, k = (int(v) for v in rng.integers(1, 4, size=3))
        fr, fc = (int(v) for v in rng.integers(1, 4, size=2))
        if case == 0:
            fr, fc = 2, 3  # not square: rows and columns must not be swapped
        x = rng.normal(size=(n, c, fr + int(rng.integers(0, 5)), fc + int(rng.integers(0, 5))))
        w = rng.normal(size=(k, c, fr, fc))
        expected = _conv_reference(x, w)
        result.total += 1
        got = _call(result, f"case {case + 1}", fn, x.copy(), w.copy())
        if got is _FAILED:
            continue
        got = np.asarray(got)
        if (
            got.shape == expected.shape
            and not np.allclose(got, expected)
            and np.allclose(got, _conv_reference(x, w[:, :, ::-1, ::-1]))
        ):
            result.problems.append(
                f"case {case + 1}: you computed a cross-correlation; Theano's conv2d flips the filters first"
            )
            continue
        _compare(result, f"case {case + 1} (x {x.shape}, w {w.shape})", got, expected)
    return _finish(result, strict)


def max_pool_2d(fn, seed: int = 0, strict: bool = False) -> CheckResult:
    """Check ``fn(x, pool_rows, pool_cols)`` takes window maxima of a 4-d ``x``, dropping partial windows."""
    rng = np.random.default_rng(seed)
    result = CheckResult("max_pool_2d", 0, 0)
    for ph, pw, rows, cols in [(2, 2, 4, 4), (2, 2, 5, 7), (3, 2, 9, 4), (1, 3, 2, 8)]:
        x = rng.normal(size=(2, 3, rows, cols))
        expected = np.empty((2, 3, rows // ph, cols // pw))
        for r in range(rows // ph):
            for s in range(cols // pw):
                expected[:, :, r, s] = x[:, :, r * ph : (r + 1) * ph, s * pw : (s + 1) * pw].max(axis=(2, 3))
        result.total += 1
        got = _call(result, f"window {ph}x{pw} on {rows}x{cols}", fn, x.copy(), ph, pw)
        if got is _FAILED:
            continue
        _compare(result, f"window {ph}x{pw} on {rows}x{cols}", got, expected)
    return _finish(result, strict)


def lenet_shapes(fn, strict: bool = False) -> CheckResult:
    """Check ``fn(image_size, filter_size, pool, nkerns)`` gives the map shapes of a two-stage LeNet.

    Expected: a list of ``(channels, rows, cols)`` after each stage, and the
    number of inputs of the fully connected layer, as ``(stages, n_features)``.
    """
    cases = [
        ((28, 28), 5, 2, (20, 50)),
        ((32, 32), 5, 2, (6, 16)),
        ((28, 28), 3, 2, (8, 16)),
        ((29, 31), 4, 3, (2, 3)),
    ]
    result = CheckResult("lenet_shapes", 0, len(cases))
    for image, f, p, nkerns in cases:
        rows, cols, stages = image[0], image[1], []
        for k in nkerns:
            rows, cols = (rows - f + 1) // p, (cols - f + 1) // p
            stages.append((k, rows, cols))
        expected = (stages, nkerns[-1] * rows * cols)
        got = _call(result, f"{(image, f, p, nkerns)}", fn, image, f, p, nkerns)
        if got is _FAILED:
            continue
        try:
            got = ([tuple(int(v) for v in s) for s in got[0]], int(got[1]))
        except (TypeError, ValueError, IndexError):
            result.problems.append(
                f"{(image, f, p, nkerns)}: expected (list of stages, n_features); got {got!r}"
            )
            continue
        if got != expected:
            result.problems.append(f"{(image, f, p, nkerns)}: expected {expected}, got {got}")
        else:
            result.passed += 1
    return _finish(result, strict)

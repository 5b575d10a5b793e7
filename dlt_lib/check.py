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

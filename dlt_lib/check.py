"""Checks for the exercises: test a reader's function on cases generated here.

Each ``check.<name>(your_function)`` builds fresh random cases, runs your
function on them (compiling it first when it returns a PyTensor expression),
compares with the expected values and returns a :class:`CheckResult` that says
what was right or what went wrong, on which input, and -- for the usual
mistakes (a sum for a mean, a wrong axis, a flipped sign, ...) -- what the
mistake probably was::

    from dlt_lib import check
    check.zero_one_loss(my_zero_one_loss)
    # ✔ zero_one_loss: correct on all 6 cases.

Your function is run as untrusted code.  Whatever it returns (a PyTensor
expression, an array, a Python ``bool``, ``None``) and whatever it raises,
the result is a diagnosis, never a crash.  Each case may run for at most
``timeout`` seconds (default :data:`DEFAULT_TIMEOUT`); a function that takes
longer, such as an endless loop, is stopped and reported as failed.  A
function that calls the library's own answer (``dlt_lib.losses.zero_one_loss``
in the zero-one loss exercise) is reported too: write it yourself.

Nothing here raises by default, so a wrong answer prints a diagnosis rather
than stopping the notebook; pass ``strict=True`` to raise :class:`CheckFailed`
(an ``AssertionError``) instead, for tests and autograders (``python -m
dlt_lib.homework``); Jupyter shows it as the diagnosis alone.

Adding a check: write the reference as a NumPy function, generate cases, name
the library functions that would give the answer away and the mistakes you
expect, and call :func:`_run` -- see :func:`l1_penalty` for the shortest
example.  Chapters: every chapter's exercises; the homework appendix.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from dlt_lib import backend


def _timeout_from_environment() -> float:
    text = os.environ.get("DLT_CHECK_TIMEOUT", "3")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"DLT_CHECK_TIMEOUT must be a number of seconds, e.g. 3; got {text!r}.") from None


#: Seconds one case of a check may run your function before it is stopped
#: (``$DLT_CHECK_TIMEOUT``, default 3).  Change it here, or pass ``timeout=``
#: to a check (0 for no limit).
DEFAULT_TIMEOUT = _timeout_from_environment()


# --- the result ----------------------------------------------------------------


@dataclass
class CheckResult:
    """What a check found: how many cases passed, and a diagnosis for each that did not.

    Used by the exercises of every chapter; for grading, see ``book/homework.md``.
    """

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


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong answer: what it is, and a NumPy function computing it.

    Used by the exercises of every chapter; for grading, see ``book/homework.md``.
    """

    hint: str
    compute: Callable


# --- running the reader's function as untrusted code ---------------------------


class CheckTimeout(BaseException):
    """Raised inside the reader's function when a case runs too long.

    A ``BaseException``, so that an ``except Exception`` in the reader's own
    code does not swallow it.

    Used by the exercises of every chapter; for grading, see ``book/homework.md``.
    """


class CallsReference(Exception):
    """The reader's function called one of the library functions that give the answer away.

    Used by the exercises of every chapter; for grading, see ``book/homework.md``.
    """


def _raise_timeout(signum, frame):
    raise CheckTimeout


@contextlib.contextmanager
def _deadline(seconds):
    """Raise :class:`CheckTimeout` in this thread after ``seconds`` (``None``: no limit)."""
    if not seconds or seconds <= 0:
        yield
    elif threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        previous = signal.signal(signal.SIGALRM, _raise_timeout)  # interrupts time.sleep too
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    else:  # another thread, or no SIGALRM (Windows): a watchdog raises in this thread
        target, done = threading.get_ident(), threading.Event()

        def interrupt():
            if not done.is_set():
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(target), ctypes.py_object(CheckTimeout)
                )

        watchdog = threading.Timer(seconds, interrupt)
        watchdog.start()
        try:
            yield
        finally:
            done.set()
            watchdog.cancel()


@contextlib.contextmanager
def _forbid(references: Sequence[Callable]):
    """Raise :class:`CallsReference` when any of ``references`` is called, however it was imported."""
    codes = {getattr(f, "__code__", None): f for f in references} if references else {}
    codes.pop(None, None)
    if not codes:
        yield
        return
    previous = sys.getprofile()

    def watch(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            sys.setprofile(previous)
            f = codes[frame.f_code]
            raise CallsReference(f"{f.__module__}.{f.__qualname__}")

    sys.setprofile(watch)
    try:
        yield
    finally:
        sys.setprofile(previous)


def _guarded(fn, args, timeout, references):
    """``fn(*args)`` with a deadline, a watch on the references and warnings kept quiet."""
    with warnings.catch_warnings(), _deadline(timeout), _forbid(references):
        warnings.simplefilter("ignore")  # a warning on stderr would cost a test its points in nbgrader
        return fn(*args)


def _where(exc: BaseException) -> str:
    """`` (line N of your code: ...)`` for the innermost frame outside the libraries, if any."""
    skip = (os.path.dirname(np.__file__), os.path.dirname(pytensor.__file__), os.path.dirname(__file__))
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(skip)]
    frames = [f for f in frames if f.filename != __file__]
    if not frames or not frames[-1].line:
        return ""
    return f" (line {frames[-1].lineno} of your code: `{frames[-1].line.strip()}`)"


def _describe_exception(exc: BaseException, timeout) -> str:
    if isinstance(exc, CheckTimeout):
        return (
            f"your function did not finish within {timeout:g} s (an endless loop?) and was stopped; "
            "the remaining cases were not run"
        )
    if isinstance(exc, CallsReference):
        return (
            f"your function calls the library's own answer, {exc}; the exercise is to write it "
            "yourself (with pytensor.tensor or NumPy), so this case counts as failed"
        )
    message = _first_sentence(exc)
    text = f"your function raised {type(exc).__name__}{': ' + message if message else ''}{_where(exc)}"
    if "mismatch" in message or "shape" in message:
        text += " -- shapes that do not fit: did you reduce over the wrong axis?"
    return text


def _first_sentence(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.split(". ")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- turning whatever came back into an array ----------------------------------


class _Unusable(Exception):
    """What the reader's function returned cannot be compared with a number or an array."""


_BOOL_HINT = (
    "your function returned the Python bool {value}, not an expression: `!=` and `==` between "
    "PyTensor variables compare the Python objects, not their values; use pt.neq(a, b) or pt.eq(a, b)"
)


def _compile(inputs, out):
    try:
        return pytensor.function(inputs, out, mode=backend.get_mode(), on_unused_input="ignore")
    except Exception as exc:  # noqa: BLE001 - any graph the reader built
        raise _Unusable(
            f"your expression could not be compiled ({type(exc).__name__}: {_first_sentence(exc)}); "
            "build it from the function's arguments only"
        ) from None


def _as_array(out, symbolic: bool):
    """``out`` as a NumPy array of numbers, or :class:`_Unusable` saying why it is not one."""
    if out is None:
        raise _Unusable("your function returned None: did you forget `return`?")
    if isinstance(out, bool) and symbolic:
        raise _Unusable(_BOOL_HINT.format(value=out))
    if callable(out) or isinstance(out, (str, bytes, dict, set)):
        raise _Unusable(f"your function returned {type(out).__name__} {out!r:.60}, not a number or an array")
    try:
        array = np.asarray(out)
    except Exception as exc:  # noqa: BLE001 - e.g. a ragged list
        raise _Unusable(f"your result {out!r:.60} cannot be read as an array ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise _Unusable(f"your function returned {type(out).__name__} {out!r:.60}, not a number or an array")
    return array


class _Symbolic:
    """Evaluates the reader's function on every case, building and compiling its graph only once.

    The first case calls ``fn`` on symbolic inputs (``pt.matrix()``...); an
    expression is compiled once and run on each case's values, anything else
    is read as it is.  If the symbolic call raises, ``fn`` may be a NumPy
    function: each case then calls it on the arrays.  Whatever went wrong in
    the first call is reported again for every case.
    """

    def __init__(self, symbolic_types):
        self.symbolic_types = symbolic_types
        self.prepared = None  # values -> array, or the exception to raise for every case

    def __call__(self, fn, values, timeout, references):
        if self.prepared is None:
            self.prepared = self._prepare(fn, timeout, references)
        if isinstance(self.prepared, BaseException):
            raise self.prepared
        return self.prepared(values)

    def _prepare(self, fn, timeout, references):
        inputs = [t() for t in self.symbolic_types]
        try:
            out = _guarded(fn, inputs, timeout, references)
        except (CheckTimeout, CallsReference) as exc:
            return exc
        except Exception as symbolic_error:  # noqa: BLE001 - it may be a NumPy function: try arrays
            return functools.partial(
                _numeric, fn, timeout=timeout, references=references, error=symbolic_error
            )
        if not isinstance(out, Variable):
            return lambda values: _as_array(out, symbolic=True)
        try:
            compiled = _compile(inputs, out)
        except _Unusable as exc:
            return exc
        return lambda values: _as_array(_guarded(compiled, values, timeout, ()), symbolic=True)


def _numeric(fn, values, *, timeout, references, error):
    """``fn`` called on the case's arrays; if it raises too, the ``error`` of the symbolic call."""
    try:
        return _as_array(_guarded(fn, values, timeout, references), symbolic=False)
    except (CheckTimeout, CallsReference, _Unusable):
        raise
    except Exception:  # noqa: BLE001 - report the first failure, on the symbolic inputs
        raise error from None


# --- comparing -----------------------------------------------------------------


def _fmt(array) -> str:
    array = np.asarray(array)
    return str(np.round(array.astype(float), 6).tolist()) if array.dtype.kind in "biuf" else repr(array)


def _diagnose(got, expected, values, mistakes, rtol, atol) -> str | None:
    """``None`` if ``got`` matches ``expected``, else what went wrong (and which mistake it looks like)."""
    if got.shape == expected.shape and np.allclose(got, expected, rtol=rtol, atol=atol):
        return None
    shapes = ", ".join(str(np.shape(v)) for v in values)
    if got.shape != expected.shape:
        text = (
            f"expected a result of shape {expected.shape}, got shape {got.shape} (inputs of shapes {shapes}: "
            "did you reduce over the wrong axis, or forget to reduce?)"
        )
    elif not np.all(np.isfinite(got)) and np.all(np.isfinite(expected)):
        text = f"expected {_fmt(expected)}, got {_fmt(got)}: NaN or inf (a log of 0, or a division by 0?)"
    else:
        text = f"expected {_fmt(expected)}, got {_fmt(got)} (inputs of shapes {shapes})"
    for mistake in mistakes:
        with np.errstate(all="ignore"):
            wrong = np.asarray(mistake.compute(*values))
        if wrong.shape == got.shape and np.allclose(got, wrong, rtol=rtol, atol=atol):
            return f"{text}. This looks like {mistake.hint}"
    return text


def _run(
    name,
    fn,
    cases,
    reference,
    symbolic_types,
    *,
    mistakes=(),
    references=(),
    rtol=1e-5,
    atol=1e-6,
    strict=False,
    timeout=None,
    evaluate=None,
) -> CheckResult:
    """Run ``fn`` on every case, compare with ``reference``; the engine of every check.

    ``symbolic_types``: one PyTensor type per argument (``pt.matrix``...), to
    build and compile an expression; ``references``: library functions that
    must not be called; ``mistakes``: :class:`Mistake` s to recognise;
    ``evaluate(fn, values, timeout, references)`` replaces the default
    symbolic-or-NumPy call for checks of plain Python functions.
    """
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout  # read now: a notebook may change it
    evaluate = evaluate or _Symbolic(symbolic_types)
    result = CheckResult(name, 0, len(cases))
    if not callable(fn):
        result.problems.append(f"expected a function, got {type(fn).__name__} {fn!r:.60}")
        return _finish(result, strict)
    for i, values in enumerate(cases):
        stop = False
        try:
            got = evaluate(fn, values, timeout, references)
        except _Unusable as exc:
            problem = str(exc)
        except (Exception, CheckTimeout, SystemExit) as exc:  # noqa: BLE001 - report anything the code raises
            problem = _describe_exception(exc, timeout)
            # One endless loop is enough, and a reference call is not a mistake of one case.
            stop = isinstance(exc, (CheckTimeout, CallsReference))
        else:
            problem = _diagnose(got, np.asarray(reference(*values)), values, mistakes, rtol, atol)
        if problem is None:
            result.passed += 1
        else:
            result.problems.append(f"case {i + 1}: {problem}")
        if stop:
            break
    return _finish(result, strict)


class CheckFailed(AssertionError):
    """What ``strict=True`` raises: the diagnosis, shown in Jupyter without a traceback.

    Used by the exercises of every chapter; for grading, see ``book/homework.md``.
    """

    def _render_traceback_(self):  # IPython's hook: the diagnosis is the whole story
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


def _finish(result: CheckResult, strict: bool) -> CheckResult:
    if strict and not result.ok:
        raise CheckFailed(str(result))
    return result


#: For each check, the library functions whose call gives the answer away
#: (``"module.function"`` or ``"module.Class.method"`` inside ``dlt_lib``).
#: A test makes sure every name here exists, so a renamed function is noticed.
REFERENCES = {
    "zero_one_loss": ("losses.zero_one_loss", "losses.zero_one_rate", "models._Classifier.errors"),
    "negative_log_likelihood": (
        "losses.negative_log_likelihood",
        "losses.log_probabilities_of_labels",
        "models._Classifier.negative_log_likelihood",
    ),
    "l1_penalty": ("losses.l1_penalty",),
    "l2_penalty": ("losses.l2_penalty",),
    "validation_frequency": ("training.EarlyStopping.validation_frequency",),
    "sgd_step": ("updates.sgd",),
}


def library_function(path: str):
    """The object at ``path`` inside ``dlt_lib`` (``"losses.zero_one_loss"``), or None if it is gone.

    Used by the exercises of every chapter; for grading, see ``book/homework.md``.
    """
    module, _, rest = path.partition(".")
    try:
        obj = importlib.import_module(f"dlt_lib.{module}")
        for part in rest.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj


def references_of(check_name: str) -> list:
    """The library functions a reader's answer to ``check_name`` must not call.

    Used by the exercises of every chapter; for grading, see ``book/homework.md``.
    """
    found = [library_function(p) for p in REFERENCES.get(check_name, ())]
    return [f for f in found if f is not None]


# --- the checks: one function each; add yours below ----------------------------


def _probability_cases(rng, n_cases=6):
    cases = []
    for i in range(n_cases):
        n, k = int(rng.integers(2, 12)), int(rng.integers(3, 8))
        logits = rng.normal(size=(n, k)) * (3 if i % 2 else 1)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = (p / p.sum(axis=1, keepdims=True)).astype(pytensor.config.floatX)
        y = rng.integers(0, k, size=n).astype("int32")
        cases.append((p, y))
    return cases


def _mistakes_count(p, y):
    return np.sum(np.argmax(p, axis=1) != y)


def zero_one_loss(fn, seed: int = 0, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(p_y_given_x, y)`` returns the *number* of misclassified rows.

    Taught in ``book/losses.ipynb`` (its exercises).
    """
    mistakes = [
        Mistake(
            "the error *rate* (a mean); the zero-one loss counts the mistakes (a sum)",
            lambda p, y: np.mean(np.argmax(p, axis=1) != y),
        ),
        Mistake(
            "the number of *correct* rows; count those whose argmax differs from the label",
            lambda p, y: np.sum(np.argmax(p, axis=1) == y),
        ),
        Mistake(
            "an argmin where the prediction is the argmax", lambda p, y: np.sum(np.argmin(p, axis=1) != y)
        ),
    ]
    return _run(
        "zero_one_loss",
        fn,
        _probability_cases(np.random.default_rng(seed)),
        _mistakes_count,
        (pt.matrix, pt.ivector),
        mistakes=mistakes,
        strict=strict,
        timeout=timeout,
        references=references_of("zero_one_loss"),
    )


def _label_log_p(p, y):
    return np.log(p[np.arange(len(y)), y])


def negative_log_likelihood(
    fn, seed: int = 0, strict: bool = False, timeout: float | None = None
) -> CheckResult:
    """Check ``fn(p_y_given_x, y)`` returns the *mean* negative log-likelihood of the labels.

    Taught in ``book/losses.ipynb`` (its exercises).
    """
    mistakes = [
        Mistake(
            "the *sum* over the rows; the exercise asks for the mean",
            lambda p, y: -np.sum(_label_log_p(p, y)),
        ),
        Mistake("the log-likelihood: the sign is missing", lambda p, y: np.mean(_label_log_p(p, y))),
        Mistake(
            "a mean over every entry of log p, not only the labels' (use log_p[arange(n), y])",
            lambda p, y: -np.mean(np.log(p)),
        ),
        Mistake("the probabilities without the log", lambda p, y: -np.mean(p[np.arange(len(y)), y])),
    ]
    return _run(
        "negative_log_likelihood",
        fn,
        _probability_cases(np.random.default_rng(seed)),
        lambda p, y: -np.mean(_label_log_p(p, y)),
        (pt.matrix, pt.ivector),
        mistakes=mistakes,
        rtol=1e-4,
        strict=strict,
        timeout=timeout,
        references=references_of("negative_log_likelihood"),
    )


def _weight_cases(rng, n_cases=5):
    shapes = [(int(rng.integers(2, 6)), int(rng.integers(2, 6))) for _ in range(n_cases)]
    return [(rng.normal(size=s).astype(pytensor.config.floatX),) for s in shapes]


def l1_penalty(fn, seed: int = 0, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(W)`` returns ``sum |W|``.

    Taught in ``book/regularization.ipynb`` (its exercises).
    """
    mistakes = [
        Mistake("the plain sum: the absolute value is missing", lambda W: W.sum()),
        Mistake("a mean; the L1 penalty is a sum", lambda W: np.abs(W).mean()),
        Mistake("the squared L2 penalty (sum of squares)", lambda W: (W**2).sum()),
    ]
    return _run(
        "l1_penalty",
        fn,
        _weight_cases(np.random.default_rng(seed)),
        lambda W: np.abs(W).sum(),
        (pt.matrix,),
        mistakes=mistakes,
        rtol=1e-4,
        strict=strict,
        timeout=timeout,
        references=references_of("l1_penalty"),
    )


def l2_penalty(fn, seed: int = 0, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(W)`` returns the *squared* L2 norm ``sum W**2``.

    Taught in ``book/regularization.ipynb`` (its exercises).
    """
    mistakes = [
        Mistake("the L2 *norm*; the penalty is its square (no square root)", lambda W: np.sqrt((W**2).sum())),
        Mistake("half the penalty: the book's L2 penalty has no 1/2", lambda W: 0.5 * (W**2).sum()),
        Mistake("a mean; the penalty is a sum", lambda W: (W**2).mean()),
        Mistake("the L1 penalty", lambda W: np.abs(W).sum()),
    ]
    return _run(
        "l2_penalty",
        fn,
        _weight_cases(np.random.default_rng(seed)),
        lambda W: (W**2).sum(),
        (pt.matrix,),
        mistakes=mistakes,
        rtol=1e-4,
        strict=strict,
        timeout=timeout,
        references=references_of("l2_penalty"),
    )


def _call_plain(fn, values, timeout, references):
    """For checks of plain Python functions: call with Python ints, insist on an int back."""
    got = _guarded(fn, [int(v) for v in values], timeout, references)
    if got is None:
        raise _Unusable("your function returned None: did you forget `return`?")
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
        raise _Unusable(
            f"you returned {got!r:.60} of type {type(got).__name__}; a frequency counts minibatches, "
            "so it must be an int (use // for the division)"
        )
    return np.asarray(got)


def validation_frequency(fn, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(n_train_batches, patience)`` gives the tutorials' ``min(n_train_batches, patience // 2)``.

    Taught in ``book/early_stopping.ipynb`` (its exercises).
    """
    cases = [(83, 5000), (2500, 10000), (10, 10), (7, 3), (100, 150)]
    mistakes = [
        Mistake("the patience where the tutorials take half of it", lambda n, p: min(n, p)),
        Mistake("a max where the tutorials take the min", lambda n, p: max(n, p // 2)),
        Mistake("an off-by-one", lambda n, p: min(n, p // 2) + 1),
        Mistake("an off-by-one", lambda n, p: min(n, p // 2) - 1),
    ]
    return _run(
        "validation_frequency",
        fn,
        cases,
        lambda n, p: min(n, p // 2),
        (),
        mistakes=mistakes,
        strict=strict,
        timeout=timeout,
        evaluate=_call_plain,
        references=references_of("validation_frequency"),
    )


def sgd_step(fn, seed: int = 0, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(param, grad, learning_rate)`` returns the new value ``param - learning_rate * grad``.

    Taught in ``book/getting_started.ipynb`` (its exercises).
    """
    rng = np.random.default_rng(seed)
    floatX = pytensor.config.floatX
    cases = [
        (rng.normal(size=4).astype(floatX), rng.normal(size=4).astype(floatX), np.asarray(lr, dtype=floatX))
        for lr in (0.1, 0.01, 0.5, 0.25)
    ]
    mistakes = [
        Mistake("a step *up* the gradient: subtract learning_rate * grad", lambda p, g, lr: p + lr * g),
        Mistake("a step without the learning rate", lambda p, g, lr: p - g),
        Mistake(
            "the step alone; return the new parameter value, param - learning_rate * grad",
            lambda p, g, lr: -lr * g,
        ),
        Mistake("a division by the learning rate", lambda p, g, lr: p - g / lr),
    ]
    return _run(
        "sgd_step",
        fn,
        cases,
        lambda p, g, lr: p - lr * g,
        (pt.vector, pt.vector, pt.scalar),
        mistakes=mistakes,
        strict=strict,
        timeout=timeout,
        references=references_of("sgd_step"),
    )


# ============================================================================
# Checks for the model chapters: softmax regression, the MLP, LeNet
# (book/softmax_regression.ipynb, book/mlp.ipynb, book/lenet.ipynb).
# ============================================================================
REFERENCES.update(
    {
        "log_softmax": ("models.log_softmax",),
        "glorot_bound": ("models.glorot_uniform",),
        "mlp_forward": ("models._Classifier.predict_proba",),
        "conv2d": ("conv.conv2d", "conv.im2col"),
        "max_pool_2d": ("conv.max_pool_2d", "conv.pool_max"),
    }
)


def _call_numpy(fn, values, timeout, references):
    """For answers written in NumPy: call ``fn`` on the case's values, read the result as an array."""
    return _as_array(_guarded(fn, values, timeout, references), symbolic=False)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def log_softmax(fn, seed: int = 0, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(z)`` returns ``log softmax(z)`` row by row, finite even for scores of +-10,000.

    Taught in ``book/softmax_regression.ipynb`` (its exercises).
    """
    rng = np.random.default_rng(seed)
    floatX = pytensor.config.floatX
    cases = [
        rng.normal(size=(4, 5)),
        rng.normal(size=(3, 10)) * 5,
        np.array([[1000.0, 0.0, -5.0], [-1e4, -1e4, -1e4], [88.0, 89.0, 90.0], [0.0, -120.0, -200.0]]),
        np.array([[3.0, 3.0]]),
    ]
    cases = [(c.astype(floatX),) for c in cases]
    mistakes = [
        Mistake(
            "the definition, z - log(sum(exp(z))): exp overflows; subtract the row's maximum first",
            lambda z: z - np.log(np.exp(z).sum(axis=1, keepdims=True)),
        ),
        Mistake(
            "the shifted scores alone: the log-sum-exp is missing", lambda z: z - z.max(axis=1, keepdims=True)
        ),
        Mistake("the softmax, not its log", lambda z: _softmax(z)),
    ]
    return _run(
        "log_softmax",
        fn,
        cases,
        _log_softmax,
        (pt.matrix,),
        mistakes=mistakes,
        rtol=1e-5,
        atol=1e-4,
        strict=strict,
        timeout=timeout,
        references=references_of("log_softmax"),
    )


def _gradient_pair(fn, values, timeout, references):
    """``fn`` returns ``(dW, db)``: both, flattened into one array to compare."""
    got = _guarded(fn, [np.array(v, copy=True) for v in values], timeout, references)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise _Unusable(
            f"expected the pair (dW, db); your function returned {type(got).__name__} {got!r:.60}"
        )
    dW, db = (_as_array(g, symbolic=False) for g in got)
    return np.concatenate([dW.ravel(), db.ravel(), np.asarray(dW.shape, dtype=float)])


def _softmax_gradient(X, y, W, b, scale=1.0, minus_y=True):
    G = _softmax(X @ W + b) - (np.eye(W.shape[1])[y] if minus_y else 0)
    G = G * scale / len(X)
    dW = X.T @ G
    return np.concatenate([dW.ravel(), G.sum(axis=0), np.asarray(dW.shape, dtype=float)])


def softmax_regression_gradient(
    fn, seed: int = 0, strict: bool = False, timeout: float | None = None
) -> CheckResult:
    """Check ``fn(X, y, W, b)`` returns ``(dW, db)``, the gradient of the *mean* NLL of softmax regression.

    Taught in ``book/softmax_regression.ipynb`` (its exercises).
    """
    rng = np.random.default_rng(seed)
    cases = []
    for case in range(4):
        n, d, k = int(rng.integers(2, 9)), int(rng.integers(2, 7)), int(rng.integers(3, 6))
        X, W = rng.normal(size=(n, d)), rng.normal(size=(d, k)) * (3 if case == 3 else 1)
        cases.append((X, rng.integers(0, k, size=n), W, rng.normal(size=k)))
    mistakes = [
        Mistake(
            "the gradient of the *sum*: divide by the number of examples",
            lambda *v: _softmax_gradient(*v, len(v[0])),
        ),
        Mistake("a flipped sign: the gradient is P - Y, not Y - P", lambda *v: _softmax_gradient(*v, -1.0)),
        Mistake("P without the one-hot labels subtracted", lambda *v: _softmax_gradient(*v, minus_y=False)),
    ]
    return _run(
        "softmax_regression_gradient",
        fn,
        cases,
        _softmax_gradient,
        (),
        mistakes=mistakes,
        strict=strict,
        timeout=timeout,
        evaluate=_gradient_pair,
    )


def _tutorial_rate(y_pred, y, batch_size, partial=False):
    n = len(y) if partial else len(y) // batch_size * batch_size
    starts = range(0, n, batch_size)
    return np.mean([np.mean(y_pred[i : i + batch_size] != y[i : i + batch_size]) for i in starts])


def _plain_number(fn, values, timeout, references):
    """For answers that return one number: call ``fn`` on the values as they are."""
    return _as_array(_guarded(fn, values, timeout, references), symbolic=False).astype(float)


def tutorial_error_rate(fn, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(y_pred, y, batch_size)`` averages per-minibatch error rates over *full* minibatches only.

    Taught in ``book/softmax_regression.ipynb`` (its exercises).
    """
    rng = np.random.default_rng(1)
    cases = []
    for n, batch_size in [(1429, 600), (10000, 600), (10000, 500), (50, 20), (7, 7)]:
        y = rng.integers(0, 10, size=n)
        cases.append((np.where(rng.random(n) < 0.1, rng.integers(0, 10, size=n), y), y, batch_size))
    mistakes = [
        Mistake(
            "the rate over every example; the tutorials drop the last, partial minibatch",
            lambda p, y, b: np.mean(p != y),
        ),
        Mistake(
            "a mean that includes the last, partial minibatch",
            lambda p, y, b: _tutorial_rate(p, y, b, partial=True),
        ),
    ]
    return _run(
        "tutorial_error_rate",
        fn,
        cases,
        _tutorial_rate,
        (),
        mistakes=mistakes,
        rtol=0,
        atol=1e-9,
        strict=strict,
        timeout=timeout,
        evaluate=_plain_number,
    )


def glorot_bound(fn, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(n_in, n_out, activation)`` gives mlp.py's bound: sqrt(6 / (n_in + n_out)), x4 for "sigmoid".

    Taught in ``book/mlp.ipynb`` (its exercises).
    """
    cases = [
        (784, 500, "tanh"),
        (784, 500, "sigmoid"),
        (500, 10, "tanh"),
        (3, 5, "sigmoid"),
        (800, 500, "tanh"),
    ]

    def bound(n_in, n_out, activation, factor=4, numerator=6.0):
        return np.sqrt(numerator / (n_in + n_out)) * (factor if activation == "sigmoid" else 1)

    mistakes = [
        Mistake(
            "tanh's bound for the sigmoid too: mlp.py multiplies it by 4", lambda i, o, a: bound(i, o, a, 1)
        ),
        Mistake(
            "the standard deviation sqrt(2 / (n_in + n_out)), not the bound",
            lambda i, o, a: bound(i, o, a, numerator=2.0),
        ),
        Mistake("the fan-in alone: the bound uses n_in + n_out", lambda i, o, a: bound(i, 0, a)),
    ]
    return _run(
        "glorot_bound",
        fn,
        cases,
        bound,
        (),
        mistakes=mistakes,
        rtol=1e-6,
        strict=strict,
        timeout=timeout,
        evaluate=_plain_number,
        references=references_of("glorot_bound"),
    )


def mlp_forward(fn, seed: int = 0, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(X, W1, b1, W2, b2)`` returns the class probabilities of a one-hidden-layer tanh MLP.

    Taught in ``book/mlp.ipynb`` (its exercises).
    """
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(4):
        n, d, h, k = (int(v) for v in rng.integers(2, 8, size=4))
        cases.append(
            (
                rng.normal(size=(n, d)),
                rng.normal(size=(d, h)),
                rng.normal(size=h),
                rng.normal(size=(h, k)) * 4,
                rng.normal(size=k),
            )
        )
    mistakes = [
        Mistake("the scores, without the softmax", lambda X, W1, b1, W2, b2: np.tanh(X @ W1 + b1) @ W2 + b2),
        Mistake(
            "an MLP without its nonlinearity", lambda X, W1, b1, W2, b2: _softmax((X @ W1 + b1) @ W2 + b2)
        ),
        Mistake(
            "the hidden layer's bias forgotten", lambda X, W1, b1, W2, b2: _softmax(np.tanh(X @ W1) @ W2 + b2)
        ),
    ]
    return _run(
        "mlp_forward",
        fn,
        cases,
        lambda X, W1, b1, W2, b2: _softmax(np.tanh(X @ W1 + b1) @ W2 + b2),
        (),
        mistakes=mistakes,
        strict=strict,
        timeout=timeout,
        evaluate=_call_numpy,
        references=references_of("mlp_forward"),
    )


def _conv_reference(x, w):
    from scipy import signal

    return np.array([[sum(signal.convolve(x[i, c], w[k, c], mode="valid") for c in range(x.shape[1]))
                      for k in range(w.shape[0])] for i in range(x.shape[0])])  # fmt: skip


def conv2d(fn, seed: int = 0, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(x, w)`` computes Theano's ``conv2d``: valid, filters flipped, summed over channels.

    ``x`` is ``(batch, channels, rows, cols)``, ``w`` is ``(filters, channels, rows, cols)``.
    Taught in ``book/lenet.ipynb`` (its exercises).
    """
    rng = np.random.default_rng(seed)
    cases = []
    for case in range(5):
        n, c, k = (int(v) for v in rng.integers(1, 4, size=3))
        fr, fc = (2, 3) if case == 0 else (int(v) for v in rng.integers(2, 4, size=2))  # not square once
        c = max(c, 2) if case == 1 else c  # several channels at least once
        x = rng.normal(size=(n, c, fr + int(rng.integers(0, 5)), fc + int(rng.integers(0, 5))))
        cases.append((x, rng.normal(size=(k, c, fr, fc))))
    mistakes = [
        Mistake(
            "a cross-correlation (PyTorch's Conv2d): Theano's conv2d flips the filters first",
            lambda x, w: _conv_reference(x, w[:, :, ::-1, ::-1]),
        ),
        Mistake(
            "the first channel only: a map sums over every channel",
            lambda x, w: _conv_reference(x[:, :1], w[:, :1]),
        ),
    ]
    return _run(
        "conv2d",
        fn,
        cases,
        _conv_reference,
        (),
        mistakes=mistakes,
        strict=strict,
        timeout=timeout,
        evaluate=_call_numpy,
        references=references_of("conv2d"),
    )


def _pool_reference(x, rows, cols):
    n, c, r, s = x.shape[0], x.shape[1], x.shape[2] // rows, x.shape[3] // cols
    return x[:, :, : r * rows, : s * cols].reshape(n, c, r, rows, s, cols).max(axis=(3, 5))


def max_pool_2d(fn, seed: int = 0, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(x, pool_rows, pool_cols)`` takes window maxima of a 4-d ``x``, dropping partial windows.

    Taught in ``book/lenet.ipynb`` (its exercises).
    """
    rng = np.random.default_rng(seed)
    cases = [
        (rng.normal(size=(2, 3, r, s)), a, b)
        for a, b, r, s in [(2, 2, 4, 4), (2, 2, 5, 7), (3, 2, 9, 4), (1, 3, 2, 8)]
    ]
    mistakes = [
        Mistake("min-pooling: keep each window's maximum", lambda x, a, b: -_pool_reference(-x, a, b)),
        Mistake(
            "mean-pooling: keep each window's maximum",
            lambda x, a, b: (
                _pool_reference(x, a, b) * 0
                + np.array(
                    [
                        [
                            x[i, k, : x.shape[2] // a * a, : x.shape[3] // b * b]
                            .reshape(x.shape[2] // a, a, x.shape[3] // b, b)
                            .mean(axis=(1, 3))
                            for k in range(x.shape[1])
                        ]
                        for i in range(x.shape[0])
                    ]
                )
            ),
        ),  # fmt: skip
    ]
    return _run(
        "max_pool_2d",
        fn,
        cases,
        _pool_reference,
        (),
        mistakes=mistakes,
        strict=strict,
        timeout=timeout,
        evaluate=_call_numpy,
        references=references_of("max_pool_2d"),
    )


def _shapes_as_array(fn, values, timeout, references):
    """``fn`` returns ``(stages, n_features)``: read as one array of numbers."""
    got = _guarded(fn, values, timeout, references)
    try:
        stages, n_features = got
        return np.array([v for stage in stages for v in stage] + [n_features], dtype=float)
    except (TypeError, ValueError):
        raise _Unusable(
            f"expected (list of (channels, rows, cols), n_features); your function returned {got!r:.80}"
        ) from None


def _lenet_shapes(image, f, p, nkerns, pool=True, channels=True):
    rows, cols = image
    stages = []
    for k in nkerns:
        rows, cols = (rows - f + 1) // (p if pool else 1), (cols - f + 1) // (p if pool else 1)
        stages.append((k, rows, cols))
    n = (nkerns[-1] if channels else 1) * rows * cols
    return np.array([v for stage in stages for v in stage] + [n], dtype=float)


def lenet_shapes(fn, strict: bool = False, timeout: float | None = None) -> CheckResult:
    """Check ``fn(image_size, filter_size, pool, nkerns)`` gives the map shapes of a two-stage LeNet.

    Expected: ``(stages, n_features)``, a list of ``(channels, rows, cols)``
    after each convolution-pooling stage, and the number of inputs of the
    fully connected layer.  Taught in ``book/lenet.ipynb`` (its exercises).
    """
    cases = [
        ((28, 28), 5, 2, (20, 50)),
        ((32, 32), 5, 2, (6, 16)),
        ((28, 28), 3, 2, (8, 16)),
        ((29, 31), 4, 3, (2, 3)),
    ]
    mistakes = [
        Mistake(
            "the pooling forgotten: each stage divides rows and columns by the window",
            lambda *v: _lenet_shapes(*v, pool=False),
        ),
        Mistake(
            "n_features without the channels: it is channels x rows x cols",
            lambda *v: _lenet_shapes(*v, channels=False),
        ),
    ]
    return _run(
        "lenet_shapes",
        fn,
        cases,
        _lenet_shapes,
        (),
        mistakes=mistakes,
        rtol=0,
        atol=0,
        strict=strict,
        timeout=timeout,
        evaluate=_shapes_as_array,
    )

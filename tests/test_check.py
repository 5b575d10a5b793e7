"""The exercise checkers accept right answers, and diagnose wrong, hostile and broken ones.

Every check is run on student code, in notebooks and under nbgrader: whatever
the function returns or raises, however long it runs, the check must report,
not crash or hang.
"""

import inspect
import time

import numpy as np
import pytensor.tensor as pt
import pytest
from check_answers_models import MODEL_RIGHT, MODEL_WRONG

from dlt_lib import check, losses, training, updates
from dlt_lib.losses import zero_one_loss as imported_reference


def right_zero_one(p, y):
    return pt.sum(pt.neq(pt.argmax(p, axis=1), y))


def right_nll(p, y):
    return -pt.mean(pt.log(p)[pt.arange(y.shape[0]), y])


RIGHT = {
    "zero_one_loss": right_zero_one,
    "negative_log_likelihood": right_nll,
    "l1_penalty": lambda W: pt.sum(abs(W)),
    "l2_penalty": lambda W: pt.sum(W**2),
    "sgd_step": lambda p, g, lr: p - lr * g,
    "validation_frequency": lambda n, p: min(n, p // 2),
}

# Plausible wrong answers for every check, each with a piece of the diagnosis it must give.
WRONG = {
    "zero_one_loss": [
        ("rate for count", lambda p, y: pt.mean(pt.neq(pt.argmax(p, axis=1), y)), "error *rate*"),
        ("wrong axis", lambda p, y: pt.sum(pt.neq(pt.argmax(p, axis=0), y)), "wrong axis"),
        ("counts the right ones", lambda p, y: pt.sum(pt.eq(pt.argmax(p, axis=1), y)), "*correct* rows"),
        ("argmin", lambda p, y: pt.sum(pt.neq(pt.argmin(p, axis=1), y)), "argmin"),
        ("no reduction", lambda p, y: pt.neq(pt.argmax(p, axis=1), y), "forget to reduce"),
        ("off by one", lambda p, y: pt.sum(pt.neq(pt.argmax(p, axis=1), y)) + 1, "expected"),
        ("Python's !=", lambda p, y: pt.argmax(p, axis=1) != y, "pt.neq"),
    ],
    "negative_log_likelihood": [
        ("sum for mean", lambda p, y: -pt.sum(pt.log(p)[pt.arange(y.shape[0]), y]), "*sum*"),
        ("sign", lambda p, y: pt.mean(pt.log(p)[pt.arange(y.shape[0]), y]), "sign"),
        ("all entries", lambda p, y: -pt.mean(pt.log(p)), "every entry"),
        ("no log", lambda p, y: -pt.mean(p[pt.arange(y.shape[0]), y]), "without the log"),
        (
            "wrong axis",
            lambda p, y: -pt.mean(pt.log(p)[pt.arange(y.shape[0]), y], axis=None) * 0 + 1,
            "expected",
        ),
        ("no reduction", lambda p, y: -pt.log(p)[pt.arange(y.shape[0]), y], "forget to reduce"),
    ],
    "l1_penalty": [
        ("no absolute value", lambda W: pt.sum(W), "absolute value"),
        ("mean for sum", lambda W: pt.mean(abs(W)), "a mean"),
        ("squares", lambda W: pt.sum(W**2), "squared L2"),
        ("one axis only", lambda W: pt.sum(abs(W), axis=0), "wrong axis"),
    ],
    "l2_penalty": [
        ("norm, not squared", lambda W: pt.sqrt(pt.sum(W**2)), "L2 *norm*"),
        ("with 1/2", lambda W: 0.5 * pt.sum(W**2), "no 1/2"),
        ("mean for sum", lambda W: pt.mean(W**2), "a mean"),
        ("L1 instead", lambda W: pt.sum(abs(W)), "the L1 penalty"),
    ],
    "sgd_step": [
        ("sign", lambda p, g, lr: p + lr * g, "*up* the gradient"),
        ("forgotten learning rate", lambda p, g, lr: p - g, "without the learning rate"),
        ("step only", lambda p, g, lr: -lr * g, "the step alone"),
        ("divides", lambda p, g, lr: p - g / lr, "division"),
    ],
    "validation_frequency": [
        ("float division", lambda n, p: min(n, p / 2), "use //"),
        ("whole patience", lambda n, p: min(n, p), "half of it"),
        ("max for min", lambda n, p: max(n, p // 2), "a max"),
        ("off by one", lambda n, p: min(n, p // 2) + 1, "off-by-one"),
        ("no return", lambda n, p: None, "forget `return`"),
    ],
}
# The model chapters' checks (8-10): their answers are in check_answers_models.py.
RIGHT.update(MODEL_RIGHT)
WRONG.update(MODEL_WRONG)


def _checks():
    """Every public check in dlt_lib.check: a function whose first parameter is ``fn``."""
    return {
        name: f
        for name, f in vars(check).items()
        if inspect.isfunction(f)
        and f.__module__ == check.__name__
        and not name.startswith("_")
        and list(inspect.signature(f).parameters)[:1] == ["fn"]
    }


def test_every_check_has_right_and_wrong_answers_here():
    names = set(_checks())
    assert names >= set(RIGHT), "a check listed here is gone from dlt_lib.check"
    assert names <= set(RIGHT) and names <= set(WRONG), (
        f"add a right answer and plausible wrong answers for {sorted(names - set(WRONG))} to this file"
    )


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes_even_strict(name):
    result = _checks()[name](RIGHT[name], strict=True)
    assert result.ok and str(result).startswith("✔")


@pytest.mark.parametrize(
    "name, label, wrong, hint",
    [(name, label, wrong, hint) for name, cases in WRONG.items() for label, wrong, hint in cases],
    ids=[f"{name}-{label}" for name, cases in WRONG.items() for label, *_ in cases],
)
def test_plausible_wrong_answer_is_rejected_with_a_diagnosis(name, label, wrong, hint):
    checker = _checks()[name]
    result = checker(wrong)
    assert not result.ok and str(result).startswith("✘"), f"{name} accepted a wrong answer ({label})"
    assert hint in str(result), str(result)
    with pytest.raises(AssertionError, match="✘"):
        checker(wrong, strict=True)


def test_numpy_answers_are_accepted():
    assert check.l1_penalty(lambda W: np.abs(W).sum()).ok
    assert check.zero_one_loss(lambda p, y: np.sum(np.argmax(p, axis=1) != y)).ok


# --- hostile and broken code: issue 11, section 4 --------------------------------


def test_an_exception_is_reported_with_the_line_that_raised():
    def broken(n_train_batches, patience):
        return n_train_batches // 0

    result = check.validation_frequency(broken)
    assert result.passed == 0
    assert "raised ZeroDivisionError" in str(result) and "return n_train_batches // 0" in str(result)


@pytest.mark.parametrize(
    "returned, hint",
    [
        (None, "forget `return`"),
        ("text", "not a number"),
        ([1, [2, 3]], "cannot be read"),
        (print, "not a number"),
    ],
)
def test_any_result_type_is_diagnosed(returned, hint):
    result = check.zero_one_loss(lambda p, y: returned)
    assert not result.ok and hint in str(result)


def test_something_that_is_not_a_function():
    result = check.l1_penalty(42)
    assert result.passed == 0 and "expected a function" in str(result)


def test_a_graph_that_cannot_be_compiled():
    result = check.zero_one_loss(lambda p, y: pt.sum(pt.neq(pt.argmax(p, axis=1), pt.ivector("other"))))
    assert not result.ok and "could not be compiled" in str(result)


def test_exit_is_reported_not_obeyed():
    result = check.l2_penalty(lambda W: exit(3))
    assert not result.ok and "SystemExit" in str(result)


@pytest.mark.parametrize("how", ["busy loop", "sleep", "swallows Exception"])
def test_an_endless_function_is_stopped_after_the_timeout(how):
    def busy(W):
        while True:
            pass

    def sleeps(W):
        time.sleep(60)

    def swallows(W):
        try:
            while True:
                pass
        except Exception:
            return 0

    fn = {"busy loop": busy, "sleep": sleeps, "swallows Exception": swallows}[how]
    start = time.perf_counter()
    result = check.l1_penalty(fn, timeout=0.5)
    elapsed = time.perf_counter() - start
    assert not result.ok and "did not finish within 0.5 s" in str(result)
    assert elapsed < 5, "one timed-out case stops the check: the others are not run"
    assert check.l1_penalty(RIGHT["l1_penalty"], timeout=0.5).ok, "the timer is gone afterwards"


def test_the_timeout_works_outside_the_main_thread():
    import threading

    results = []

    def busy(W):
        while True:
            pass

    thread = threading.Thread(target=lambda: results.append(check.l1_penalty(busy, timeout=0.5)))
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and "did not finish" in str(results[0])


def test_default_timeout_is_a_few_seconds():
    assert 1 <= check.DEFAULT_TIMEOUT <= 10


@pytest.mark.parametrize(
    "name, cheat",
    [
        ("zero_one_loss", lambda p, y: losses.zero_one_loss(p, y)),
        ("zero_one_loss", lambda p, y: imported_reference(p, y)),  # imported under another name
        ("zero_one_loss", lambda p, y: losses.zero_one_rate(p, y) * y.shape[0]),
        ("negative_log_likelihood", lambda p, y: losses.negative_log_likelihood(p, y)),
        ("l1_penalty", lambda W: losses.l1_penalty([W])),
        ("l2_penalty", lambda W: losses.l2_penalty([W])),
        ("validation_frequency", lambda n, p: training.EarlyStopping(patience=p).validation_frequency(n)),
    ],
)
def test_calling_the_library_answer_fails_the_check(name, cheat):
    result = _checks()[name](cheat)
    assert not result.ok and "library's own answer" in str(result), str(result)


def test_every_named_reference_exists():
    """A renamed library function would silently stop being detected."""
    for name, paths in check.REFERENCES.items():
        assert name in _checks(), f"REFERENCES names a check that does not exist: {name}"
        for path in paths:
            assert callable(check.library_function(path)), f"dlt_lib.{path} (a reference of {name}) is gone"


def test_updates_sgd_counts_as_a_reference():
    assert updates.sgd in check.references_of("sgd_step")

"""The exercise checkers accept right answers and diagnose wrong ones."""

import numpy as np
import pytensor.tensor as pt
import pytest

from dlt_lib import check


def right_zero_one(p, y):
    return pt.sum(pt.neq(pt.argmax(p, axis=1), y))


def right_nll(p, y):
    return -pt.mean(pt.log(p)[pt.arange(y.shape[0]), y])


@pytest.mark.parametrize(
    "checker, right, wrong, hint",
    [
        (
            check.zero_one_loss,
            right_zero_one,
            lambda p, y: pt.mean(pt.neq(pt.argmax(p, axis=1), y)),
            "expected",
        ),
        (check.zero_one_loss, right_zero_one, lambda p, y: pt.sum(pt.neq(pt.argmax(p, axis=0), y)), "shape"),
        (
            check.negative_log_likelihood,
            right_nll,
            lambda p, y: -pt.sum(pt.log(p)[pt.arange(y.shape[0]), y]),
            "expected",
        ),
        (check.l1_penalty, lambda W: pt.sum(abs(W)), lambda W: pt.sum(W), "expected"),
        (check.l2_penalty, lambda W: pt.sum(W**2), lambda W: pt.sqrt(pt.sum(W**2)), "expected"),
        (check.sgd_step, lambda p, g, lr: p - lr * g, lambda p, g, lr: p + lr * g, "expected"),
        (check.validation_frequency, lambda n, p: min(n, p // 2), lambda n, p: min(n, p / 2), "use //"),
    ],
)
def test_right_passes_wrong_is_diagnosed(checker, right, wrong, hint):
    good = checker(right)
    assert good.ok and str(good).startswith("✔")
    bad = checker(wrong)
    assert not bad.ok and str(bad).startswith("✘") and hint in str(bad)
    with pytest.raises(AssertionError, match="✘"):
        checker(wrong, strict=True)


def test_numpy_answers_are_accepted_and_crashes_reported():
    assert check.l1_penalty(lambda W: np.abs(W).sum()).ok

    def broken(p, y):
        raise RuntimeError("not written yet")

    result = check.zero_one_loss(broken)
    assert result.passed == 0 and "raised RuntimeError: not written yet" in str(result)

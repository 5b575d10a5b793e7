"""Checking arguments: one helper, one exception, messages that say what to do.

Every public function of ``dlt_lib`` checks its arguments where they come
in, so that a wrong value is reported at once and by name, not as a NaN a
thousand updates later or a shape error deep inside PyTensor.  The style is
scikit-learn's ``check_scalar``: one helper, one exception type, and each
message says what was given, what is allowed and what to try::

    >>> check_scalar(1.0, "momentum", min_val=0, max_val=1, include_boundaries="left",
    ...              hint="Use e.g. momentum=0.9.")
    Traceback (most recent call last):
    InvalidParameterError: momentum must be a number in [0, 1); got 1.0. Use e.g. momentum=0.9.

The command line (``python -m dlt_lib``) turns the same messages into its
one-line errors for bad flags.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["InvalidParameterError", "check_option", "check_scalar", "describe_scalar"]


class InvalidParameterError(ValueError, TypeError):
    """An argument of the wrong type or out of range.

    Both a ``ValueError`` and a ``TypeError`` (as scikit-learn's
    ``InvalidParameterError`` is), so ``except ValueError`` catches it
    whichever was wrong.
    The errors a reader meets in every chapter; see ``book/gradient_descent.ipynb``.
    """


_TYPE_NAMES = {numbers.Integral: "an integer", numbers.Real: "a number", bool: "True or False"}
_BRACKETS = {"both": "[]", "left": "[)", "right": "(]", "neither": "()"}


def describe_scalar(target_type=numbers.Real, min_val=None, max_val=None, include_boundaries="both") -> str:
    """What :func:`check_scalar` accepts, in words: ``"an integer >= 1"``, ``"a number in (0, 1]"``.

    The errors a reader meets in every chapter; see ``book/gradient_descent.ipynb``.
    """
    kind = _TYPE_NAMES.get(target_type, f"a {getattr(target_type, '__name__', target_type)}")
    left, right = _BRACKETS[include_boundaries]
    low, high = (v if v is None or isinstance(v, numbers.Integral) else f"{v:g}" for v in (min_val, max_val))
    if min_val is not None and max_val is not None:
        return f"{kind} in {left}{low}, {high}{right}"
    if min_val is not None:
        return f"{kind} {'>=' if left == '[' else '>'} {low}"
    if max_val is not None:
        return f"{kind} {'<=' if right == ']' else '<'} {high}"
    return kind


def _in_range(value, min_val, max_val, include_boundaries) -> bool:
    left, right = _BRACKETS[include_boundaries]
    above = min_val is None or (value >= min_val if left == "[" else value > min_val)
    below = max_val is None or (value <= max_val if right == "]" else value < max_val)
    return above and below


def check_scalar(
    value, name, target_type=numbers.Real, *, min_val=None, max_val=None, include_boundaries="both", hint=""
):
    """Return ``value`` if it is a finite ``target_type`` within the bounds; raise otherwise.

    Parameters
    ----------
    value : the argument to check.
    name : str
        The argument's name, as the caller wrote it (``"learning_rate"``).
    target_type : ``numbers.Real`` (default), ``numbers.Integral`` or ``bool``
        ``True`` and ``False`` are not numbers here, and NaN and infinities
        are refused: none is ever a sensible setting.
    min_val, max_val : float, optional
        Bounds; ``None`` leaves that side open.
    include_boundaries : ``"both"``, ``"left"``, ``"right"`` or ``"neither"``
        Which bounds are allowed values.
    hint : str
        What to try instead, appended to the message.

    Raises
    ------
    InvalidParameterError
        With a message naming the argument, what is allowed and what was given.
    The errors a reader meets in every chapter; see ``book/gradient_descent.ipynb``.
    """
    expected = describe_scalar(target_type, min_val, max_val, include_boundaries)
    is_bool = isinstance(value, bool)
    right_type = is_bool if target_type is bool else isinstance(value, target_type) and not is_bool
    if not right_type:
        _fail(name, expected, f"{type(value).__name__} {value!r}", hint)
    if not is_bool and not (math.isfinite(value) and _in_range(value, min_val, max_val, include_boundaries)):
        _fail(name, expected, repr(value), hint)
    return value


def check_option(value, name, options, hint=""):
    """Return ``value`` if it is one of ``options``; raise :class:`InvalidParameterError` otherwise.

    The errors a reader meets in every chapter; see ``book/gradient_descent.ipynb``.
    """
    if value not in options:
        _fail(name, f"one of {', '.join(map(repr, options))}", repr(value), hint)
    return value


def _fail(name, expected, given, hint):
    message = f"{name} must be {expected}; got {given}."
    raise InvalidParameterError(f"{message} {hint}" if hint else message)

"""The search space: which settings of the trainer a search varies, and over what.

Part of :mod:`dlt_lib.search` (chapter *Choosing hyper-parameters*).
Nothing here imports Optuna or Dask: a dimension only asks an Optuna trial
for a value (``suggest``), by the trial's own methods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

MODELS = ("logreg", "mlp")
#: The trainer's settings a search may vary, and the type of each.
PARAMETERS = {
    "learning_rate": float,
    "l1": float,
    "l2": float,
    "n_hidden": int,
    "batch_size": int,
    "optimizer": str,
}


class SearchError(ValueError):
    """A search cannot start or go on; the message says what to change.

    Taught in ``book/hyperparameters.ipynb``.
    """


def _finite(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise SearchError(f"{name}: expected a finite number, got {value!r}.")
    return value


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from ``[low, high]``.

    Taught in ``book/hyperparameters.ipynb``.
    """

    low: float
    high: float

    def __post_init__(self):
        _finite("low", self.low), _finite("high", self.high)
        if not self.low < self.high:
            raise SearchError(f"a range needs low < high; got {self.low}..{self.high}.")

    def suggest(self, trial, name):
        return trial.suggest_float(name, self.low, self.high)

    def grid(self, n):
        return [float(v) for v in np.linspace(self.low, self.high, n)]

    def __str__(self):
        return f"{self.low:g}..{self.high:g}"


@dataclass(frozen=True)
class LogUniform(Uniform):
    """A float whose logarithm is uniform on ``[log low, log high]``: each decade is equally likely.

    The right scale for a learning rate or a penalty weight, whose effect
    depends on its order of magnitude (Bergstra & Bengio, 2012).

    Taught in ``book/hyperparameters.ipynb``.
    """

    def __post_init__(self):
        super().__post_init__()
        if self.low <= 0:
            raise SearchError(f"a log-uniform range needs low > 0; got {self.low}..{self.high}.")

    def suggest(self, trial, name):
        return trial.suggest_float(name, self.low, self.high, log=True)

    def grid(self, n):
        return [float(f"{v:.3g}") for v in np.geomspace(self.low, self.high, n)]

    def __str__(self):
        return f"{self.low:g}..{self.high:g}:log"


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]``, uniform or (``log=True``) log-uniform.

    Taught in ``book/hyperparameters.ipynb``.
    """

    low: int
    high: int
    log: bool = False

    def __post_init__(self):
        for value in (self.low, self.high):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise SearchError(f"an integer range needs integer ends; got {self.low!r}..{self.high!r}.")
        if not self.low < self.high:
            raise SearchError(f"a range needs low < high; got {self.low}..{self.high}.")
        if self.log and self.low < 1:
            raise SearchError(f"a log-uniform range needs low >= 1; got {self.low}..{self.high}.")

    def suggest(self, trial, name):
        return trial.suggest_int(name, self.low, self.high, log=self.log)

    def grid(self, n):
        points = np.geomspace(self.low, self.high, n) if self.log else np.linspace(self.low, self.high, n)
        return sorted({int(round(v)) for v in points})

    def __str__(self):
        return f"{self.low}..{self.high}" + (":log" if self.log else "")


@dataclass(frozen=True)
class Choice:
    """One of a few values, e.g. ``Choice(("sgd", "momentum"))`` or ``Choice((20, 100, 600))``.

    Taught in ``book/hyperparameters.ipynb``.
    """

    values: tuple

    def __post_init__(self):
        values = tuple(self.values)
        object.__setattr__(self, "values", values)
        if len(values) < 2:
            raise SearchError(
                f"a choice needs at least two values; got {list(values)} (a single value is fixed)."
            )
        if len(set(values)) != len(values):
            raise SearchError(f"a choice lists a value twice: {list(values)}.")

    def suggest(self, trial, name):
        return trial.suggest_categorical(name, list(self.values))

    def grid(self, n):
        return list(self.values)

    def __str__(self):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in self.values)


DIMENSIONS = (Uniform, LogUniform, IntRange, Choice)


def _check_value(name, value):
    """A fixed value, or each value of a choice, must have the parameter's type and range."""
    kind = PARAMETERS[name]
    if kind is str:
        from dlt_lib import updates

        if value not in updates.OPTIMIZERS:
            raise SearchError(
                f"optimizer: unknown rule {value!r}; expected one of {', '.join(updates.OPTIMIZERS)}."
            )
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise SearchError(f"{name}: expected a positive integer, got {value!r}.")
        return int(value)
    _finite(name, value)
    if name == "learning_rate" and value <= 0:
        raise SearchError(f"learning_rate: expected a number > 0, got {value!r}.")
    if value < 0:
        raise SearchError(f"{name}: expected a number >= 0 (a penalty weight), got {value!r}.")
    return float(value)


class SearchSpace(Mapping):
    """Which trainer settings a search varies, and over what.

    A mapping from a name in :data:`PARAMETERS` to a dimension
    (:class:`LogUniform`, :class:`Uniform`, :class:`IntRange`,
    :class:`Choice`) or to a fixed value::

        SearchSpace({"learning_rate": LogUniform(1e-3, 1.0),
                     "batch_size": Choice((20, 100)),
                     "l2": 0.0})

    A space in which nothing varies is refused: there would be nothing to
    search.  Names left out take the model's published setting.

    Taught in ``book/hyperparameters.ipynb``.
    """

    def __init__(self, dimensions: Mapping):
        dims = dict(dimensions)
        unknown = sorted(set(dims) - set(PARAMETERS))
        if unknown:
            raise SearchError(
                f"unknown hyper-parameter(s) {', '.join(unknown)} in the search space; "
                f"expected some of {', '.join(PARAMETERS)}."
            )
        dims = {name: _checked(name, dim) for name, dim in dims.items()}
        if not any(isinstance(dim, DIMENSIONS) for dim in dims.values()):
            raise SearchError(
                "the search space is empty: every hyper-parameter is fixed "
                f"({', '.join(f'{k}={v}' for k, v in dims.items()) or 'none given'}). "
                "Give at least one a range or a choice, e.g. learning_rate=1e-3..1:log."
            )
        self._dims = dims

    def __getitem__(self, name):
        return self._dims[name]

    def __iter__(self):
        return iter(self._dims)

    def __len__(self):
        return len(self._dims)

    @property
    def searched(self) -> dict:
        """The names that vary, with their dimensions."""
        return {k: v for k, v in self._dims.items() if isinstance(v, DIMENSIONS)}

    @property
    def fixed(self) -> dict:
        return {k: v for k, v in self._dims.items() if not isinstance(v, DIMENSIONS)}

    def suggest(self, trial) -> dict:
        """Ask ``trial`` (an Optuna trial) for a value of each varying name; add the fixed ones."""
        return {**self.fixed, **{name: dim.suggest(trial, name) for name, dim in self.searched.items()}}

    def grid(self, points: int = 3) -> dict:
        """Grid values for Optuna's ``GridSampler``: each choice, or ``points`` values across each range."""
        return {name: dim.grid(points) for name, dim in self.searched.items()}

    def describe(self) -> dict:
        """``name -> "1e-3..1:log" / "20,100" / value``: JSON-able, and what ``--space`` accepts."""
        return {name: str(dim) if isinstance(dim, DIMENSIONS) else dim for name, dim in self._dims.items()}

    def __repr__(self):
        return f"SearchSpace({self.describe()})"

    @classmethod
    def parse(cls, items, base: Mapping | None = None) -> SearchSpace:
        """Build a space from ``["name=spec", ...]``, the command line's ``--space`` flags.

        ``spec`` is ``LOW..HIGH`` (uniform), ``LOW..HIGH:log`` (log-uniform),
        ``A,B,C`` (a choice) or a single value (fixed).  Names given replace
        those of ``base``.
        """
        dims = dict(base or {})
        dims.update(parse_item(item) for item in items)
        return cls(dims)


def parse_item(item: str) -> tuple:
    """``"learning_rate=1e-3..1:log"`` -> ``("learning_rate", LogUniform(0.001, 1.0))``, checked.

    Taught in ``book/hyperparameters.ipynb``.
    """
    name, sep, spec = str(item).partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not spec.strip():
        raise SearchError(f"--space {item!r}: expected NAME=SPEC, e.g. learning_rate=1e-3..1:log.")
    if name not in PARAMETERS:
        raise SearchError(
            f"--space {item!r}: unknown hyper-parameter {name!r}; expected one of {', '.join(PARAMETERS)}."
        )
    return name, _checked(name, _parse_spec(name, spec.strip()))


def _checked(name, dim):
    """A dimension whose values suit the parameter ``name``, or a fixed value of its type."""
    if isinstance(dim, Choice):
        for value in dim.values:
            _check_value(name, value)
        return dim
    if not isinstance(dim, DIMENSIONS):
        return _check_value(name, dim)
    if PARAMETERS[name] is str:
        raise SearchError(f"{name}: a range makes no sense here; give a choice such as sgd,momentum.")
    if PARAMETERS[name] is int and not isinstance(dim, IntRange):
        raise SearchError(f"{name} is an integer: give an integer range such as 100..800.")
    for value in (dim.low, dim.high):
        _check_value(name, value)
    return dim


def _parse_spec(name, spec):
    kind = PARAMETERS[name]

    def number(text):
        if kind is str:
            return text.strip()
        try:
            value = float(text)
        except ValueError:
            raise SearchError(f"--space {name}={spec}: {text.strip()!r} is not a number.") from None
        return int(value) if kind is int and value.is_integer() else value

    if ".." in spec:
        low, _, high = spec.partition("..")
        high, _, scale = high.partition(":")
        if scale not in ("", "log"):
            raise SearchError(f"--space {name}={spec}: the only scale is ':log'.")
        low, high = number(low), number(high)
        if kind is int:
            return IntRange(low, high, log=scale == "log")
        return (LogUniform if scale == "log" else Uniform)(low, high)
    if "," in spec:
        return Choice(tuple(number(v) for v in spec.split(",") if v.strip()))
    return number(spec)


def format_space(space: SearchSpace) -> str:
    """``learning_rate=1e-3..1:log batch_size=20,100``: the searched names as ``--space`` writes them.

    Taught in ``book/hyperparameters.ipynb``.
    """
    return " ".join(f"{name}={dim}" for name, dim in space.searched.items())


#: The tutorials' settings (``logistic_sgd.py``, ``mlp.py``), the same as the
#: command line's ``train`` defaults (``dlt_lib.cli.DEFAULTS``; a test keeps
#: the two equal).  Kept here so that the search does not import the CLI.
PUBLISHED = {
    "logreg": {"learning_rate": 0.13, "batch_size": 600, "l1": 0.0, "l2": 0.0, "optimizer": "sgd"},
    "mlp": {
        "learning_rate": 0.01,
        "batch_size": 20,
        "l1": 0.0,
        "l2": 1e-4,
        "optimizer": "sgd",
        "n_hidden": 500,
    },
}
#: The tutorials' patience, in minibatch updates at the published batch size.
PUBLISHED_PATIENCE = {"logreg": 5000, "mlp": 10000}


def published_settings(model: str) -> dict:
    """The tutorials' settings for ``model``: what a name left out of the space takes.

    Taught in ``book/hyperparameters.ipynb``.
    """
    _check_model(model)
    return dict(PUBLISHED[model])


def default_space(model: str) -> SearchSpace:
    """The space ``python -m dlt_lib search`` explores when no ``--space`` is given.

    The learning rate on a log scale; the batch size, the penalties, the
    optimizer and the MLP's width as a few values each.  (Each distinct
    batch size, width or penalty is a new compiled graph, which PyTensor's
    cache then reuses: a handful of values keeps the compiling to a
    handful.)

    Taught in ``book/hyperparameters.ipynb``.
    """
    _check_model(model)
    dims = {
        "learning_rate": LogUniform(1e-3, 1.0),
        "batch_size": Choice((20, 100, 600)),
        "l1": Choice((0.0, 1e-5, 1e-4)),
        "l2": Choice((0.0, 1e-5, 1e-4, 1e-3)),
        "optimizer": Choice(("sgd", "momentum")),
    }
    if model == "mlp":
        dims["n_hidden"] = Choice((100, 250, 500, 1000))
    return SearchSpace(dims)


def _check_model(model):
    if model not in MODELS:
        raise SearchError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}.")

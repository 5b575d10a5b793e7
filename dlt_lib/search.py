"""Choosing hyper-parameters on the validation set: Optuna decides, Dask runs.

Taught in the chapter *Choosing hyper-parameters* (``book/hyperparameters``).
The tutorials keep the validation set "to select models and hyper-parameters
such as learning rate, model size"; this module does that selection with two
existing engines, and adds nothing of its own to either:

- **Optuna** decides what to try (its samplers: TPE, random, grid) and when
  to give up on a trial (its pruners: median, successive halving), and keeps
  the study in a storage (SQLite by default, any SQLAlchemy URL, or Optuna's
  Dask storage on a cluster).
- **Dask distributed** runs the trials: one trial is one Dask task, on a
  ``LocalCluster`` of single-threaded worker processes or on any cluster
  whose scheduler address you give.

The pieces, in the order a search uses them:

:class:`SearchSpace` (with :class:`LogUniform`, :class:`Uniform`, :class:`IntRange`, :class:`Choice`)
    which settings of the trainer vary, and over what.
:class:`Objective`
    one trial: train with the book's early-stopping trainer, report the
    validation error at each validation (so a pruner can stop a hopeless
    trial, as patience stops a hopeless run), return the best validation error.
:func:`start_cluster`, :func:`connect`, :func:`open_storage`
    where the trials run and where the study is kept.
:func:`optimize`
    submit the trials to Dask until the study has ``n_trials`` finished ones.
:func:`run_search`
    what ``python -m dlt_lib search`` does: the above, then the best model's
    checkpoint, its test error (measured once, at the end), a CSV of trials,
    plots and a summary.
:func:`selection_gap`
    the cost of choosing: how optimistic the chosen trial's validation error is.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import os
import socket
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Choice",
    "IntRange",
    "LogUniform",
    "Objective",
    "SearchError",
    "SearchSpace",
    "TrialResult",
    "Uniform",
    "connect",
    "dashboard_link",
    "default_space",
    "format_space",
    "open_storage",
    "optimize",
    "plot_history",
    "plot_parameters",
    "run_search",
    "selection_gap",
    "start_cluster",
    "trials_table",
    "write_trials_csv",
]

MODELS = ("logreg", "mlp")
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "none")
#: The trainer's settings a search may vary, and the type of each.
PARAMETERS = {
    "learning_rate": float,
    "l1": float,
    "l2": float,
    "n_hidden": int,
    "batch_size": int,
    "optimizer": str,
}
#: The user attribute that ties a trial to the Dask task that ran it.
TASK_ATTR = "dask_task"
#: The study's user attribute listing the tasks an interrupted driver gave up on.
ABANDONED_ATTR = "abandoned_tasks"


class SearchError(ValueError):
    """A search cannot start or go on; the message says what to change."""


class TaskAbandoned(RuntimeError):
    """The driver that submitted this trial's task was interrupted; the trial is failed, not run."""


# ----------------------------------------------------------------------------
# The search space
# ----------------------------------------------------------------------------
def _finite(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise SearchError(f"{name}: expected a finite number, got {value!r}.")
    return value


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from ``[low, high]``."""

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
    """An integer in ``[low, high]``, uniform or (``log=True``) log-uniform."""

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
    """One of a few values, e.g. ``Choice(("sgd", "momentum"))`` or ``Choice((20, 100, 600))``."""

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
    """

    def __init__(self, dimensions: Mapping):
        dims = dict(dimensions)
        unknown = sorted(set(dims) - set(PARAMETERS))
        if unknown:
            raise SearchError(
                f"unknown hyper-parameter(s) {', '.join(unknown)} in the search space; "
                f"expected some of {', '.join(PARAMETERS)}."
            )
        for name, dim in dims.items():
            if isinstance(dim, Choice):
                for value in dim.values:
                    _check_value(name, value)
            elif isinstance(dim, DIMENSIONS):
                if PARAMETERS[name] is str:
                    raise SearchError(
                        f"{name}: a range makes no sense here; give a choice such as sgd,momentum."
                    )
                if PARAMETERS[name] is int and not isinstance(dim, IntRange):
                    raise SearchError(f"{name} is an integer: give an integer range such as 100..800.")
                for value in (dim.low, dim.high):
                    _check_value(name, value)
            else:
                dims[name] = _check_value(name, dim)
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
        for item in items:
            name, sep, spec = str(item).partition("=")
            name = name.strip().replace("-", "_")
            if not sep or not spec.strip():
                raise SearchError(f"--space {item!r}: expected NAME=SPEC, e.g. learning_rate=1e-3..1:log.")
            if name not in PARAMETERS:
                raise SearchError(
                    f"--space {item!r}: unknown hyper-parameter {name!r}; expected one of "
                    f"{', '.join(PARAMETERS)}."
                )
            dims[name] = _parse_spec(name, spec.strip())
        return cls(dims)


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
    """``learning_rate=1e-3..1:log batch_size=20,100``: the searched names as ``--space`` writes them."""
    return " ".join(f"{name}={dim}" for name, dim in space.searched.items())


def published_settings(model: str) -> dict:
    """The tutorials' settings for ``model`` (what a name left out of the space takes)."""
    from dlt_lib.cli import DEFAULTS

    _check_model(model)
    settings = {"n_hidden": 500, "optimizer": "sgd", **DEFAULTS[model]}
    settings.pop("patience")
    if model == "logreg":
        settings.pop("n_hidden")
    return settings


def default_space(model: str) -> SearchSpace:
    """The space ``python -m dlt_lib search`` explores when no ``--space`` is given.

    The learning rate on a log scale; the batch size, the penalties, the
    optimizer and the MLP's width as a few values each.  (Each distinct
    batch size, width or penalty is a new compiled graph, which PyTensor's
    cache then reuses: a handful of values keeps the compiling to a
    handful.)
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


# ----------------------------------------------------------------------------
# One trial
# ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _load_splits(dataset, n_train, offline):
    """The data of a trial, loaded once per worker process (every trial of that process reuses it)."""
    from dlt_lib import data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.SampleFallbackWarning)  # the driver says which data it used
        splits = data.load_dataset(dataset, verbose=False, offline=offline)
    if n_train is None:
        return splits
    (X, y), valid, test = splits
    if not 0 < n_train <= len(X):
        raise SearchError(f"n_train={n_train}: the training set has {len(X)} examples.")
    return data.DataSplits((X[:n_train], y[:n_train]), valid, test, source=splits.source, name=splits.name)


def _train(model, splits, settings, *, n_epochs, patience, mode, on_validation):
    """The one call of the trainer in this module.

    The learning rate and the penalty weights enter the graph as shared
    variables, so that trials that differ only in their values reuse one
    compiled step (a constant would make each value a new C module: seconds
    of compiling per trial).  A penalty whose weight is 0 is left out of the
    graph.  The trainer's test slot gets the validation set: a trial never
    looks at the test set.

    Until :func:`~dlt_lib.training.train` has its per-validation hook (issue
    10), the validations are reported after training: a pruner sees them but
    cannot stop a trial early.
    """
    import optuna
    import pytensor

    from dlt_lib import training, updates

    train_split, valid_split, _ = splits

    def shared(name):
        return pytensor.shared(np.asarray(settings[name], dtype=pytensor.config.floatX), name=name)

    lr = shared("learning_rate")
    penalty = sum(
        shared(name) * term for name, term in (("l1", model.L1), ("l2", model.L2_sqr)) if settings[name]
    )
    rule = updates.get_optimizer(settings["optimizer"])

    def rule_with_shared_values(cost, params, learning_rate):
        return rule(cost + penalty, params, learning_rate=lr)

    history = training.train(
        model,
        (train_split, valid_split, valid_split),
        learning_rate=settings["learning_rate"],
        optimizer=rule_with_shared_values,
        batch_size=settings["batch_size"],
        n_epochs=n_epochs,
        patience=patience,
        mode=mode,
        progress=False,
    )
    for record in history.records:
        try:
            on_validation(record)
        except optuna.TrialPruned:  # too late to stop: the trial has run; report the rest
            continue
    return history


@dataclass
class Objective:
    """One trial of a search: train a model with the settings a trial suggests.

    Calling it with an Optuna trial trains ``model`` on ``dataset`` with the
    book's early-stopping trainer, reports the validation error at each
    validation (``trial.report``) and raises ``optuna.TrialPruned`` when the
    study's pruner says the trial is hopeless; it returns the best
    validation error.  A run whose cost diverges is pruned too (and says so
    in its ``diverged`` attribute): a too-large learning rate is an answer,
    not a failure.

    Parameters
    ----------
    model : "logreg" or "mlp"
    dataset : a name for :func:`dlt_lib.data.load_dataset` ("mnist", "mnist-sample", "fashion-mnist").
        Each worker process loads it once.
    space : SearchSpace, optional (default: :func:`default_space`)
    n_epochs : the most epochs a trial may train.
    patience : early-stopping patience, in minibatch updates *at the
        model's published batch size* (default: the tutorials' 5000 for
        logistic regression at 600, 10000 for the MLP at 20).  A trial with
        another batch size gets the same patience in examples, so that a
        small batch is not stopped after a few epochs: see :meth:`patience_for`.
    n_train : use only the first ``n_train`` training examples (quick searches).
    seed : seed of the MLP's initial weights, the same in every trial.
    mode : PyTensor mode ("C", "NUMBA", "JAX"); default: the driver's.
    offline : never download (like ``DLT_OFFLINE=1``).
    peek_at_test : also measure each trial's test error, in the user
        attribute ``test_error``.  For the book's demonstration of what
        choosing costs only: a real search never looks at the test set.
    """

    model: str
    dataset: str = "mnist"
    space: SearchSpace | None = None
    n_epochs: int = 1000
    patience: int | None = None
    n_train: int | None = None
    seed: int = 1234
    mode: str | None = None
    offline: bool | None = None
    peek_at_test: bool = False

    def __post_init__(self):
        from dlt_lib import backend
        from dlt_lib.cli import DEFAULTS

        _check_model(self.model)
        if self.space is None:
            self.space = default_space(self.model)
        elif not isinstance(self.space, SearchSpace):
            self.space = SearchSpace(self.space)
        if self.model == "logreg" and "n_hidden" in self.space:
            raise SearchError("n_hidden is the MLP's width: logistic regression has no hidden layer.")
        if self.patience is None:
            self.patience = DEFAULTS[self.model]["patience"]
        self.mode = backend.normalise_mode(self.mode or backend.mode_name())

    def settings(self, trial) -> dict:
        """The trial's full settings: the published ones, overridden by the space's."""
        return {**published_settings(self.model), **self.space.suggest(trial)}

    def splits(self):
        return _load_splits(self.dataset, self.n_train, self.offline)

    def build_model(self, settings, n_in):
        from dlt_lib import models

        if self.model == "logreg":
            return models.LogisticRegression(n_in, 10)
        return models.MLP(n_in, settings["n_hidden"], 10, seed=self.seed)

    def patience_for(self, batch_size: int) -> int:
        """The patience, in updates, of a trial with ``batch_size``: as many examples as the published setting.

        The tutorials count patience in minibatch updates: 5000 updates of
        600 digits for logistic regression.  The same 5000 updates at batch
        size 20 would be 100,000 digits, two epochs of MNIST, and a search
        would stop every small-batch trial long before its large-batch
        rivals.  At the published batch size this is the published patience.
        """
        published = published_settings(self.model)["batch_size"]
        return max(1, math.ceil(self.patience * published / batch_size))

    def fit(self, settings, on_validation=None):
        """Train one model with ``settings``; return ``(model, history)``."""
        splits = self.splits()
        model = self.build_model(settings, splits[0][0].shape[1])
        history = _train(
            model,
            splits,
            settings,
            n_epochs=self.n_epochs,
            patience=self.patience_for(settings["batch_size"]),
            mode=self.mode,
            on_validation=on_validation or (lambda record: None),
        )
        return model, history

    def __call__(self, trial, keep: dict | None = None) -> float:
        import optuna

        from dlt_lib import training

        settings = self.settings(trial)
        trial.set_user_attr("settings", settings)
        n_validations = 0

        def report(record):
            # The step is the number of validations so far: one per epoch in the
            # book's settings, so trials with different batch sizes compare at
            # the same number of passes over the data.
            nonlocal n_validations
            n_validations += 1
            trial.report(record.valid_error, n_validations)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"validation error {record.valid_error:.2%} after {n_validations} validations: "
                    "worse than the pruner allows"
                )

        try:
            model, history = self.fit(settings, on_validation=report)
        except training.TrainingDiverged as exc:
            trial.set_user_attr("diverged", str(exc))
            raise optuna.TrialPruned(f"diverged: {exc}") from exc
        trial.set_user_attr("epochs", history.epochs)
        trial.set_user_attr("best_epoch", history.best.epoch if history.best else None)
        trial.set_user_attr("stop_reason", history.stop_reason)
        trial.set_user_attr("train_seconds", round(history.seconds, 3))
        trial.set_user_attr("compile_seconds", round(history.compile_seconds, 3))
        if self.peek_at_test:
            X_test, y_test = self.splits()[2]
            trial.set_user_attr("test_error", model.error_rate(X_test, y_test))
        if keep is not None:
            keep["params"] = model.get_param_values()
        return history.best_valid_error

    def describe(self) -> dict:
        """What identifies this search in a study's attributes (resuming checks it)."""
        return {
            "model": self.model,
            "dataset": self.dataset,
            "space": self.space.describe(),
            "n_epochs": self.n_epochs,
            "patience": self.patience,
            "n_train": self.n_train,
            "seed": self.seed,
            "mode": self.mode,
        }


# ----------------------------------------------------------------------------
# Where the study lives, how trials are sampled and pruned
# ----------------------------------------------------------------------------
#: Optuna's heartbeat (RDB storages): a running trial whose process died is
#: marked failed once its heartbeat is this many seconds old, and retried.
HEARTBEAT_INTERVAL, GRACE_PERIOD = 20, 60


def _mask(url: str) -> str:
    """The URL without its password, for messages and summaries."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail.split("/", 1)[0]:
        credentials, _, host = tail.partition("@")
        user = credentials.split(":", 1)[0]
        return f"{head}://{user}:***@{host}" if ":" in credentials else url
    return url


@functools.lru_cache(maxsize=4)
def _rdb_storage(url: str):
    """One Optuna RDB storage per URL and process (a SQLAlchemy engine is costly to make)."""
    import optuna

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            grace_period=GRACE_PERIOD,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
        )


def open_storage(url: str, client=None):
    """Open the Optuna storage named by ``url``; raise :class:`SearchError` if it cannot be opened.

    - a SQLAlchemy URL (``sqlite:///runs/search/study.db``,
      ``postgresql://user@host/db``, ...): an RDB storage with Optuna's
      heartbeat, so the trial of a worker that died is marked failed and retried;
    - ``dask``: Optuna's in-memory storage kept by the Dask scheduler
      (``optuna_integration.DaskStorage``), for a cluster whose workers share
      no database; ``dask+URL`` keeps the study in ``URL``, opened by the scheduler.

    Returns what :func:`optimize` takes as ``storage``: the URL itself for an
    RDB storage (each worker opens its own connection), or the DaskStorage.
    """
    url = str(url).strip()
    if url == "dask" or url.startswith("dask+"):
        if client is None:
            raise SearchError(
                f"--storage {url}: the Dask storage lives on a Dask scheduler; start or name one first."
            )
        from optuna_integration.dask import DaskStorage

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # DaskStorage is marked experimental
                return DaskStorage(storage=url[5:] or None, client=client)
        except Exception as exc:
            raise SearchError(f"cannot open the Dask storage {_mask(url)!r}: {_one_line(exc)}") from exc
    try:
        storage = _rdb_storage(url)
        storage.get_all_studies()  # touch the database now, not halfway through
    except Exception as exc:
        _rdb_storage.cache_clear()
        raise SearchError(
            f"cannot open the Optuna storage {_mask(url)!r}: {_one_line(exc)}. Give a SQLAlchemy URL such as "
            "sqlite:///runs/search/study.db (its directory must exist) or postgresql://user@host/db "
            "(with its driver installed), or 'dask' on a Dask cluster."
        ) from exc
    return url


def _one_line(exc) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _seed_for(seed, slot):
    """A seed per trial slot: tasks that load the study at the same time must not draw the same values."""
    return None if seed is None else int(np.random.SeedSequence([int(seed), int(slot)]).generate_state(1)[0])


def make_sampler(name="tpe", seed=None, grid=None):
    """Optuna's sampler called ``name``: "tpe" (the default), "random" or "grid" (``grid``: name -> values)."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid, seed=seed)
    raise SearchError(f"unknown sampler {name!r}; expected one of {', '.join(SAMPLERS)}.")


def make_pruner(name="median"):
    """Optuna's pruner called ``name``: "median", "halving" (successive halving) or "none"."""
    import optuna

    if name == "median":
        # Prune a trial whose best validation error so far is above the
        # median of the completed trials at the same epoch, once 4 trials
        # have completed, from its third epoch on (steps count validations
        # from 1; a slow start is not hopeless yet).
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SearchError(f"unknown pruner {name!r}; expected one of {', '.join(PRUNERS)}.")


@dataclass(frozen=True)
class StudyRef:
    """What a worker needs to open the study: picklable, sent with each task."""

    storage: object  # an RDB URL, or an optuna_integration DaskStorage
    name: str
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int | None = None
    grid: dict | None = None

    def load(self, slot=0):
        import optuna

        storage = _rdb_storage(self.storage) if isinstance(self.storage, str) else self.storage
        # Optuna's grid sampler maps trial numbers to grid points through an
        # order shuffled by its seed: every task must use the same seed.
        seed = self.seed if self.sampler == "grid" else _seed_for(self.seed, slot)
        return optuna.load_study(
            study_name=self.name,
            storage=storage,
            sampler=make_sampler(self.sampler, seed, self.grid),
            pruner=make_pruner(self.pruner),
        )


# ----------------------------------------------------------------------------
# One trial is one Dask task
# ----------------------------------------------------------------------------
@dataclass
class TrialResult:
    """What a task sends back to the driver."""

    number: int
    state: str  # "COMPLETE" or "PRUNED"
    value: float | None  # best validation error (COMPLETE only)
    settings: dict
    params: dict | None = None  # the best parameters (COMPLETE only), for the checkpoint
    worker: str = ""
    already_done: bool = False  # the task had run before and its trial was finished


def _finished_states():
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


def _quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _quiet_worker():
    """What a worker prints lands in the driver's terminal, or in a notebook's cell."""
    _quiet_optuna()
    # A sanity check inside PyTensor's C VM ("reference count inconsistency
    # after CVM construction") now and then fires in Dask worker processes;
    # we have not seen it when the same trials run in a plain loop.  It is
    # silenced here, and only here: the tests check that a search repeats
    # itself exactly, value for value.
    warnings.filterwarnings("ignore", message="Detected reference count inconsistency", category=UserWarning)


def run_trial(study_ref: StudyRef, objective: Objective, task_id: str, slot: int) -> TrialResult:
    """The body of one Dask task: run one trial of the study with ``study.optimize(n_trials=1)``.

    Dask runs a task again when the worker running it dies.  The trial it
    had started is then still RUNNING in the storage, tagged with this task's
    id: it is marked failed and handed to Optuna's retry callback, which
    queues a trial with the same settings; this run then takes a trial from
    the queue.  If the earlier run had finished its trial (the worker died
    just after), that trial is returned instead of running another: a task
    never counts twice.
    """
    import optuna
    from optuna.trial import TrialState

    _quiet_worker()
    study = study_ref.load(slot)
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get(TASK_ATTR) != task_id:
            continue
        if trial.state in _finished_states():
            return _result(trial, None, already_done=True)
        if trial.state == TrialState.RUNNING:
            _fail_lost_trial(study, trial)

    keep = {}

    def objective_of_this_task(trial):
        trial.set_user_attr(TASK_ATTR, task_id)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        keep["number"] = trial.number
        # Checked after the tag is written (see _abandon): a driver that gave
        # up on this task either sees this trial running, or is seen here.
        if task_id in study.user_attrs.get(ABANDONED_ATTR, ()):
            raise TaskAbandoned(f"the driver stopped waiting for task {task_id}")
        return objective(trial, keep=keep)

    study.optimize(objective_of_this_task, n_trials=1)
    trial = study.get_trials(deepcopy=False)[keep["number"]]
    if trial.state not in _finished_states():  # pragma: no cover - optimize raised otherwise
        raise optuna.exceptions.OptunaError(f"trial {trial.number} ended {trial.state.name}")
    return _result(trial, keep.get("params"))


def _fail_lost_trial(study, trial):
    """Mark the trial of a task whose worker died as failed, and queue it again (once, whoever sees it first)."""
    import optuna
    from optuna.trial import TrialState

    try:
        study.tell(trial.number, state=TrialState.FAIL)
    except (ValueError, RuntimeError):  # already finished: the heartbeat or another task got there first
        return
    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)(study, trial)


def _result(trial, params, already_done=False):
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = ""
    return TrialResult(
        number=trial.number,
        state=trial.state.name,
        value=trial.value,
        settings=trial.user_attrs.get("settings", dict(trial.params)),
        params=params,
        worker=worker,
        already_done=already_done,
    )


# ----------------------------------------------------------------------------
# The cluster
# ----------------------------------------------------------------------------
#: Each worker process runs one trial at a time with one BLAS thread: K
#: workers then use K cores without fighting over them.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start_cluster(n_workers: int, **kwargs):
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes, and a client on it.

    Every process on this machine shares PyTensor's compile cache
    (``~/.pytensor``): a graph compiled by one worker is loaded by the others.
    The dashboard gets a free port (several users may share a machine).
    Returns the ``distributed.Client``; ``client.cluster`` is the cluster
    (``client.close(); client.cluster.close()`` when done).
    """
    from distributed import Client, LocalCluster

    if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise SearchError(f"workers: expected a positive integer, got {n_workers!r}.")
    options = {"dashboard_address": ":0", "silence_logs": logging.ERROR, **kwargs}
    cluster = LocalCluster(
        n_workers=int(n_workers), threads_per_worker=1, processes=True, env=dict(ONE_THREAD), **options
    )
    return Client(cluster)


def connect(address: str, timeout: float = 10):
    """A client on the Dask scheduler at ``address`` (``tcp://host:8786``); one-line error if it does not answer."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SearchError(
            f"no Dask scheduler answered at {address} within {timeout:g} s ({_one_line(exc)}). "
            "Start one (dask scheduler; dask worker ADDRESS --nthreads 1) or use --workers K for a local cluster."
        ) from exc


def dashboard_link(client) -> str | None:
    """The Dask dashboard's address, or None when the scheduler cannot serve it (it needs bokeh)."""
    try:
        has_bokeh = client.run_on_scheduler(_scheduler_has_bokeh)
    except Exception:
        return None
    return client.dashboard_link if has_bokeh else None


def _scheduler_has_bokeh():
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


# ----------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------
def _open_study(objective, storage, study_name, sampler, pruner, seed, grid_points=3):
    import optuna

    _quiet_optuna()
    sref = StudyRef(
        storage,
        study_name,
        sampler,
        pruner,
        seed,
        objective.space.grid(grid_points) if sampler == "grid" else None,
    )
    rdb = _rdb_storage(storage) if isinstance(storage, str) else storage
    study = optuna.create_study(
        study_name=study_name,
        storage=rdb,
        direction="minimize",
        load_if_exists=True,
        sampler=make_sampler(sampler, seed, sref.grid),
        pruner=make_pruner(pruner),
    )
    wanted = json.loads(json.dumps(objective.describe()))
    stored = study.user_attrs.get("search")
    if stored is None:
        study.set_user_attr("search", wanted)
    elif stored != wanted:
        changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        raise SearchError(
            f"the study {study_name!r} in this storage was made for another search (it differs in "
            f"{', '.join(changed)}); give another --study name or --output-dir, or repeat its settings."
        )
    if isinstance(storage, str):
        optuna.storages.fail_stale_trials(study)
    return study, sref


def n_finished(study) -> int:
    """Trials that reached a verdict: completed or pruned (failed ones are retried and not counted)."""
    return len(study.get_trials(deepcopy=False, states=_finished_states()))


def optimize(
    objective: Objective,
    n_trials: int,
    *,
    client,
    storage,
    study_name: str,
    sampler: str = "tpe",
    pruner: str = "median",
    seed: int | None = 0,
    progress: bool = True,
    on_result=None,
    max_failures: int | None = None,
    grid_points: int = 3,
):
    """Run trials on the Dask ``client`` until the study has ``n_trials`` finished ones; return the study.

    One trial is one task (:func:`run_trial`).  The study is created in
    ``storage`` (from :func:`open_storage`) or loaded from it, so running
    again after an interruption adds only the missing trials.  Finished
    means completed or pruned; a trial lost with its worker is failed and
    retried, and never counted.  ``on_result(TrialResult)`` is called in
    this process as each trial finishes.  After more than ``max_failures``
    tasks that raised (default: a quarter of ``n_trials``, at least 3), the
    search stops with :class:`SearchError` quoting the last error.

    ``sampler`` ("tpe", "random", "grid") and ``pruner`` ("median",
    "halving", "none") name Optuna's; each task seeds its sampler from
    ``seed`` and its slot, so one worker repeats a search exactly.  A grid
    has ``grid_points`` values across each range of the space (and each
    value of a choice).
    """
    from distributed import wait

    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise SearchError(f"trials: expected a positive number of trials, got {n_trials!r}.")
    max_failures = max(3, n_trials // 4) if max_failures is None else max_failures
    study, sref = _open_study(objective, storage, study_name, sampler, pruner, seed, grid_points)
    done = n_finished(study)
    slot = len(study.get_trials(deepcopy=False))
    bar = _trial_bar(progress, n_trials, min(done, n_trials))
    pending, failures = {}, []
    try:
        while True:
            for _ in range(n_trials - done - len(pending)):
                task_id = uuid.uuid4().hex[:12]
                future = client.submit(
                    run_trial, sref, objective, task_id, slot, key=f"trial-{study_name}-{task_id}", pure=False
                )
                pending[future], slot = task_id, slot + 1
            if not pending:
                break
            finished = wait(list(pending), return_when="FIRST_COMPLETED").done
            for future in finished:
                pending.pop(future)
                if future.status != "finished":
                    failures.append(future.exception())
                    if len(failures) > max_failures:
                        raise SearchError(
                            f"{len(failures)} trials failed; the last with {_one_line(failures[-1])}"
                        ) from failures[-1]
                    continue
                result = future.result()
                done += 1
                bar.update(1)
                if result.state == "COMPLETE":
                    bar.set_postfix(best=f"{study.best_value:.2%}")
                if on_result is not None:
                    on_result(result)
    except BaseException:
        _abandon(client, study, pending)
        raise
    finally:
        bar.close()
    return study


def _abandon(client, study, pending):
    """Cancel the tasks still out, and mark their running trials failed so that a rerun replaces them.

    Dask cannot stop a task that has started: it runs on until its worker
    closes.  So the tasks are first listed in the study as abandoned (a task
    that starts a trial after this sees it and fails that trial itself),
    then the trials they are running are marked failed.
    """
    from optuna.trial import TrialState

    if not pending:
        return
    client.cancel(list(pending))
    ours = set(pending.values())
    study.set_user_attr(ABANDONED_ATTR, sorted(ours | set(study.user_attrs.get(ABANDONED_ATTR, ()))))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get(TASK_ATTR) in ours:
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except (ValueError, RuntimeError):
                pass


def _trial_bar(enabled, total, initial):
    if not enabled:
        from dlt_lib.training import _NoBar

        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="trial", desc="trials")


# ----------------------------------------------------------------------------
# Reading a study
# ----------------------------------------------------------------------------
def trials_table(study) -> list[dict]:
    """One row per trial: number, state, value, the settings searched, and what the trial recorded."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        intermediate = t.intermediate_values
        last_step = max(intermediate) if intermediate else None
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "valid_error": t.value if t.state.name == "COMPLETE" else None,
                **{f"param_{k}": v for k, v in t.params.items()},
                "validations": len(intermediate),
                "last_valid_error": intermediate[last_step] if last_step is not None else None,
                "epochs": t.user_attrs.get("epochs"),
                "seconds": t.duration.total_seconds() if t.duration else None,
                "diverged": "diverged" in t.user_attrs,
                "retry_of": t.system_attrs.get("failed_trial"),
            }
        )
    return rows


def write_trials_csv(study, path) -> Path:
    """The trials as a CSV file (written to a temporary name, then renamed)."""
    rows = trials_table(study)
    columns = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or ["number"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def _plotted_trials(study):
    """(number, value, pruned) for each completed or pruned trial; a pruned one at its last reported error."""
    from optuna.trial import TrialState

    points = []
    for t in study.get_trials(deepcopy=False, states=_finished_states()):
        if t.state == TrialState.COMPLETE:
            points.append((t, t.value, False))
        elif t.intermediate_values:
            points.append((t, t.intermediate_values[max(t.intermediate_values)], True))
    return points


def plot_history(study, ax=None, title=None):
    """The optimisation history: each trial's validation error and the best so far."""
    import matplotlib.pyplot as plt

    from dlt_lib import plot

    points = _plotted_trials(study)
    with plt.rc_context(plot.STYLE):
        if ax is None:
            fig, ax = plt.subplots(figsize=(plot.BOOK_WIDTH * 0.62, 3.0))
        fig = ax.figure
        for pruned, style in ((False, {}), (True, {"facecolors": "none"})):
            chosen = [(t.number, 100 * v) for t, v, p in points if p == pruned]
            if chosen:
                x, y = zip(*chosen)
                label = "pruned (last validation)" if pruned else "completed"
                ax.scatter(x, y, s=18, color=plot.COLORS["valid"], label=label, **style, zorder=3)
        complete = sorted((t.number, 100 * v) for t, v, p in points if not p)
        if complete:
            x, y = zip(*complete)
            last = max(t.number for t, _, _ in points)
            best = np.minimum.accumulate(y)
            ax.step(
                [*x, last], [*best, best[-1]], where="post", color=plot.COLORS["best"], label="best so far"
            )
        ax.set_xlabel("trial")
        ax.set_ylabel("validation error (%)")
        ax.set_title(title or f"Optimisation history ({len(points)} trials)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if points:
            ax.legend(loc="best")
    return fig


def plot_parameters(study, space: SearchSpace | None = None, ncols=3):
    """Validation error against each searched hyper-parameter, one panel each."""
    import matplotlib.pyplot as plt

    from dlt_lib import plot

    points = _plotted_trials(study)
    names = list(space.searched) if space is not None else sorted({k for t, _, _ in points for k in t.params})
    if not names:
        raise SearchError("no hyper-parameter to plot: the study has no finished trial.")
    ncols = min(ncols, len(names))
    nrows = math.ceil(len(names) / ncols)
    with plt.rc_context(plot.STYLE):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(plot.BOOK_WIDTH, 2.4 * nrows), sharey=True, squeeze=False
        )
        for ax, name in zip(axes.flat, names):
            _parameter_panel(ax, name, points, None if space is None else space.searched.get(name))
        for ax in axes.flat[len(names) :]:
            ax.set_visible(False)
        for row in axes:
            row[0].set_ylabel("validation error (%)")
        fig.tight_layout()
    return fig


def _parameter_panel(ax, name, points, dim):
    from dlt_lib import plot

    values = [(t.params[name], 100 * v, p) for t, v, p in points if name in t.params]
    categorical = isinstance(dim, Choice) or any(isinstance(x, str) for x, _, _ in values)
    if categorical:
        categories = (
            list(dim.values) if isinstance(dim, Choice) else sorted({x for x, _, _ in values}, key=str)
        )
        jitter = np.random.default_rng(0)
        position = {c: i for i, c in enumerate(categories)}
        values = [(position[x] + jitter.uniform(-0.15, 0.15), y, p) for x, y, p in values]
        ax.set_xticks(
            range(len(categories)), [f"{c:g}" if isinstance(c, float) else str(c) for c in categories]
        )
        ax.set_xlim(-0.5, len(categories) - 0.5)
        ax.grid(axis="x", visible=False)
    elif isinstance(dim, LogUniform) or (isinstance(dim, IntRange) and dim.log):
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_xscale("log")
        ax.set_xlim(dim.low / 1.25, dim.high * 1.25)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    elif dim is not None:
        margin = 0.04 * (dim.high - dim.low)
        ax.set_xlim(dim.low - margin, dim.high + margin)
    for pruned in (False, True):
        chosen = [(x, y) for x, y, p in values if p == pruned]
        if chosen:
            x, y = zip(*chosen)
            style = {"facecolors": "none"} if pruned else {}
            ax.scatter(x, y, s=16, color=plot.COLORS["valid"], **style, zorder=3)
    ax.set_xlabel(name)


# ----------------------------------------------------------------------------
# The cost of choosing
# ----------------------------------------------------------------------------
def selection_gap(valid_errors, test_errors, k: int) -> tuple[float, float]:
    """Choose the best of ``k`` trials by validation error; expected (validation, test) error of the choice.

    The expectation is over every set of ``k`` trials drawn without
    replacement from those given (computed exactly, not sampled): the trial
    ranked ``j``-th by validation error is the choice in a fraction
    ``C(n - j, k - 1) / C(n, k)`` of those sets.  Their difference, test
    minus validation, is how much the chosen validation error flatters the
    choice; it grows with ``k`` because the minimum of more noisy
    measurements is more likely a lucky one.
    """
    valid = np.asarray(valid_errors, dtype=float)
    test = np.asarray(test_errors, dtype=float)
    n = len(valid)
    if valid.shape != test.shape or valid.ndim != 1:
        raise ValueError(
            f"expected two 1-D arrays of the same length; got shapes {valid.shape} and {test.shape}."
        )
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer between 1 and the number of trials ({n}); got {k!r}.")
    order = np.argsort(valid, kind="stable")
    weights = np.array([math.comb(n - j, k - 1) for j in range(1, n + 1)], dtype=float) / math.comb(n, k)
    return float(weights @ valid[order]), float(weights @ test[order])


# ----------------------------------------------------------------------------
# The whole command
# ----------------------------------------------------------------------------
@dataclass
class _Best:
    """The best completed trial whose parameters the checkpoint holds."""

    path: Path
    study_name: str
    number: int | None = None
    value: float = math.inf
    saved: list = field(default_factory=list)

    def load(self):
        from dlt_lib import checkpoint

        if not self.path.exists():
            return
        try:
            meta = checkpoint.read_metadata(self.path).get("search", {})
        except checkpoint.CheckpointError:
            return
        if meta.get("study") == self.study_name and meta.get("trial") is not None:
            self.number, self.value = int(meta["trial"]), float(meta["valid_error"])

    def offer(self, objective, number, value, settings, params):
        if params is None or not value < self.value:
            return
        from dlt_lib import checkpoint

        n_in = objective.splits()[0][0].shape[1]
        model = objective.build_model(settings, n_in)
        extra = {
            "dataset": objective.dataset,
            "settings": settings,
            "search": {"study": self.study_name, "trial": number, "valid_error": value},
        }
        checkpoint.save(self.path, model, params=params, extra=extra)
        self.number, self.value = number, value
        self.saved.append(number)


def run_search(
    objective: Objective,
    n_trials: int,
    output_dir,
    *,
    client,
    storage: str | None = None,
    study_name: str | None = None,
    sampler: str = "tpe",
    pruner: str = "median",
    seed: int | None = 0,
    progress: bool = True,
    grid_points: int = 3,
    log=print,
) -> dict:
    """A whole search, as ``python -m dlt_lib search`` runs it; returns the summary it writes.

    Writes into ``output_dir``: ``study.db`` (the default storage),
    ``best.npz`` (+ ``.json``: the best trial's model, saved as soon as it is
    known), ``trials.csv``, ``history.png``, ``parameters.png`` and
    ``summary.json``, which holds the best trial's **test** error: the only
    time the search touches the test set.
    """
    from dlt_lib import checkpoint

    started = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(output_dir / 'study.db').resolve()}"
    study_name = study_name or f"{objective.model}-{objective.dataset}"
    storage_handle = open_storage(storage, client=client)
    best = _Best(output_dir / "best.npz", study_name)
    best.load()

    def keep_best(result):
        best.offer(objective, result.number, result.value, result.settings, result.params)

    study = optimize(
        objective,
        n_trials,
        client=client,
        storage=storage_handle,
        study_name=study_name,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        progress=progress,
        on_result=keep_best,
        grid_points=grid_points,
    )
    completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not completed:
        raise SearchError(
            f"none of the {n_finished(study)} trials completed (all were pruned or diverged): "
            "widen the space (e.g. smaller learning rates) or use --pruner none."
        )
    best_trial = study.best_trial
    if best.number != best_trial.number:
        # Its parameters never reached this process (a run interrupted after the
        # trial finished): train it again, here, with the same settings and seed.
        log(
            f"Training trial {best_trial.number} again for the checkpoint (its parameters were not received)."
        )
        model, _ = objective.fit(best_trial.user_attrs["settings"])
        best.value = math.inf
        best.offer(
            objective,
            best_trial.number,
            best_trial.value,
            best_trial.user_attrs["settings"],
            model.get_param_values(),
        )
    model = checkpoint.load(best.path)
    splits = objective.splits()
    X_test, y_test = splits[2]
    test_error = model.error_rate(X_test, y_test)  # the one look at the test set
    write_trials_csv(study, output_dir / "trials.csv")
    _save_plots(study, objective, output_dir)
    states = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    summary = {
        "model": objective.model,
        "dataset": objective.dataset,
        "data_source": splits.source,
        "study": study_name,
        "storage": _mask(storage),
        "sampler": sampler,
        "pruner": pruner,
        "seed": seed,
        "search": objective.describe(),
        "trials_requested": n_trials,
        "trials_finished": n_finished(study),
        "trials_by_state": states,
        "best_trial": best_trial.number,
        "best_settings": best_trial.user_attrs.get("settings", best_trial.params),
        "best_valid_error": best_trial.value,
        "test_error": test_error,
        "test_examples": int(len(y_test)),
        "checkpoint": str(best.path),
        "seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(_jsonable(summary), indent=2) + "\n"
    tmp = output_dir / f".summary.json.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(text)
    os.replace(tmp, output_dir / "summary.json")
    return summary


def _save_plots(study, objective, output_dir):
    import matplotlib.pyplot as plt

    from dlt_lib import plot

    title = f"{objective.model} on {objective.dataset}: {n_finished(study)} trials"
    for name, make in (
        ("history", lambda: plot_history(study, title=title)),
        ("parameters", lambda: plot_parameters(study, objective.space)),
    ):
        fig = make()
        plot.save_figure(fig, output_dir / f"{name}.png")
        plt.close(fig)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

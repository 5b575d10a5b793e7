"""One early-stopping trainer for every model in the book.

The tutorials copy the same ~40-line training loop into each script
(``logistic_sgd.py``, ``mlp.py``, ``convolutional_mlp.py``).  Here it lives
once, in pieces you can read separately:

:class:`EarlyStopping`
    the *patience* rule of the tutorials, line for line, as a small object
    that is told each validation result and answers "new best?" and "stop?".
:class:`MinibatchFeed`
    the training set as the compiled step sees it: minibatches in shared
    variables (:func:`dlt_lib.data.shared_dataset`), in the tutorials' fixed
    order or shuffled each epoch, all of them or a chunk at a time.
:func:`compile_updates`
    the training step: an update rule from :mod:`dlt_lib.updates` compiled
    over those minibatches, callable as ``runner(first_iteration, n)``.
:func:`train`
    the loop: run updates, validate every ``validation_frequency`` updates,
    keep the best parameters (measuring the test error at each new best),
    stop when the patience runs out, and return a :class:`History`.

Speed note (how the updates are run).  At batch size 20 an epoch is 2,500
updates of a few microseconds each, so the cost of *calling* the compiled step
matters as much as the arithmetic.  In C mode a Python loop calls the
one-minibatch step with ``trust_input`` (about a microsecond per call); this
measured faster than running the updates inside a ``pytensor.scan``, whose
own per-iteration bookkeeping costs more.  A call of a Numba-compiled
function costs far more, so in Numba mode one compiled call runs a whole
*chunk* of updates (a ``pytensor.scan`` over minibatch indices) between two
validations.  JAX mode needs static loop lengths, so it calls the step too.
The updates done are the same in every case (``benchmarks/README.md``).

Taught in ``book/early_stopping.ipynb`` (the loop and the patience rule) and
``book/gradient_descent.ipynb`` (minibatches, update rules).
"""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Variable
from pytensor.graph.replace import clone_replace
from tqdm.auto import tqdm  # a widget in a notebook, text in a terminal

from dlt_lib import backend, checkpoint, data, files
from dlt_lib import updates as update_rules
from dlt_lib.validation import InvalidParameterError, check_scalar

__all__ = [
    "ChanceLevelWarning",
    "EarlyStopping",
    "History",
    "MinibatchFeed",
    "SavedState",
    "TrainingDiverged",
    "UpdateRunner",
    "ValidationRecord",
    "check_resume",
    "compile_updates",
    "read_training_state",
    "restore_training_state",
    "run_settings",
    "save_training_state",
    "scans_by_default",
    "train",
    "training_cost",
    "training_state_path",
    "why_diverged",
]


class TrainingDiverged(FloatingPointError):
    """The training cost became NaN or infinite.  See ``book/early_stopping.ipynb``."""


# ----------------------------------------------------------------------------
# The patience rule
# ----------------------------------------------------------------------------
@dataclass
class EarlyStopping:
    """The tutorials' early-stopping rule (book/early_stopping.ipynb).

    Iterations (minibatch updates) are counted from 0.  After iteration
    ``it``, the validation error is measured when
    ``(it + 1) % validation_frequency == 0``.  A result below
    ``best * improvement_threshold`` is a *significant* improvement: it
    extends the patience to ``max(patience, it * patience_increase)``.
    Any result below ``best`` becomes the new best.  Training stops
    after the first iteration ``it`` with ``patience <= it``.
    """

    patience: float = 5000
    patience_increase: float = 2.0
    improvement_threshold: float = 0.995
    best_loss: float = math.inf
    best_iteration: int = -1

    def __post_init__(self):
        # Checked here, a bad value is a clear error, not a strange run.
        check_scalar(self.patience, "patience", min_val=1)
        check_scalar(self.patience_increase, "patience_increase", min_val=1)
        check_scalar(
            self.improvement_threshold,
            "improvement_threshold",
            min_val=0,
            max_val=1,
            include_boundaries="right",
        )

    def validation_frequency(self, n_train_batches: int) -> int:
        """Validate at least twice before the patience runs out."""
        return max(1, min(int(n_train_batches), int(self.patience // 2)))

    def update(self, iteration: int, validation_loss: float) -> bool:
        """Record a validation result; return True at a new best."""
        if validation_loss < self.best_loss:
            significant = self.best_loss * self.improvement_threshold
            if validation_loss < significant:
                self.patience = max(
                    self.patience,
                    iteration * self.patience_increase,
                )
            self.best_loss = float(validation_loss)
            self.best_iteration = int(iteration)
            return True
        return False

    def should_stop(self, iteration: int) -> bool:
        """True once ``patience <= iteration``."""
        return self.patience <= iteration

    def stop_iteration(self) -> int:
        """The first iteration at which :meth:`should_stop` is true."""
        return max(0, math.ceil(self.patience))


# ----------------------------------------------------------------------------
# What a run records
# ----------------------------------------------------------------------------
@dataclass
class ValidationRecord:
    """One validation: what :func:`train` passes to ``on_validation`` and keeps in :attr:`History.records`.

    Taught in ``book/early_stopping.ipynb``.
    """

    iteration: int  # 0-based index of the minibatch update just done
    epoch: int  # 1-based
    train_cost: float  # mean training cost (regularised) since the previous validation
    valid_error: float  # 0-1 loss rate on the whole validation set
    valid_nll: float  # mean negative log-likelihood on the validation set
    test_error: float | None  # measured only at a new best, as in the tutorials
    is_best: bool
    patience: float
    seconds: float  # wall time since training started


@dataclass
class History:
    """Everything a run measured, in a form the plots and the book read.  Taught in ``book/early_stopping.ipynb``."""

    records: list = field(default_factory=list)
    train_costs: list = field(default_factory=list)  # one per minibatch update
    n_train_batches: int = 0
    validation_frequency: int = 0
    stopped_at: int = -1  # last iteration done
    stop_reason: str = ""
    epochs: int = 0
    seconds: float = 0.0
    compile_seconds: float = 0.0
    mode: str = ""
    data_source: str = ""
    shuffle: int | None = None  # the seed of the per-epoch order; None: the tutorials' fixed order
    warnings: list = field(default_factory=list)  # what the run warned of (ChanceLevelWarning)
    resumed: dict | None = None  # for a resumed run: the state it came from, its iteration, what changed

    @property
    def best(self) -> ValidationRecord | None:
        bests = [r for r in self.records if r.is_best]
        return bests[-1] if bests else None

    @property
    def best_valid_error(self) -> float:
        return self.best.valid_error if self.best else math.nan

    @property
    def test_error(self) -> float:
        """Test error of the best model (what the tutorials report)."""
        return self.best.test_error if self.best else math.nan

    def column(self, name: str) -> np.ndarray:
        return np.array(
            [np.nan if getattr(r, name) is None else getattr(r, name) for r in self.records], dtype=float
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train_costs"] = [float(c) for c in self.train_costs]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> History:
        known = {f.name for f in fields(cls)}
        history = cls(**{k: v for k, v in d.items() if k in known})
        history.records = [ValidationRecord(**r) for r in history.records]
        return history

    def summary(self) -> str:
        b = self.best
        if b is None:
            return "no validation was run"
        # Three short lines, so that a chapter's page shows them whole.
        return (
            f"best validation error {100 * b.valid_error:.3f}%, test error {100 * b.test_error:.3f}% "
            f"(iteration {b.iteration}, epoch {b.epoch})\n"
            f"{self.stopped_at + 1} updates, {self.epochs} epoch{'s' * (self.epochs != 1)}, {self.seconds:.1f} s\n"
            f"stopped: {self.stop_reason}"
        )


# ----------------------------------------------------------------------------
# The minibatches
# ----------------------------------------------------------------------------
class MinibatchFeed:
    """The training set as the compiled step reads it: minibatches in shared variables.

    The shared variables come from :func:`dlt_lib.data.shared_dataset` with
    ``batch_size``, so that minibatch ``i`` is the block ``X[i]``: the same
    rows as the tutorials' slice ``X[i * batch_size:(i + 1) * batch_size]``,
    contiguous, and of a size known when compiling (JAX needs that).  The
    last ``n % batch_size`` examples of an epoch are left out, as in the
    tutorials.

    ``shuffle=None`` (the default) visits the examples in the same, stored
    order every epoch, as the tutorials do; an integer seed gives each epoch
    its own random order (the same for the same seed and epoch, so a resumed
    run goes on exactly as it would have).

    ``chunk_size=None`` keeps every minibatch in the shared variables; a
    number keeps only a chunk of that many consecutive minibatches, and the
    next chunk replaces it (``set_value``) when the updates reach it: the
    tutorials' advice for data larger than the device's memory.
    Taught in ``book/dataset.ipynb`` (shared variables) and ``book/backends.ipynb``.
    """

    def __init__(self, X, y, batch_size, *, shuffle=None, chunk_size=None, mode=None):
        hint = f"A minibatch must fit in the {len(X)} training examples."
        check_scalar(batch_size, "batch_size", numbers.Integral, min_val=1, max_val=len(X), hint=hint)
        if shuffle is not None:
            check_scalar(shuffle, "shuffle", numbers.Integral, min_val=0, hint="Pass a seed, or None.")
        if chunk_size is not None:
            check_scalar(chunk_size, "chunk_size", numbers.Integral, min_val=1, hint="It counts minibatches.")
        self.X, self.y = np.asarray(X), np.asarray(y)
        self.batch_size, self.shuffle, self.mode = int(batch_size), shuffle, mode
        self.n_batches = len(X) // self.batch_size  # per epoch
        self.chunk_size = min(chunk_size or self.n_batches, self.n_batches)  # minibatches held at a time
        n = self.chunk_size * self.batch_size
        if shuffle is None and self.chunk_size == self.n_batches:
            first = (X[:n], y[:n])  # stored once, never changed
        else:  # buffers of our own, refilled in place: the caller's arrays are never written to
            self._buffers = (np.empty((n, np.shape(X)[1]), pytensor.config.floatX), np.empty(n, "int32"))
            first = self._fill(0, 0)
        self.shared = data.shared_dataset(first, batch_size=self.batch_size, name="train")
        backend.place_on_device([self.shared.X, self.shared.y], mode)
        self._loaded = (0, 0)  # (epoch, chunk) in the shared variables

    def minibatch(self, index):
        """The symbolic ``(X, y)`` of minibatch ``index`` of the chunk in memory."""
        return self.shared.minibatch(index)

    def refill(self, X, y, shuffle=None) -> None:
        """Feed other arrays of the same shapes (and another shuffle seed) to the same compiled step."""
        if np.shape(X) != self.X.shape or np.shape(y) != self.y.shape:
            raise InvalidParameterError(
                f"refill needs arrays of the shapes this feed was built for, {self.X.shape} and {self.y.shape}; "
                f"got {np.shape(X)} and {np.shape(y)}. Build a new feed (compile again) for other shapes."
            )
        if (shuffle is None) != (self.shuffle is None):
            raise InvalidParameterError("refill cannot turn shuffling on or off: build a new feed for that.")
        if X is self.X and y is self.y and shuffle == self.shuffle:
            return  # the same data in the same order: what is loaded stays right
        self.X, self.y, self.shuffle, self._order = np.asarray(X), np.asarray(y), shuffle, (None,)
        if hasattr(self, "_buffers"):
            self._loaded = None  # the next load() fills the buffers from the new arrays
            return
        n = self.n_batches * self.batch_size
        split = data.shared_dataset((self.X[:n], self.y[:n]), batch_size=self.batch_size)
        self.shared.X.set_value(split.X.get_value(borrow=True), borrow=True)
        self.shared.y.set_value(split.y.get_value(borrow=True), borrow=True)
        backend.place_on_device([self.shared.X, self.shared.y], self.mode)

    def load(self, iteration: int) -> int:
        """Put the chunk holding update ``iteration``'s minibatch in the shared variables; return its index there."""
        epoch, batch = divmod(iteration, self.n_batches)
        chunk, index = divmod(batch, self.chunk_size)
        key = (epoch if self.shuffle is not None else 0, chunk)
        if key != self._loaded:
            X, y = self._fill(*key)
            shape = self.shared.X.type.shape
            self.shared.X.set_value(X.reshape(shape), borrow=True)
            self.shared.y.set_value(y.reshape(shape[:2]), borrow=True)
            backend.place_on_device([self.shared.X, self.shared.y], self.mode)
            self._loaded = key
        return index

    def chunk_end(self, iteration: int) -> int:
        """The last update of the chunk that update ``iteration`` belongs to."""
        epoch, batch = divmod(iteration, self.n_batches)
        last = min((batch // self.chunk_size + 1) * self.chunk_size, self.n_batches) - 1
        return epoch * self.n_batches + last

    def order(self, epoch: int) -> np.ndarray:
        """The examples in the order epoch ``epoch`` (from 0) visits them."""
        if self.shuffle is None:
            return np.arange(len(self.X))
        if getattr(self, "_order", (None,))[0] != epoch:  # one permutation per epoch, not per chunk
            self._order = (epoch, np.random.default_rng([self.shuffle, epoch]).permutation(len(self.X)))
        return self._order[1]

    def _fill(self, epoch, chunk):
        """The buffers, holding chunk ``chunk`` of epoch ``epoch`` (a short last chunk leaves stale rows)."""
        start = chunk * self.chunk_size * self.batch_size
        stop = min(start + self.chunk_size * self.batch_size, self.n_batches * self.batch_size)
        X, y = self._buffers
        if self.shuffle is None:  # a slice: a plain copy
            X[: stop - start], y[: stop - start] = self.X[start:stop], self.y[start:stop]
        else:
            rows = self.order(epoch)[start:stop]
            if self.X.dtype == X.dtype:  # straight into the buffer, without a temporary copy
                np.take(self.X, rows, axis=0, out=X[: len(rows)], mode="clip")
            else:
                X[: len(rows)] = self.X[rows]
            y[: len(rows)] = self.y[rows]
        return X, y


# ----------------------------------------------------------------------------
# The training step
# ----------------------------------------------------------------------------
def training_cost(model, y, l1=0.0, l2=0.0):
    """``NLL + l1 * L1 + l2 * L2_sqr``: the regularised loss of the tutorials.

    ``l1`` and ``l2`` are numbers (a penalty of 0 is left out) or symbolic
    scalars such as shared variables.  Taught in ``book/regularization.ipynb``.
    """
    cost = model.negative_log_likelihood(y)
    for weight, penalty in ((l1, model.L1), (l2, model.L2_sqr)):
        if isinstance(weight, Variable):
            cost = cost + pt.cast(weight, pytensor.config.floatX) * penalty
        elif weight:
            cost = cost + np.asarray(weight, dtype=pytensor.config.floatX) * penalty
    return cost


def _check_numbers(learning_rate, l1, l2) -> None:
    update_rules.check_learning_rate(learning_rate)
    for name, value in (("l1", l1), ("l2", l2)):
        if not isinstance(value, Variable):
            check_scalar(value, name, min_val=0, hint="It is the weight of a penalty; 0 turns it off.")


def _shared_scalar(value, name):
    """A number as a floatX shared scalar: a step compiled with it serves every value (no new C module)."""
    if isinstance(value, Variable) or not value:
        return value
    return pytensor.shared(np.asarray(value, dtype=pytensor.config.floatX), name=name)


class UpdateRunner:
    """Runs minibatch updates: ``runner(start, n)`` does updates ``start .. start + n - 1``.

    Updates are counted from 0 over all epochs (update ``it`` is minibatch
    ``it % n_batches`` of epoch ``it // n_batches``), as the tutorials count
    iterations.  Keeps what it was built from: ``cost``, the label variable
    ``y``, the ``updates`` mapping, the :class:`MinibatchFeed` ``feed``, and
    ``state_vars``, the optimizer's state (velocities, averages, counters).
    Taught in ``book/backends.ipynb``.
    """

    def __init__(self, model, cost, y, updates, feed, mode_name, use_scan):
        self.cost, self.y, self.updates, self.feed, self.use_scan = cost, y, updates, feed, use_scan
        self.n_batches = feed.n_batches
        self.state_vars = [var for var in updates if not any(var is p for p in model.params)]
        self.hyperparameters = {}  # name -> the shared scalar compile_updates made for a number
        compile_fn = _compile_scan if use_scan else _compile_step
        self.fn = compile_fn(model, cost, y, updates, feed, backend.get_mode(mode_name))
        # The inputs are always int64 scalars we make ourselves (once, here):
        # skip the per-call input checks (a large part of the cost of a tiny call).
        self.fn.trust_input = True
        self._index = [np.asarray(i, dtype="int64") for i in range(feed.chunk_size)]

    def restart(self, **values) -> None:
        """Start a new run with this compiled step: new values of its shared hyper-parameters, zero optimizer state.

        ``values``: numbers for the learning rate, ``l1`` and ``l2`` that
        :func:`compile_updates` keeps in shared scalars (``lr=``, ``l1=``, ``l2=``).
        """
        for name, value in values.items():
            self.hyperparameters[name].set_value(np.asarray(value, dtype=pytensor.config.floatX))
        for var in self.state_vars:
            var.set_value(np.zeros_like(var.get_value(borrow=True)))

    def epoch(self) -> np.ndarray:
        """One pass over every minibatch (of the first epoch's order); returns the cost of each update."""
        return self(0, self.n_batches)

    def __call__(self, start: int, n: int) -> np.ndarray:
        costs = []
        while n > 0:
            index = self.feed.load(start)
            count = min(n, self.feed.chunk_end(start) - start + 1)
            costs.append(self._run(index, count))
            start, n = start + count, n - count
        return np.concatenate(costs) if costs else np.empty(0)

    def _run(self, index, count):
        if self.use_scan:
            return np.asarray(self.fn(self._index[index], np.asarray(count, dtype="int64")))
        step, indices = self.fn, self._index
        return np.array([step(indices[i]) for i in range(index, index + count)])


def _compile_step(model, cost, y, updates, feed, mode):
    index = pt.lscalar("index")
    X_batch, y_batch = feed.minibatch(index)
    givens = {model.input: X_batch, y: y_batch}
    return pytensor.function([index], cost, updates=updates, givens=givens, mode=mode)


def _compile_scan(model, cost, y, updates, feed, mode):
    """One call runs ``n_steps`` updates from minibatch ``start``: a scan whose state is every updated variable."""
    shared = list(updates)
    start, n_steps = pt.lscalar("start"), pt.lscalar("n_steps")

    def step(i, *state):
        X_batch, y_batch = feed.minibatch(i)
        replace = {model.input: X_batch, y: y_batch, **dict(zip(shared, state))}
        return tuple(clone_replace([cost, *updates.values()], replace=replace))

    outputs = pytensor.scan(
        step,
        sequences=[pt.arange(start, start + n_steps)],
        outputs_info=[None, *shared],
        return_updates=False,
        mode=mode,  # the loop body too, or it would be compiled in PyTensor's default mode
    )
    final = [out[-1] for out in outputs[1:]]
    return pytensor.function([start, n_steps], outputs[0], updates=list(zip(shared, final)), mode=mode)


def scans_by_default(mode_name: str) -> bool:
    """Whether the trainer runs chunks of updates in a ``scan`` in this mode: only in NUMBA (see the speed note above).

    See ``book/backends.ipynb``.
    """
    return backend.normalise_mode(mode_name) == "NUMBA"


def compile_updates(
    model,
    X,
    y,
    *,
    batch_size,
    learning_rate,
    optimizer="sgd",
    l1=0.0,
    l2=0.0,
    mode=None,
    use_scan=None,
    shuffle=None,
    chunk_size=None,
    **optimizer_kwargs,
) -> UpdateRunner:
    """Compile the trainer's minibatch updates on ``(X, y)``, without the early-stopping loop.

    For timing and experiments: ``runner.epoch()`` runs one epoch of updates
    exactly as :func:`train` does.  The arguments are :func:`train`'s;
    ``optimizer`` is a rule's name or any function ``(cost, params,
    learning_rate, **optimizer_kwargs) -> updates``.  A number given as the
    learning rate, ``l1`` or ``l2`` is kept in a shared scalar, so that a run
    with other values (a hyper-parameter search) reuses the compiled step; to
    change another hyper-parameter (``momentum``) without compiling, pass a
    shared variable.  Taught in ``book/backends.ipynb``.
    """
    mode_name = backend.mode_name() if mode is None else backend.normalise_mode(mode)
    _check_numbers(learning_rate, l1, l2)
    model.check_data(X, y)
    # Numbers become shared scalars, so that the next run with other values reuses the compiled step.
    given = {"lr": learning_rate, "l1": l1, "l2": l2}
    shared = {name: _shared_scalar(value, name) for name, value in given.items()}
    learning_rate, l1, l2 = shared.values()
    rule = update_rules.get_optimizer(optimizer) if isinstance(optimizer, str) else optimizer
    feed = MinibatchFeed(X, y, batch_size, shuffle=shuffle, chunk_size=chunk_size, mode=mode_name)
    labels = pt.ivector("y")
    cost = training_cost(model, labels, l1, l2)
    updates = rule(cost, model.params, learning_rate=learning_rate, **optimizer_kwargs)
    if use_scan is None:
        use_scan = scans_by_default(mode_name)
    runner = UpdateRunner(model, cost, labels, updates, feed, mode_name, use_scan)
    runner.hyperparameters = {name: var for name, var in shared.items() if var is not given[name]}
    return runner


# ----------------------------------------------------------------------------
# Resuming an interrupted run
# ----------------------------------------------------------------------------
_STATE_FORMAT = "dlt_lib training state 3"
#: What a resumed run may change: n_epochs (to train longer).  Every other
#: recorded setting must be the saved run's (the CLI's mode and chunk size are
#: not recorded: they change how the updates are run, not which).
RESUMABLE_CHANGES = ("n_epochs",)


class SavedState(NamedTuple):
    """A training state read back by :func:`read_training_state`, already checked.  See ``book/saving_and_plotting.ipynb``."""

    source: Path
    arrays: dict
    meta: dict
    history: History
    stopper: EarlyStopping


def training_state_path(path) -> Path:
    """``runs/best.npz`` -> ``runs/best.last.npz``: where the state to resume a run is kept.

    See ``book/saving_and_plotting.ipynb``.
    """
    path = checkpoint.npz_path(path)
    return path if path.name.endswith(".last.npz") else path.with_name(path.stem + ".last.npz")


def _as_json(value):
    """A setting as the saved state records it: numbers as numbers, anything symbolic by name only."""
    if isinstance(value, Variable):
        return {"symbolic": str(value)}
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if value is None or isinstance(value, (bool, str)):
        return value
    return getattr(value, "__qualname__", repr(value))  # an update rule passed as a function


def _fingerprint(*splits) -> list:
    """Shape and CRC-32 of each array: enough to tell other data from the same data, in milliseconds per MB."""
    return [
        [list(np.shape(X)), zlib.crc32(np.ascontiguousarray(X)), zlib.crc32(np.ascontiguousarray(y))]
        for X, y in splits
    ]


def run_settings(settings: dict, stopper: EarlyStopping, n_epochs: int, train_set, valid) -> dict:
    """What a saved state records of a run, for a resumed run to repeat: every setting that shapes its updates.

    ``settings`` as :func:`train` gathers them (the update rule's own
    arguments included); the patience rule's starting values; ``n_epochs``;
    and the training and validation data by shape and checksum.
    See ``book/saving_and_plotting.ipynb``.
    """
    record = {key: _as_json(value) for key, value in settings.items() if key not in ("chunk_size", "mode")}
    record.update(
        patience=float(stopper.patience),
        patience_increase=float(stopper.patience_increase),
        improvement_threshold=float(stopper.improvement_threshold),
        n_epochs=int(n_epochs),
        data=_fingerprint(train_set, valid),
    )
    return record


def _changed_settings(saved: dict, now: dict) -> list[str]:
    """``"learning_rate 0.13 (saved) -> 0.5 (now)"`` for each setting that differs; symbolic values are not compared."""
    changes = []
    for key in sorted(set(saved) | set(now)):
        old, new = saved.get(key), now.get(key)
        symbolic = any(isinstance(v, dict) and "symbolic" in v for v in (old, new))
        if old == new or symbolic or key in RESUMABLE_CHANGES:
            continue
        if key == "data":
            changes.append("the training or validation data differ (another data set, or other files)")
        else:
            changes.append(f"{key} {old!r} (saved) -> {new!r} (now)")
    return changes


def save_training_state(
    path, model, runner, stopper, history, iteration, best_params, *, settings=None, finished=None
) -> Path:
    """Everything needed to continue a run: current and best parameters, optimizer state, patience, history.

    ``settings`` (from :func:`run_settings`) is what a resumed run must
    repeat; ``finished`` the reason the run stopped, once it has.
    See ``book/saving_and_plotting.ipynb``.
    """
    arrays = {f"param:{k}": v for k, v in model.get_param_values().items()}
    arrays.update({f"best:{k}": v for k, v in best_params.items()})
    arrays.update({f"state:{i}": var.get_value(borrow=False) for i, var in enumerate(runner.state_vars)})
    arrays["history:train_costs"] = np.asarray(history.train_costs, dtype=np.float64)  # an array, not JSON
    described = history.to_dict()
    del described["train_costs"]
    meta = {
        "format": _STATE_FORMAT,
        **checkpoint.model_metadata(model),
        "next_iteration": int(iteration),
        "stopper": asdict(stopper),
        "history": described,
        "settings": settings or {},
        "finished": finished,
    }
    return checkpoint.write_arrays(training_state_path(path), arrays, meta)


def _refuse(source, problem: str):
    raise checkpoint.CheckpointError(
        f"Cannot resume from {source}: {problem}. Start a new run (without resuming), or use an intact copy."
    )


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_training_state(path) -> SavedState:
    """Read the state saved next to checkpoint ``path`` and check that it is one a run could have written.

    Refuses (:class:`~dlt_lib.checkpoint.CheckpointError`) a missing state,
    another format, and values no run writes (``next_iteration: -5``, a
    history whose length is not the updates done, a best error above 1).
    See ``book/saving_and_plotting.ipynb``.
    """
    source = training_state_path(path)
    if not source.exists():
        raise checkpoint.CheckpointError(
            f"Nothing to resume in {source.parent}: it holds no {source.name}, the state a run saves there at "
            "each validation. Start the run without resuming."
        )
    arrays, meta = checkpoint.read_arrays(source)
    if meta.get("format") != _STATE_FORMAT:
        _refuse(source, f"it was not written by this version of the trainer ({meta.get('format')!r})")
    try:
        history = History.from_dict(
            {**meta["history"], "train_costs": list(arrays.pop("history:train_costs"))}
        )
        stopper = EarlyStopping(**meta["stopper"])  # checks patience, increase and threshold
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        _refuse(source, f"its history or patience is not what a run writes ({exc}): it was edited or damaged")
    _check_progress(source, meta, history, stopper)
    return SavedState(source, arrays, meta, history, stopper)


def _check_progress(source, meta, history, stopper) -> None:
    """Refuse counts and results that no run writes: the file was edited or damaged."""
    n = meta.get("next_iteration")
    if not _is_count(n):
        _refuse(source, f"its next_iteration is {n!r}, which no run writes: it was edited or damaged")
    iterations = [r.iteration for r in history.records]
    try:
        checks = [
            (
                len(history.train_costs) == n,
                f"it counts {n:,} updates done but holds {len(history.train_costs):,} costs",
            ),
            (history.stopped_at == n - 1, f"its last update is {history.stopped_at!r}, not {n - 1}"),
            (
                all(map(_is_count, iterations))
                and iterations == sorted(set(iterations))
                and max(iterations, default=-1) < n,
                "its validations are not at increasing iterations among the updates done",
            ),
            (
                stopper.best_loss == math.inf or 0 <= stopper.best_loss <= 1,
                f"its best error is {stopper.best_loss!r}",
            ),
            (
                _is_count(stopper.best_iteration + 1) and stopper.best_iteration < n,
                f"its best iteration is {stopper.best_iteration!r}",
            ),
            (
                meta.get("finished") is None or isinstance(meta["finished"], str),
                "its 'finished' is not a reason",
            ),
        ]
    except TypeError as exc:
        checks = [(False, f"it holds values of the wrong type ({exc})")]
    for ok, problem in checks:
        if not ok:
            _refuse(source, f"{problem}, which no run writes: it was edited or damaged")


def check_resume(saved: SavedState, model, settings: dict, n_updates: int) -> None:
    """Refuse to resume ``saved`` with another model, other settings or fewer updates than it has done.

    ``settings`` are :func:`run_settings` of the run that would resume; every
    setting that differs is named (``learning_rate 0.13 (saved) -> 0.5 (now)``).
    See ``book/saving_and_plotting.ipynb``.
    """
    ours, meta = checkpoint.model_metadata(model), saved.meta
    if [meta.get(k) for k in ("model_class", "hyperparameters", "parameters")] != [
        ours[k] for k in ("model_class", "hyperparameters", "parameters")
    ]:
        _refuse(
            saved.source,
            f"it was saved from a {meta.get('model_class')} with {meta.get('hyperparameters')}; this run "
            f"trains a {ours['model_class']} with {ours['hyperparameters']}",
        )
    changes = _changed_settings(meta.get("settings") or {}, settings)
    if changes:
        raise checkpoint.CheckpointError(
            f"Cannot resume from {saved.source}: the settings differ from the saved run's: {'; '.join(changes)}. "
            "Resume with the saved run's settings, or start a new run elsewhere."
        )
    if meta["next_iteration"] > n_updates:
        _refuse(
            saved.source,
            f"it has done {meta['next_iteration']:,} updates, more than the {n_updates:,} of "
            f"n_epochs={settings.get('n_epochs')}; resume with at least its n_epochs "
            f"({(meta.get('settings') or {}).get('n_epochs')})",
        )


def restore_training_state(path, model, runner, stopper, history):
    """Load a saved state (a path, or what :func:`read_training_state` returned) into the run.

    Returns ``(next_iteration, best_params)``.  Refuses
    (:class:`~dlt_lib.checkpoint.CheckpointError`) arrays that do not fit
    the model or the optimizer, before changing anything.
    See ``book/saving_and_plotting.ipynb``.
    """
    saved = path if isinstance(path, SavedState) else read_training_state(path)
    state, params, best = (_group(saved.arrays, g) for g in ("state", "param", "best"))
    shapes = {name: value.shape for name, value in model.get_param_values().items()}
    if [state.get(str(i), np.empty(0)).shape for i in range(len(runner.state_vars))] != [
        var.get_value(borrow=True).shape for var in runner.state_vars
    ] or len(state) != len(runner.state_vars):
        _refuse(
            saved.source, "its optimizer state does not fit this optimizer: resume with the same optimizer"
        )
    if {k: v.shape for k, v in params.items()} != shapes or {k: v.shape for k, v in best.items()} != shapes:
        _refuse(saved.source, f"its parameters do not fit this model's {shapes}")
    model.set_param_values(params)
    for i, var in enumerate(runner.state_vars):
        var.set_value(state[str(i)].astype(var.dtype, copy=False))
    for f in fields(EarlyStopping):
        setattr(stopper, f.name, getattr(saved.stopper, f.name))
    for name in ("records", "train_costs", "seconds", "stopped_at", "warnings"):
        setattr(history, name, getattr(saved.history, name))
    return int(saved.meta["next_iteration"]), best


def _group(arrays: dict, prefix: str) -> dict:
    """``{"W": ...}`` from ``{"prefix:W": ...}``: one of the groups of arrays a training state holds."""
    return {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith(prefix + ":")}


# ----------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------
def train(
    model,
    data,
    *,
    learning_rate=0.13,
    batch_size: int = 600,
    n_epochs: int = 1000,
    optimizer="sgd",
    optimizer_kwargs: dict | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    early_stopping: EarlyStopping | None = None,
    shuffle: int | None = None,
    chunk_size: int | None = None,
    mode: str | None = None,
    progress: bool = True,
    checkpoint_path=None,
    resume_from=None,
    checkpoint_metadata: dict | None = None,
    restore_best: bool = True,
    on_validation=None,
) -> History:
    """Train ``model`` with minibatch updates and the tutorials' early stopping.

    Parameters
    ----------
    model : LogisticRegression, MLP, ...
        A :mod:`dlt_lib.models` classifier.  On return it holds the *best*
        parameters seen on the validation set (the last ones with
        ``restore_best=False``, or when an exception ends the run).
    data : (train, valid, test)
        Each ``(X, y)`` with ``X`` of shape ``(n, n_in)``, as returned by :mod:`dlt_lib.data`.
    learning_rate : float or symbolic scalar
        A number, a shared variable (change it with ``set_value``, e.g. from
        ``on_validation``) or a schedule such as
        ``updates.exponential_decay(0.1, 0.5, updates.step_counter(), 100)``.
    batch_size, n_epochs : int
    optimizer : str or callable
        A rule from :mod:`dlt_lib.updates` (``"sgd"``, ``"momentum"``, ``"adam"``, ...)
        or any function ``(cost, params, learning_rate, **optimizer_kwargs) -> updates``.
    l1, l2 : float
        Weights of the L1 and squared-L2 penalties on the model's weights.
    early_stopping : EarlyStopping, optional
        The patience rule; default ``EarlyStopping()`` (patience 5000, increase 2,
        threshold 0.995, as ``logistic_sgd.py``).  ``train`` works on a copy.
    shuffle : int, optional
        ``None`` (the default): every epoch visits the examples in the same,
        stored order, as the tutorials do (a run on the full data retraces
        theirs).  A seed: a new random order each epoch, the same for the
        same seed.
    chunk_size : int, optional
        Keep only this many minibatches in shared variables at a time, for
        data larger than the device's memory (see :class:`MinibatchFeed`);
        default all of them.  The updates are the same either way.
    mode : "C", "NUMBA" or "JAX"; default: :func:`dlt_lib.backend.mode_name`.
    progress : show a progress bar (terminal or notebook).
    checkpoint_path : str or Path, optional
        Save the best parameters there (atomically) at every new best, and the
        state needed to resume next to it (``<name>.last.npz``) at every validation.
    resume_from : str or Path, optional
        A checkpoint written with ``checkpoint_path``: continue that run,
        with its whole history.  Every setting must be the saved run's, except
        ``n_epochs`` (to train longer), ``mode`` and ``chunk_size``; another
        one is refused by name (:class:`~dlt_lib.checkpoint.CheckpointError`),
        before anything is compiled.  A run that had finished does no more.
    checkpoint_metadata : dict, optional
        JSON-able facts stored in each checkpoint under ``"metadata"`` (the
        trainer adds its results there under ``"training"``).
    restore_best : bool
        Put the best parameters back into the model at the end (the tutorials do).
    on_validation : callable, optional
        Called as ``on_validation(record)`` with each :class:`ValidationRecord`,
        after that validation's checkpoints are written (a hyper-parameter
        search reports it to its pruner here).  Return ``True`` to stop
        training there: ``history.stop_reason`` says so.  An exception it
        raises (``optuna.TrialPruned``, say) ends the run: the progress bar
        is closed, the exception propagates, and the checkpoints of that
        validation are on disk to resume from.

    Returns
    -------
    History
        The validation records, per-update training costs and timings.

    Warns
    -----
    ChanceLevelWarning
        After the third validation (or at the end of a shorter run), when
        the best validation error is no better than always answering the
        most frequent class; ``history.warnings`` keeps the message.

    The compiled functions are kept on the model: training the same model
    again with the same kind of settings (other numbers for the learning
    rate or penalties, other data of the same shapes, another shuffle seed)
    starts them afresh instead of compiling them again.

    Taught in ``book/early_stopping.ipynb``; the tutorials' loop is
    ``logistic_sgd.py``'s ``sgd_optimization_mnist``.
    """
    (Xtr, ytr), valid, test = _splits(data, model)
    _check_run_settings(n_epochs, checkpoint_metadata, batch_size, len(Xtr))
    mode_name = backend.mode_name() if mode is None else backend.normalise_mode(mode)
    settings = dict(batch_size=batch_size, learning_rate=learning_rate, optimizer=optimizer, l1=l1, l2=l2)
    settings.update(shuffle=shuffle, chunk_size=chunk_size, mode=mode_name, **(optimizer_kwargs or {}))
    stopper = copy.copy(early_stopping or EarlyStopping())  # yours stays as it is
    record = (
        run_settings(settings, stopper, n_epochs, (Xtr, ytr), valid) if checkpoint_path or resume_from else {}
    )
    # One run at a time writes there; what a killed run left half-written is deleted.
    with _locked(checkpoint_path):
        saved = _read_to_resume(resume_from, model, record, n_epochs * (len(Xtr) // batch_size))
        t0 = time.perf_counter()
        step, evaluate = _compiled(model, (Xtr, ytr), valid, test, settings)
        run = _Run(model, step, stopper, evaluate, settings, record, valid[1])
        history = run.history
        history.mode, history.shuffle, history.compile_seconds = mode_name, shuffle, time.perf_counter() - t0
        history.data_source = getattr(data, "source", "arrays passed by the caller")
        if saved is not None:
            run.resume(saved, n_epochs)
        n_updates = n_epochs * step.n_batches
        with tqdm(total=n_updates, initial=run.iteration, unit="minibatch", disable=not progress) as bar:
            history.stop_reason = run.finished or run.loop(
                n_updates, bar, checkpoint_path, checkpoint_metadata or {}, on_validation
            )
        history.seconds = run.seconds()
        history.epochs = history.stopped_at // step.n_batches + 1
        run.warn_if_no_better_than_chance(final=True)
        if checkpoint_path is not None:
            run.save_state(checkpoint_path, finished=history.stop_reason)
    if restore_best:
        model.set_param_values(run.best_params)
    return history


def _locked(checkpoint_path):
    """The checkpoint's directory held by this run (:func:`dlt_lib.files.locked_directory`), if it has one."""
    if checkpoint_path is None:
        return contextlib.nullcontext()
    return files.locked_directory(checkpoint.npz_path(checkpoint_path).parent)


def _read_to_resume(resume_from, model, record, n_updates) -> SavedState | None:
    """The state to resume from, read and compared with this run before anything is compiled."""
    if resume_from is None:
        return None
    saved = read_training_state(resume_from)
    check_resume(saved, model, record, n_updates)
    return saved


def _compiled(model, train_set, valid, test, settings):
    """The compiled step and evaluation for ``settings``: compiled at the first run, reused by the next ones.

    They are kept on the model (its parameters are what they update): a
    second ``train(model, ...)`` with the same kind of settings (numbers may
    differ: learning rate, penalties; data of the same shapes, another shuffle
    seed) starts the same compiled functions afresh instead of compiling them
    again, which takes seconds.
    """
    cache = model.__dict__.setdefault("_trainer_cache", {})
    key = _settings_key(train_set, settings)
    if key is None or key not in cache:
        step = compile_updates(model, *train_set, **settings)
        cache.update({} if key is None else {key: (step, {})})
    else:
        step = cache[key][0]
        _check_numbers(settings["learning_rate"], settings["l1"], settings["l2"])
        numbers_ = {"lr": settings["learning_rate"], "l1": settings["l1"], "l2": settings["l2"]}
        step.restart(**{name: value for name, value in numbers_.items() if name in step.hyperparameters})
        step.feed.refill(*train_set, shuffle=settings["shuffle"])
    evaluations = cache[key][1] if key is not None else {}
    data_key = tuple(id(array) for split in (valid, test) for array in split)
    if data_key not in evaluations:
        evaluations[data_key] = (valid, test, _Evaluation(model, step.y, valid, test, settings["mode"]))
    return step, evaluations[data_key][2]


def _settings_key(train_set, settings):
    """What decides the compiled graph: shapes, rule, which penalties, symbolic values, mode; None if unhashable."""
    X, y = (np.asarray(a) for a in train_set)
    kinds = {}
    for name, value in settings.items():
        if name in ("learning_rate", "l1", "l2") and not isinstance(value, Variable):
            value = bool(value)  # numbers go in shared scalars: only "is there a penalty" shapes the graph
        kinds[name] = value if name != "shuffle" else value is None
    try:
        key = (X.shape, X.dtype.str, y.shape, tuple(sorted(kinds.items())))
        hash(key)
    except TypeError:
        return None
    return key


def _check_run_settings(n_epochs, checkpoint_metadata, batch_size, n_train) -> None:
    check_scalar(n_epochs, "n_epochs", numbers.Integral, min_val=1, hint="It counts passes over the data.")
    hint = f"A minibatch must fit in the {n_train} training examples."
    check_scalar(batch_size, "batch_size", numbers.Integral, min_val=1, max_val=n_train, hint=hint)
    if "training" in (checkpoint_metadata or {}):
        raise InvalidParameterError("checkpoint_metadata must not use the key 'training': train() writes it.")


class _Evaluation:
    """The validation and test errors of the model over every example of each set, compiled once.

    A model with an ``eval_batch_size`` (LeNet) is evaluated in chunks of that
    many examples (and one chunk for the rest): a convolutional network on a
    whole 10,000-image set at once would hold gigabytes of intermediate results.
    """

    def __init__(self, model, y, valid, test, mode_name):
        self._valid = _evaluator(model, y, valid, "valid", mode_name)
        self._test = _evaluator(model, y, test, "test", mode_name)

    def valid(self):
        """``(error rate, mean NLL)`` on the validation set."""
        return self._valid()

    def test(self):
        """The error rate on the test set."""
        return self._test()[0]


def _evaluator(model, y, split, name, mode_name):
    """A function ``() -> (error rate, mean NLL)`` over every example of ``split``."""
    X, labels = split
    n = len(X)
    size = min(getattr(model, "eval_batch_size", None) or n, n)
    mode = backend.get_mode(mode_name)
    parts = []
    for lo, hi in ((0, n // size * size), (n // size * size, n)):
        if hi > lo:  # the full chunks, stored by chunk (shapes fixed: JAX), then the rest
            shared = data.shared_dataset((X[lo:hi], labels[lo:hi]), name=name, batch_size=min(size, hi - lo))
            backend.place_on_device([shared.X, shared.y], mode_name)
            index = pt.lscalar("index")
            chunk_x, chunk_y = shared.minibatch(index)
            outputs = [model.errors(y), model.negative_log_likelihood(y)]
            fn = pytensor.function([index], outputs, givens={model.input: chunk_x, y: chunk_y}, mode=mode)
            parts.append((fn, shared.n_batches(), min(size, hi - lo)))

    def evaluate():
        # Means of the chunks, weighted by their sizes: the means over all n examples.
        totals = np.zeros(2)
        for fn, n_chunks, rows in parts:
            for i in range(n_chunks):
                totals += rows * np.asarray(fn(i), dtype=float)
        return tuple(totals / n)

    return evaluate


#: How close to chance a best validation error must be for :class:`ChanceLevelWarning`: 5 percentage points.
CHANCE_MARGIN = 0.05


class ChanceLevelWarning(UserWarning):
    """Validation after validation, the model is no better than always answering the most frequent class.

    Taught in ``book/early_stopping.ipynb``.
    """


class _Run:
    """The state of the loop in :func:`train`, and its named steps."""

    def __init__(self, model, step, stopper, evaluate, settings, record, valid_labels):
        self.model, self.step, self.stopper, self.evaluate = model, step, stopper, evaluate
        self.settings, self.record = settings, record  # as given, and as a saved state records them
        frequency = stopper.validation_frequency(step.n_batches)
        self.history = History(n_train_batches=step.n_batches, validation_frequency=frequency)
        self.iteration = 0  # the next update to run, counted from 0 over all epochs
        self.best_params = model.get_param_values()
        self.since_validation = []  # costs of the updates since the last validation
        self.started = time.perf_counter()
        self.finished = None  # why a resumed run had already stopped
        counts = np.bincount(np.asarray(valid_labels, dtype=np.int64))
        self.chance_error = 1.0 - counts.max() / counts.sum()  # always answering the most frequent class

    def seconds(self) -> float:
        """Training time so far, a resumed run's earlier time included."""
        return self.history.seconds + time.perf_counter() - self.started

    def resume(self, saved: SavedState, n_epochs: int) -> None:
        """Continue ``saved``: its parameters, optimizer state, patience and history; nothing more if it had finished."""
        self.iteration, self.best_params = restore_training_state(
            saved, self.model, self.step, self.stopper, self.history
        )
        reason, old_epochs = saved.meta.get("finished"), (saved.meta.get("settings") or {}).get("n_epochs")
        if reason and not (reason.startswith("reached n_epochs") and n_epochs != old_epochs):
            self.finished = reason
        elif self.stopper.should_stop(
            self.history.stopped_at
        ):  # killed between its last validation and the end
            self.finished = self._patience_ran_out(self.history.stopped_at)
        if n_epochs != old_epochs:
            self.history.resumed = {"from": str(saved.source), "n_epochs": [old_epochs, n_epochs]}
        else:
            self.history.resumed = {"from": str(saved.source)}
        self.history.resumed["iteration"] = self.iteration

    def _patience_ran_out(self, done: int) -> str:
        return f"patience ran out (patience {self.stopper.patience:g} <= iteration {done})"

    def loop(self, n_updates, bar, checkpoint_path, metadata, on_validation) -> str:
        """The tutorials' loop: updates, a validation every ``validation_frequency``; returns why it stopped."""
        while self.iteration < n_updates:
            first = self.iteration
            done = self.update_until(self.next_pause())  # the last update done
            bar.update(done + 1 - first)
            if (done + 1) % self.history.validation_frequency == 0:
                record = self.validate(done)
                bar.set_postfix_str(
                    f"valid {100 * record.valid_error:.2f}%, best {100 * self.stopper.best_loss:.2f}%"
                )
                if checkpoint_path is not None:
                    self.save(checkpoint_path, metadata, record.is_best)
                if on_validation is not None and on_validation(record) is True:
                    return f"on_validation asked to stop at iteration {done}"
            if self.stopper.should_stop(done):
                return self._patience_ran_out(done)
        return f"reached n_epochs={n_updates // self.step.n_batches}"

    def next_pause(self) -> int:
        """The last update before the loop must look up: a validation, the end of an epoch, or the stop."""
        frequency, n_batches = self.history.validation_frequency, self.step.n_batches
        next_validation = (self.iteration // frequency + 1) * frequency - 1
        end_of_epoch = (self.iteration // n_batches + 1) * n_batches - 1
        return min(end_of_epoch, next_validation, max(self.iteration, self.stopper.stop_iteration()))

    def update_until(self, last: int) -> int:
        """Run updates ``self.iteration .. last``; raise :class:`TrainingDiverged` on a NaN or infinite cost."""
        costs = self.step(self.iteration, last - self.iteration + 1)
        bad = np.flatnonzero(~np.isfinite(costs))
        if bad.size:
            at = self.iteration + int(bad[0])
            raise TrainingDiverged(
                f"The training cost became {costs[bad[0]]} at iteration {at} "
                f"(epoch {at // self.step.n_batches + 1}). {why_diverged(self.model, self.settings)}"
            )
        self.history.train_costs.extend(float(c) for c in costs)
        self.since_validation.extend(costs)
        self.iteration = last + 1
        self.history.stopped_at = last
        return last

    def validate(self, iteration: int) -> ValidationRecord:
        """Measure the validation error; at a new best keep the parameters and measure the test error."""
        valid_error, valid_nll = (float(v) for v in self.evaluate.valid())
        is_best = self.stopper.update(iteration, valid_error)
        if is_best:
            self.best_params = self.model.get_param_values()
        record = ValidationRecord(
            iteration=iteration,
            epoch=iteration // self.step.n_batches + 1,
            train_cost=float(np.mean(self.since_validation)),
            valid_error=valid_error,
            valid_nll=valid_nll,
            test_error=float(self.evaluate.test()) if is_best else None,
            is_best=is_best,
            patience=float(self.stopper.patience),
            seconds=self.seconds(),
        )
        self.history.records.append(record)
        self.since_validation = []
        self.warn_if_no_better_than_chance()
        return record

    def warn_if_no_better_than_chance(self, final: bool = False) -> None:
        """Warn once if the best error is within 5 points of chance after 3 validations and an epoch (or at the end)."""
        n, history = len(self.history.records), self.history
        early = n < 3 or history.stopped_at + 1 < self.step.n_batches
        if history.warnings or n == 0 or (early and not final):
            return
        if history.best_valid_error < self.chance_error - CHANCE_MARGIN:
            return
        message = (
            f"after {n} validation{'s' * (n > 1)} the best validation error is {history.best_valid_error:.2%}, "
            f"no better than always answering the most frequent class ({self.chance_error:.2%}): the model "
            f"is not learning. {_no_learning_hint(self.settings)}"
        )
        history.warnings.append(message)
        warnings.warn(message, ChanceLevelWarning, stacklevel=4)

    def save(self, path, metadata: dict, is_best: bool) -> None:
        """The best parameters (at a new best) and the state to resume from, both written atomically."""
        if is_best:
            best = self.history.best
            results = {
                "mode": self.history.mode,
                "data_source": self.history.data_source,
                "best_valid_error": best.valid_error,
                "test_error": best.test_error,
                "best_iteration": best.iteration,
                "iterations_done": self.history.stopped_at + 1,
            }
            checkpoint.save(
                path, self.model, params=self.best_params, metadata={**metadata, "training": results}
            )
        self.save_state(path)

    def save_state(self, path, finished: str | None = None) -> None:
        """The state to resume from; ``finished``: why the run stopped, once it has (a resume then does nothing)."""
        self.history.seconds = self.seconds()
        self.started = time.perf_counter()
        save_training_state(
            path,
            self.model,
            self.step,
            self.stopper,
            self.history,
            self.iteration,
            self.best_params,
            settings=self.record,
            finished=finished,
        )


def _value(setting) -> float | None:
    """A setting's number: given, held by a shared variable, or computed by a graph without inputs; else None."""
    if isinstance(setting, numbers.Real):
        return float(setting)
    if isinstance(setting, Variable) and getattr(setting, "ndim", None) == 0:
        try:
            return float(pytensor.function([], setting, mode=backend.get_mode())())
        except Exception:  # noqa: BLE001 (a diagnosis must not fail: say nothing of this setting)
            return None
    return None


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def why_diverged(model, settings: dict) -> str:
    """What to change when the training cost became NaN or infinite: a bad penalty or learning rate, or overshooting.

    Taught in ``book/gradient_descent.ipynb``.
    """
    values = {name: _value(settings.get(name)) for name in ("learning_rate", "l1", "l2")}
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            return f"{name} is {value}: give a finite number."
    lr, l1, l2 = values["learning_rate"], values["l1"] or 0.0, values["l2"] or 0.0
    penalties = pytensor.function([], [model.L1, model.L2_sqr], mode=backend.get_mode())()
    params_finite = all(np.isfinite(v).all() for v in model.get_param_values().values())
    for name, weight, norm, what in (
        ("l1", l1, penalties[0], "||W||_1"),
        ("l2", l2, penalties[1], "||W||^2"),
    ):
        with np.errstate(over="ignore", invalid="ignore"):
            overflowed = not np.isfinite(np.float32(weight) * norm)
        if params_finite and weight and overflowed:
            return (
                f"The {name.upper()} penalty {name} x {what} passed float32's largest number "
                f"({_FLOAT32_MAX:.1e}): {name}={weight:g} is far too large (the tutorials use 0 to 1e-4)."
            )
    if lr is not None and l2 and lr * l2 >= 1:
        return (
            f"With learning_rate x l2 = {lr:g} x {l2:g} = {lr * l2:g} >= 1, each update multiplies the weights "
            f"by 1 - 2 x {lr * l2:g}, so they grow without bound. Make l2 (or the learning rate) smaller: their "
            "product must stay below 1 (the tutorials' MLP: l2 1e-4, learning rate 0.01)."
        )
    if lr is not None and l1 * lr * l1 > _FLOAT32_MAX:
        return (
            f"With learning_rate x l1 = {lr * l1:g}, each update moves every weight that far, so the L1 penalty "
            f"l1 x ||W||_1 passes float32's largest number ({_FLOAT32_MAX:.1e}): l1={l1:g} is far too large "
            "(the tutorials use 0 to 1e-4)."
        )
    return "The updates overshoot: try a learning rate 3-10x smaller."


def _no_learning_hint(settings: dict) -> str:
    lr = _value(settings.get("learning_rate"))
    if lr is None:
        return "Check the learning rate: one too large can wreck the weights without overflowing."
    return (
        f"A learning rate too large ({lr:g} here) can wreck the weights without overflowing: try {lr / 10:g}."
    )


def _splits(data, model):
    try:
        (Xtr, ytr), (Xva, yva), (Xte, yte) = data
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            "data must be (train, valid, test), each (X, y), as returned by dlt_lib.data.load_mnist(); "
            f"got {type(data).__name__}."
        ) from exc
    for X, y in ((Xtr, ytr), (Xva, yva), (Xte, yte)):
        model.check_data(X, y)
    if len(yva) == 0:
        raise InvalidParameterError(
            "The validation split is empty: early stopping chooses the model by its error on validation "
            "examples. Keep some examples apart for it (the tutorials keep 10,000)."
        )
    return (Xtr, ytr), (Xva, yva), (Xte, yte)

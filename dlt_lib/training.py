"""One early-stopping trainer for every model in the book.

The tutorials copy the same training loop into each script.  Here it lives
once, in two parts you can read separately:

:class:`EarlyStopping`
    the *patience* rule of the tutorials, line for line, as a small object
    that is told each validation result and answers "new best?" and "stop?".
:func:`train`
    compiles the training step, feeds it minibatches by index from shared
    variables, validates every ``validation_frequency`` minibatches, keeps the
    best parameters, measures the test error at each new best, and returns a
    :class:`History` for plotting.

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
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace

from dlt_lib import backend
from dlt_lib import updates as update_rules


class TrainingDiverged(FloatingPointError):
    """The training cost became NaN or infinite."""


# ----------------------------------------------------------------------------
# The patience rule
# ----------------------------------------------------------------------------
@dataclass
class EarlyStopping:
    """The tutorials' early-stopping rule.

    Iterations (minibatch updates) are counted from 0.  After iteration
    ``it`` the validation error is measured when ``(it + 1) % validation_frequency == 0``.
    A result below ``best * improvement_threshold`` is a *significant*
    improvement and extends the patience to ``max(patience, it * patience_increase)``;
    any result below ``best`` becomes the new best.  Training stops after the
    first iteration ``it`` with ``patience <= it``.
    """

    patience: float = 5000
    patience_increase: float = 2.0
    improvement_threshold: float = 0.995
    best_loss: float = math.inf
    best_iteration: int = -1

    def __post_init__(self):
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1 minibatch; got {self.patience}.")
        if self.patience_increase < 1:
            raise ValueError(f"patience_increase must be >= 1 (a factor); got {self.patience_increase}.")
        if not 0 < self.improvement_threshold <= 1:
            raise ValueError(f"improvement_threshold must be in (0, 1]; got {self.improvement_threshold}.")

    def validation_frequency(self, n_train_batches: int) -> int:
        """``min(n_train_batches, patience // 2)``: validate at least twice before patience runs out."""
        return max(1, min(int(n_train_batches), int(self.patience // 2)))

    def update(self, iteration: int, validation_loss: float) -> bool:
        """Record a validation result; return True when it is a new best."""
        if validation_loss < self.best_loss:
            if validation_loss < self.best_loss * self.improvement_threshold:
                self.patience = max(self.patience, iteration * self.patience_increase)
            self.best_loss = float(validation_loss)
            self.best_iteration = int(iteration)
            return True
        return False

    def should_stop(self, iteration: int) -> bool:
        """True once ``patience <= iteration``."""
        return self.patience <= iteration

    def stop_iteration(self) -> int:
        """The first iteration after which :meth:`should_stop` is true, given the patience now."""
        return max(0, math.ceil(self.patience))


# ----------------------------------------------------------------------------
# What a run records
# ----------------------------------------------------------------------------
@dataclass
class ValidationRecord:
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
    """Everything a run measured, in a form the plots and the book read."""

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

    def summary(self) -> str:
        b = self.best
        if b is None:
            return "no validation was run"
        return (
            f"best validation error {100 * b.valid_error:.3f}% at iteration {b.iteration} (epoch {b.epoch}), "
            f"test error {100 * b.test_error:.3f}%; stopped after {self.stopped_at + 1} updates, "
            f"{self.epochs} epochs, {self.seconds:.1f} s ({self.stop_reason})"
        )


# ----------------------------------------------------------------------------
# Compiling
# ----------------------------------------------------------------------------
def _as_minibatches(X, y, batch_size):
    """Store the training set as ``(n_batches, batch_size, ...)`` shared variables.

    Minibatch ``i`` is then ``X3[i]``: a contiguous block (faster for the BLAS
    than a strided slice) whose shape is known when compiling (JAX needs that).
    The last ``n % batch_size`` examples are left out, as in the tutorials.
    """
    n_batches = len(X) // batch_size
    floatX = pytensor.config.floatX
    X3 = np.ascontiguousarray(
        np.asarray(X[: n_batches * batch_size], dtype=floatX).reshape(n_batches, batch_size, -1)
    )
    y3 = np.asarray(y[: n_batches * batch_size], dtype="int32").reshape(n_batches, batch_size)
    sX = pytensor.shared(X3, name="train_X", shape=X3.shape, borrow=True)
    sy = pytensor.shared(y3, name="train_y", shape=y3.shape, borrow=True)
    return sX, sy, n_batches


def evaluator(model, y, X, Y, name, mode_name):
    """A function ``() -> (error rate, mean NLL)`` over *every* example of ``(X, Y)``.

    The set is stored once in shared variables (with static shapes: JAX
    compiles for fixed sizes) and evaluated in one call, or, for a model with
    an ``eval_batch_size`` (LeNet), in chunks of that size plus one chunk for
    the rest: a convolutional network on a whole 10,000-image set at once would
    hold gigabytes of intermediate results.  Unlike the tutorials, which
    average over full minibatches only, no example is left out.
    """
    n = len(X)
    size = getattr(model, "eval_batch_size", None) or n
    n_full = n // size
    floatX, pmode = pytensor.config.floatX, backend.get_mode(mode_name)
    parts = []
    for lo, hi, count in ((0, n_full * size, n_full), (n_full * size, n, 1)):
        if hi <= lo:
            continue
        rows = (hi - lo) // count
        X3 = np.ascontiguousarray(np.asarray(X[lo:hi], dtype=floatX).reshape(count, rows, -1))
        Y3 = np.asarray(Y[lo:hi], dtype="int32").reshape(count, rows)
        sX = pytensor.shared(X3, name=f"{name}_X", shape=X3.shape, borrow=True)
        sY = pytensor.shared(Y3, name=f"{name}_y", shape=Y3.shape, borrow=True)
        backend.place_on_device([sX, sY], mode_name)
        index = pt.lscalar("index")
        weight = np.asarray(rows, dtype=floatX)  # means back to sums, to average over all n
        fn = pytensor.function(
            [index],
            [model.errors(y) * weight, model.negative_log_likelihood(y) * weight],
            givens={model.input: sX[index], y: sY[index]},
            mode=pmode,
        )
        parts.append((fn, count))

    def evaluate():
        errors = nll = 0.0
        for fn, count in parts:
            for i in range(count):
                chunk_errors, chunk_nll = fn(i)
                errors, nll = errors + float(chunk_errors), nll + float(chunk_nll)
        return errors / n, nll / n

    return evaluate


def training_cost(model, y, l1=0.0, l2=0.0):
    """``NLL + l1 * L1 + l2 * L2_sqr``: the regularised loss of the tutorials."""
    cost = model.negative_log_likelihood(y)
    if l1:
        cost = cost + np.asarray(l1, dtype=pytensor.config.floatX) * model.L1
    if l2:
        cost = cost + np.asarray(l2, dtype=pytensor.config.floatX) * model.L2_sqr
    return cost


class UpdateRunner:
    """Runs ``n`` consecutive minibatch updates starting at minibatch ``start``: ``runner(start, n)``.

    Keeps what it was built from: ``cost``, the label variable ``y``, the
    ``update_list`` (whose extra shared variables are the optimizer's state)
    and ``n_batches``, the number of minibatches in an epoch.
    """

    def __init__(self, model, cost, y, update_list, train_X, train_y, mode_name, use_scan, n_batches=0):
        mode = backend.get_mode(mode_name)
        self.cost, self.y, self.update_list = cost, y, update_list
        self.n_batches = n_batches
        self.use_scan = use_scan
        if use_scan:
            # The loop body is the one-minibatch update with every shared
            # variable it changes replaced by a loop-carried state.
            shared = [var for var, _ in update_list]
            start, n_steps = pt.lscalar("start"), pt.lscalar("n_steps")

            def step(i, *state):
                replace = {model.input: train_X[i], y: train_y[i], **dict(zip(shared, state))}
                new = clone_replace([cost] + [expr for _, expr in update_list], replace=replace)
                return tuple(new)

            outputs = pytensor.scan(
                step,
                sequences=[pt.arange(start, start + n_steps)],
                outputs_info=[None, *shared],
                return_updates=False,
                mode=mode,  # the loop body too, or it would be compiled in PyTensor's default mode
            )
            final_values = [out[-1] for out in outputs[1:]]
            self.fn = pytensor.function(
                [start, n_steps], outputs[0], updates=list(zip(shared, final_values)), mode=mode
            )
        else:
            index = pt.lscalar("index")
            self.fn = pytensor.function(
                [index],
                cost,
                updates=update_list,
                givens={model.input: train_X[index], y: train_y[index]},
                mode=mode,
            )
        # The inputs are always int64 scalars we make ourselves (once, here):
        # skip the per-call input checks (a large part of the cost of a tiny call).
        self.fn.trust_input = True
        self._index = [np.asarray(i, dtype="int64") for i in range(n_batches)]

    def _index_array(self, i):
        return self._index[i] if i < len(self._index) else np.asarray(i, dtype="int64")

    def epoch(self) -> np.ndarray:
        """One pass over every minibatch; returns the training cost of each update."""
        return self(0, self.n_batches)

    def __call__(self, start: int, n: int) -> np.ndarray:
        if self.use_scan:
            return np.asarray(self.fn(self._index_array(start), np.asarray(n, dtype="int64")))
        step, index = self.fn, self._index_array
        return np.array([step(index(i)) for i in range(start, start + n)])


def scans_by_default(mode_name: str) -> bool:
    """Whether the trainer runs chunks of updates in a ``scan`` in this mode: only in NUMBA (see the speed note above)."""
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
    **optimizer_kwargs,
) -> UpdateRunner:
    """Compile the trainer's minibatch updates on ``(X, y)`` without the early-stopping loop.

    For timing and experiments: ``runner.epoch()`` runs one epoch of updates
    exactly as :func:`train` does.
    """
    mode_name = backend.mode_name() if mode is None else backend.normalise_mode(mode)
    _check_hyperparameters(learning_rate, batch_size, len(X), 1, l1, l2)
    model.check_data(X, y)
    rule = update_rules.get_optimizer(optimizer) if isinstance(optimizer, str) else optimizer
    train_X, train_y, n_batches = _as_minibatches(X, y, batch_size)
    backend.place_on_device([train_X, train_y], mode_name)
    labels = pt.ivector("y")
    cost = training_cost(model, labels, l1, l2)
    update_list = rule(cost, model.params, learning_rate=learning_rate, **optimizer_kwargs)
    if use_scan is None:
        use_scan = scans_by_default(mode_name)
    return UpdateRunner(model, cost, labels, update_list, train_X, train_y, mode_name, use_scan, n_batches)


def _check_hyperparameters(learning_rate, batch_size, n_train, n_epochs, l1, l2):
    if not (
        isinstance(learning_rate, (int, float, np.floating))
        and learning_rate > 0
        and math.isfinite(learning_rate)
    ):
        raise ValueError(f"learning_rate must be a positive number; got {learning_rate!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    if batch_size > n_train:
        raise ValueError(
            f"batch_size={batch_size} is larger than the training set ({n_train} examples): "
            "no full minibatch can be formed. Use a smaller batch size."
        )
    if isinstance(n_epochs, bool) or not isinstance(n_epochs, (int, np.integer)) or n_epochs < 1:
        raise ValueError(f"n_epochs must be a positive integer; got {n_epochs!r}.")
    for name, value in (("l1", l1), ("l2", l2)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0 (a penalty weight); got {value}.")


def _splits(data):
    try:
        train, valid, test = data
        (Xtr, ytr), (Xva, yva), (Xte, yte) = train, valid, test
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "data must be (train, valid, test), each (X, y), as returned by dlt_lib.data.load_mnist(); "
            f"got {type(data).__name__}."
        ) from exc
    return (Xtr, ytr), (Xva, yva), (Xte, yte)


# ----------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------
def train(
    model,
    data,
    *,
    learning_rate: float = 0.13,
    batch_size: int = 600,
    n_epochs: int = 1000,
    optimizer="sgd",
    optimizer_kwargs: dict | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    patience: float = 5000,
    patience_increase: float = 2.0,
    improvement_threshold: float = 0.995,
    mode: str | None = None,
    progress: bool = True,
    checkpoint_path=None,
    resume_from=None,
    checkpoint_metadata: dict | None = None,
    use_scan: bool | None = None,
    restore_best: bool = True,
) -> History:
    """Train ``model`` with minibatch updates and the tutorials' early stopping.

    Parameters
    ----------
    model : LogisticRegression, MLP, ...
        A :mod:`dlt_lib.models` classifier.  On return it holds the *best*
        parameters seen on the validation set (the last ones with
        ``restore_best=False``).
    data : (train, valid, test)
        Each ``(X, y)`` with ``X`` of shape ``(n, n_in)``, as returned by :mod:`dlt_lib.data`.
    learning_rate, batch_size, n_epochs : the SGD settings.
    optimizer : str or callable
        A rule from :mod:`dlt_lib.updates` (``"sgd"``, ``"momentum"``, ``"adam"``, ...).
    l1, l2 : float
        Weights of the L1 and squared-L2 penalties on the model's weights.
    patience, patience_increase, improvement_threshold : the early-stopping rule (:class:`EarlyStopping`).
    mode : "C", "NUMBA" or "JAX"; default: :func:`dlt_lib.backend.mode_name`.
    progress : show a progress bar (terminal or notebook).
    checkpoint_path : str or Path, optional
        Save the best parameters there (atomically) at every new best, and the
        state needed to resume next to it (``<name>.last.npz``).
    resume_from : str or Path, optional
        A checkpoint written with ``checkpoint_path``: continue that run.
    checkpoint_metadata : dict, optional
        Extra JSON-able facts stored in each checkpoint (dataset name, settings).
    use_scan : bool, optional
        Run chunks of updates in one compiled ``scan`` (the default in NUMBA mode
        only; see the speed note at the top of this module).
    restore_best : bool
        Put the best parameters back into the model at the end (the tutorials
        do).  ``False`` leaves the parameters of the last update, e.g. to
        compare them with the best ones, which a checkpoint still holds.

    Returns
    -------
    History
        The validation records, per-update training costs and timings.
    """
    from dlt_lib import checkpoint as ckpt  # imported here: checkpoint imports this module's types

    (Xtr, ytr), (Xva, yva), (Xte, yte) = _splits(data)
    mode_name = backend.mode_name() if mode is None else backend.normalise_mode(mode)
    _check_hyperparameters(learning_rate, batch_size, len(Xtr), n_epochs, l1, l2)
    stopper = EarlyStopping(patience, patience_increase, improvement_threshold)
    for X, y in ((Xtr, ytr), (Xva, yva), (Xte, yte)):
        model.check_data(X, y)
    rule = update_rules.get_optimizer(optimizer) if isinstance(optimizer, str) else optimizer

    # -- compile --------------------------------------------------------------
    t0 = time.perf_counter()
    run_updates = compile_updates(
        model,
        Xtr,
        ytr,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimizer=rule,
        l1=l1,
        l2=l2,
        mode=mode_name,
        use_scan=use_scan,
        **(optimizer_kwargs or {}),
    )
    y, update_list, n_train_batches = run_updates.y, run_updates.update_list, run_updates.n_batches
    validate = evaluator(model, y, Xva, yva, "valid", mode_name)
    test = evaluator(model, y, Xte, yte, "test", mode_name)
    state_vars = [var for var, _ in update_list if not any(var is p for p in model.params)]
    history = History(
        n_train_batches=n_train_batches,
        validation_frequency=stopper.validation_frequency(n_train_batches),
        mode=mode_name,
        data_source=getattr(data, "source", "arrays passed by the caller"),
    )
    history.compile_seconds = time.perf_counter() - t0
    frequency = history.validation_frequency

    # -- resume ----------------------------------------------------------------
    iteration = 0  # the next update to run, counted from 0 over all epochs
    best_params = model.get_param_values()
    if resume_from is not None:
        iteration, best_params = ckpt.restore_training_state(resume_from, model, state_vars, stopper, history)

    # -- loop ------------------------------------------------------------------
    bar = _progress_bar(progress, total=n_epochs * n_train_batches, initial=iteration)
    start = time.perf_counter() - (history.seconds if resume_from is not None else 0.0)
    since_validation = []
    history.stop_reason = f"reached n_epochs={n_epochs}"
    try:
        while iteration < n_epochs * n_train_batches:
            epoch, minibatch = divmod(iteration, n_train_batches)
            next_validation = (iteration // frequency + 1) * frequency - 1
            last = min(
                (epoch + 1) * n_train_batches - 1, next_validation, max(iteration, stopper.stop_iteration())
            )
            costs = run_updates(minibatch, last - iteration + 1)
            bad = np.flatnonzero(~np.isfinite(costs))
            if bad.size:
                at = iteration + int(bad[0])
                raise TrainingDiverged(
                    f"The training cost became {costs[bad[0]]} at iteration {at} (epoch {at // n_train_batches + 1}) "
                    f"with learning_rate={learning_rate} and optimizer {getattr(rule, '__name__', rule)}. "
                    "The updates overshoot: try a learning rate 3-10x smaller."
                )
            history.train_costs.extend(float(c) for c in costs)
            since_validation.extend(costs)
            bar.update(len(costs))
            iteration = last + 1
            done = last  # the iteration just finished
            if (done + 1) % frequency == 0:
                valid_error, valid_nll = (float(v) for v in validate())
                is_best = stopper.update(done, valid_error)
                test_error = None
                if is_best:
                    test_error = float(test()[0])
                    best_params = model.get_param_values()
                history.records.append(
                    ValidationRecord(
                        iteration=done,
                        epoch=done // n_train_batches + 1,
                        train_cost=float(np.mean(since_validation)),
                        valid_error=valid_error,
                        valid_nll=valid_nll,
                        test_error=test_error,
                        is_best=is_best,
                        patience=float(stopper.patience),
                        seconds=time.perf_counter() - start,
                    )
                )
                since_validation = []
                bar.set_postfix(valid=f"{100 * valid_error:.2f}%", best=f"{100 * stopper.best_loss:.2f}%")
                if checkpoint_path is not None:
                    history.stopped_at, history.seconds = done, time.perf_counter() - start
                    if is_best:
                        ckpt.save(
                            checkpoint_path,
                            model,
                            history=history,
                            params=best_params,
                            extra=checkpoint_metadata,
                        )
                    ckpt.save_training_state(
                        checkpoint_path, model, state_vars, stopper, history, iteration, best_params
                    )
            history.stopped_at = done
            if stopper.should_stop(done):
                history.stop_reason = f"patience ran out (patience {stopper.patience:g} <= iteration {done})"
                break
    finally:
        bar.close()
    history.seconds = time.perf_counter() - start
    history.epochs = history.stopped_at // n_train_batches + 1
    if restore_best:
        model.set_param_values(best_params)
    return history


def _progress_bar(enabled, total, initial=0):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm  # a widget in a notebook, text in a terminal

    return tqdm(total=total, initial=initial, unit="minibatch", smoothing=0.1)


class _NoBar:
    def update(self, n):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass

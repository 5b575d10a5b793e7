"""Optuna decides, Dask runs: storages, samplers and pruners, one trial per task, the driver.

Part of :mod:`dlt_lib.search` (chapter *Choosing hyper-parameters*).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlt_lib.search.objective import Objective
from dlt_lib.search.space import SearchError

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "none")
#: The user attribute that ties a trial to the Dask task that ran it.
TASK_ATTR = "dask_task"
#: The study's user attribute listing the tasks an interrupted driver gave up on.
ABANDONED_ATTR = "abandoned_tasks"


class TaskAbandoned(RuntimeError):
    """The driver that submitted this trial's task was interrupted; the trial is failed, not run.

    Taught in ``book/hyperparameters.ipynb``.
    """


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
        storage = optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            grace_period=GRACE_PERIOD,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
        )
    if url.startswith("sqlite"):
        _write_ahead_log(storage.engine)
    return storage


def _write_ahead_log(engine):
    """Open every SQLite connection of ``engine`` in write-ahead-log mode, synchronous=NORMAL.

    A trial writes to the study at every validation (``trial.report``).  In
    SQLite's default mode each of those commits rewrites a journal and waits
    for the disk twice; with a write-ahead log it appends once, and readers
    (the other workers, the driver) no longer wait for a writer.  This takes
    about a third off Optuna's share of a trial (``benchmarks/README.md``).
    With NORMAL, a power cut (not a crash of Python) can lose the last
    commits: the trials they belonged to are failed and run again on
    resuming, as for a killed worker.  A write-ahead log needs the database
    on a local disk: on a cluster, give a database server (``--storage
    postgresql://...``), as Optuna recommends for parallel work anyway.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(connection, _record):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    engine.dispose()  # the connection Optuna opened to create the schema: reopened with the pragmas


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

    Taught in ``book/hyperparameters.ipynb``.
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
    url = _absolute_sqlite(url)
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


def _absolute_sqlite(url: str) -> str:
    """A SQLite file named by an absolute path (workers need not share the driver's directory).

    An in-memory SQLite database is refused: each worker process would have its own.
    """
    if not url.startswith("sqlite:"):
        return url
    path = url.partition(":///")[2]
    if not path or path.startswith(":memory:") or url in ("sqlite://", "sqlite:///"):
        raise SearchError(
            f"--storage {url}: an in-memory SQLite database lives in one process, and the trials run in "
            "others. Give a file (sqlite:///runs/search/study.db) or 'dask' for the scheduler's memory."
        )
    return url if path.startswith("/") else f"sqlite:///{Path(path).resolve()}"


def _one_line(exc) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _seed_for(seed, slot):
    """A seed per trial slot: tasks that load the study at the same time must not draw the same values."""
    return None if seed is None else int(np.random.SeedSequence([int(seed), int(slot)]).generate_state(1)[0])


def make_sampler(name="tpe", seed=None, grid=None):
    """Optuna's sampler called ``name``: "tpe" (the default), "random" or "grid" (``grid``: name -> values).

    Taught in ``book/hyperparameters.ipynb``.
    """
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid, seed=seed)
    raise SearchError(f"unknown sampler {name!r}; expected one of {', '.join(SAMPLERS)}.")


def make_pruner(name="median"):
    """Optuna's pruner called ``name``: "median", "halving" (successive halving) or "none".

    Taught in ``book/hyperparameters.ipynb``.
    """
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
    """What a worker needs to open the study: picklable, sent with each task.

    Taught in ``book/hyperparameters.ipynb``.
    """

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
    """What a task sends back to the driver.

    Taught in ``book/hyperparameters.ipynb``.
    """

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

    Taught in ``book/hyperparameters.ipynb``.
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
#: Dask's statistical profiler stops the training thread every 10 ms to
#: sample its stack (for the dashboard's "Profile" page, empty without it);
#: it costs a trial time and gives it nothing (``benchmarks/README.md``).
NO_PROFILER = {"distributed.worker.profile.enabled": False}


def _worker_environment():
    """The environment Dask's nannies give their workers, less ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets it to 64 KiB, so that glibc hands every freed array above that
    back to the system: a training step then maps fresh pages for the same
    arrays at every call (a batch-20 MLP step frees and reallocates its
    1.5 MB weight gradient).  Everything else Dask or you configured stays.
    """
    import dask

    environ = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    return {name: value for name, value in environ.items() if name != "MALLOC_TRIM_THRESHOLD_"}


def start_cluster(n_workers: int, **kwargs):
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes, and a client on it.

    Every process on this machine shares PyTensor's compile cache
    (``~/.pytensor``): a graph compiled by one worker is loaded by the others.
    The dashboard gets a free port (several users may share a machine).
    Returns the ``distributed.Client``; ``client.cluster`` is the cluster
    (``client.close(); client.cluster.close()`` when done).

    Taught in ``book/hyperparameters.ipynb``.
    """
    import dask
    from distributed import Client, LocalCluster

    if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise SearchError(f"workers: expected a positive integer, got {n_workers!r}.")
    options = {"dashboard_address": ":0", "silence_logs": logging.ERROR, **kwargs}
    # Only the workers started here: a cluster you started keeps its own configuration.
    with dask.config.set({**NO_PROFILER, "distributed.nanny.pre-spawn-environ": _worker_environment()}):
        cluster = LocalCluster(
            n_workers=int(n_workers), threads_per_worker=1, processes=True, env=dict(ONE_THREAD), **options
        )
    return Client(cluster)


def connect(address: str, timeout: float = 10):
    """A client on the Dask scheduler at ``address`` (``tcp://host:8786``); one-line error if it does not answer.

    Taught in ``book/hyperparameters.ipynb``.
    """
    from distributed import Client

    try:
        return Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SearchError(
            f"no Dask scheduler answered at {address} within {timeout:g} s ({_one_line(exc)}). "
            "Start one (dask scheduler; dask worker ADDRESS --nthreads 1) or use --workers K for a local cluster."
        ) from exc


def dashboard_link(client) -> str | None:
    """The Dask dashboard's address, or None when the scheduler cannot serve it (it needs bokeh).

    Taught in ``book/hyperparameters.ipynb``.
    """
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
    """Trials that reached a verdict: completed or pruned (failed ones are retried and not counted).

    Taught in ``book/hyperparameters.ipynb``.
    """
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

    Taught in ``book/hyperparameters.ipynb``.
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise SearchError(f"trials: expected a positive number of trials, got {n_trials!r}.")
    study, sref = _open_study(objective, storage, study_name, sampler, pruner, seed, grid_points)
    max_failures = max(3, n_trials // 4) if max_failures is None else max_failures
    driver = _Driver(client, study, sref, objective, n_trials, max_failures, on_result, progress)
    try:
        driver.run()
    except BaseException:
        _abandon(client, study, driver.pending)
        raise
    finally:
        driver.bar.close()
    return study


class _Driver:
    """Keeps ``n_trials - finished`` tasks out on the cluster, and counts what comes back."""

    def __init__(self, client, study, sref, objective, n_trials, max_failures, on_result, progress):
        self.client, self.study, self.sref, self.objective = client, study, sref, objective
        self.n_trials, self.max_failures, self.on_result = n_trials, max_failures, on_result
        self.done = n_finished(study)
        self.slot = len(study.get_trials(deepcopy=False))  # each task its own sampler seed
        self.pending, self.failures = {}, []  # future -> task id; exceptions of failed tasks
        self.bar = _trial_bar(progress, n_trials, min(self.done, n_trials))

    def run(self):
        from distributed import wait

        while True:
            self.submit_missing()
            if not self.pending:
                return
            for future in wait(list(self.pending), return_when="FIRST_COMPLETED").done:
                self.collect(future)

    def submit_missing(self):
        for _ in range(self.n_trials - self.done - len(self.pending)):
            task_id = uuid.uuid4().hex[:12]
            key = f"trial-{self.study.study_name}-{task_id}"
            future = self.client.submit(
                run_trial, self.sref, self.objective, task_id, self.slot, key=key, pure=False
            )
            self.pending[future], self.slot = task_id, self.slot + 1

    def collect(self, future):
        self.pending.pop(future)
        if future.status != "finished":  # the task raised, or Dask gave up on it (KilledWorker)
            self.failures.append(future.exception())
            if len(self.failures) > self.max_failures:
                last = self.failures[-1]
                raise SearchError(
                    f"{len(self.failures)} trials failed; the last with {_one_line(last)}"
                ) from last
            return  # the next submit_missing replaces it
        result = future.result()
        self.done += 1
        self.bar.update(1)
        if result.state == "COMPLETE":
            self.bar.set_postfix(best=f"{self.study.best_value:.2%}")
        if self.on_result is not None:
            self.on_result(result)


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
    from tqdm.auto import tqdm  # a widget in a notebook, text in a terminal

    return tqdm(total=total, initial=initial, unit="trial", desc="trials", disable=not enabled)

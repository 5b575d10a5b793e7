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

One module per part: :mod:`~dlt_lib.search.space` (the space; no Optuna,
no Dask), :mod:`~dlt_lib.search.objective` (one trial),
:mod:`~dlt_lib.search.engines` (storages, samplers, pruners, the Dask task
and the driver) and :mod:`~dlt_lib.search.report` (tables, plots, the cost
of choosing, the whole command).  Optuna and Dask are imported only when a
function needs them.
"""

from dlt_lib.search.engines import (
    PRUNERS,
    SAMPLERS,
    TASK_ATTR,
    StudyRef,
    TaskAbandoned,
    TrialResult,
    connect,
    dashboard_link,
    make_pruner,
    make_sampler,
    n_finished,
    open_storage,
    optimize,
    run_trial,
    start_cluster,
)
from dlt_lib.search.objective import Objective
from dlt_lib.search.report import (
    plot_history,
    plot_parameters,
    run_search,
    selection_gap,
    trials_table,
    write_trials_csv,
)
from dlt_lib.search.space import (
    MODELS,
    PARAMETERS,
    Choice,
    IntRange,
    LogUniform,
    SearchError,
    SearchSpace,
    Uniform,
    default_space,
    format_space,
    published_settings,
)

__all__ = [
    "MODELS",
    "PARAMETERS",
    "PRUNERS",
    "SAMPLERS",
    "TASK_ATTR",
    "Choice",
    "IntRange",
    "LogUniform",
    "Objective",
    "SearchError",
    "SearchSpace",
    "StudyRef",
    "TaskAbandoned",
    "TrialResult",
    "Uniform",
    "connect",
    "dashboard_link",
    "default_space",
    "format_space",
    "make_pruner",
    "make_sampler",
    "n_finished",
    "open_storage",
    "optimize",
    "plot_history",
    "plot_parameters",
    "published_settings",
    "run_search",
    "run_trial",
    "selection_gap",
    "start_cluster",
    "trials_table",
    "write_trials_csv",
]

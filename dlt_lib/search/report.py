"""What a search leaves behind: the trials as a table and a CSV, plots, the cost of choosing, the command.

Part of :mod:`dlt_lib.search` (chapter *Choosing hyper-parameters*).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlt_lib.search.engines import _finished_states, _mask, n_finished, open_storage, optimize
from dlt_lib.search.objective import Objective
from dlt_lib.search.space import Choice, IntRange, LogUniform, SearchError, SearchSpace


def trials_table(study) -> list[dict]:
    """One row per trial: number, state, value, the settings searched, and what the trial recorded.

    Taught in ``book/hyperparameters.ipynb``.
    """
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
    """The trials as a CSV file (written to a temporary name, then renamed).

    Taught in ``book/hyperparameters.ipynb``.
    """
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
    """The optimisation history: each trial's validation error and the best so far.

    Taught in ``book/hyperparameters.ipynb``.
    """
    import matplotlib.pyplot as plt

    from dlt_lib import plot

    points = _plotted_trials(study)
    with plot.style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(plot.BOOK_WIDTH * 0.62, 3.0))
        fig = ax.figure
        for pruned, style in ((False, {}), (True, {"facecolors": "none"})):
            chosen = [(t.number, 100 * v) for t, v, p in points if p == pruned]
            if chosen:
                x, y = zip(*chosen)
                label = "pruned" if pruned else "completed"
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
            low, high = ax.get_ylim()
            ax.set_ylim(low, high + 0.25 * (high - low))  # room for the legend above the points
            ax.legend(loc="upper right", ncols=3, handlelength=1.2, columnspacing=1.0)
    return fig


def plot_parameters(study, space: SearchSpace | None = None, ncols=3):
    """Validation error against each searched hyper-parameter, one panel each.

    Taught in ``book/hyperparameters.ipynb``.
    """
    import matplotlib.pyplot as plt

    from dlt_lib import plot

    points = _plotted_trials(study)
    names = list(space.searched) if space is not None else sorted({k for t, _, _ in points for k in t.params})
    if not names:
        raise SearchError("no hyper-parameter to plot: the study has no finished trial.")
    ncols = min(ncols, len(names))
    nrows = math.ceil(len(names) / ncols)
    with plot.style():
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

    Taught in ``book/hyperparameters.ipynb``.
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
    """The checkpoint of the best completed trial: saved as each better trial's parameters arrive."""

    path: Path
    study_name: str
    number: int | None = None
    value: float = math.inf

    def load(self):
        """What an earlier run of the same study left (to resume without losing it)."""
        from dlt_lib import checkpoint

        try:
            meta = (
                checkpoint.read_metadata(self.path)["metadata"].get("search", {})
                if self.path.exists()
                else {}
            )
        except (checkpoint.CheckpointError, KeyError):
            meta = {}
        if meta.get("study") == self.study_name and meta.get("trial") is not None:
            self.number, self.value = int(meta["trial"]), float(meta["valid_error"])

    def offer(self, objective, number, value, settings, params):
        if params is None or not value < self.value:
            return
        from dlt_lib import checkpoint

        model = objective.build_model(settings, objective.splits()[0][0].shape[1])
        search = {"study": self.study_name, "trial": number, "valid_error": value}
        metadata = {"dataset": objective.dataset, "settings": settings, "search": search}
        checkpoint.save(self.path, model, params=params, metadata=metadata)
        self.number, self.value = number, value

    def model_of(self, trial, objective, log):
        """The model of ``trial`` (the study's best), from the checkpoint, or trained again if it is not there."""
        from dlt_lib import checkpoint

        if (self.number, self.value) != (trial.number, trial.value):
            # Its parameters never reached this process (a run interrupted just
            # after the trial finished): train it again, here, with the same
            # settings and initial weights.
            log(f"Training trial {trial.number} again for the checkpoint (its parameters were not received).")
            model, _ = objective.fit(trial.user_attrs["settings"])
            self.value = math.inf
            self.offer(
                objective, trial.number, trial.value, trial.user_attrs["settings"], model.get_param_values()
            )
        return checkpoint.load(self.path)


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

    Taught in ``book/hyperparameters.ipynb``.
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(output_dir / 'study.db').resolve()}"
    study_name = study_name or f"{objective.model}-{objective.dataset}"
    best = _Best(output_dir / "best.npz", study_name)
    best.load()
    study = optimize(
        objective,
        n_trials,
        client=client,
        storage=open_storage(storage, client=client),
        study_name=study_name,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        progress=progress,
        on_result=lambda r: best.offer(objective, r.number, r.value, r.settings, r.params),
        grid_points=grid_points,
    )
    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        raise SearchError(
            f"none of the {n_finished(study)} trials completed (all were pruned or diverged): "
            "widen the space (e.g. smaller learning rates) or use --pruner none."
        )
    model = best.model_of(study.best_trial, objective, log)
    X_test, y_test = objective.splits().test
    test_error = model.error_rate(X_test, y_test)  # the one look at the test set
    write_trials_csv(study, output_dir / "trials.csv")
    _save_plots(study, objective, output_dir)
    summary = {
        **_summary(study, objective, n_trials, storage, sampler, pruner, seed),
        "test_error": test_error,
        "test_examples": int(len(y_test)),
        "checkpoint": str(best.path),
        "seconds": round(time.perf_counter() - started, 1),
    }
    _write_json(output_dir / "summary.json", summary)
    return summary


def _summary(study, objective, n_trials, storage, sampler, pruner, seed) -> dict:
    states = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    best = study.best_trial
    return {
        "model": objective.model,
        "dataset": objective.dataset,
        "data_source": objective.splits().source,
        "study": study.study_name,
        "storage": _mask(storage),
        "sampler": sampler,
        "pruner": pruner,
        "seed": seed,
        "search": objective.describe(),
        "trials_requested": n_trials,
        "trials_finished": n_finished(study),
        "trials_by_state": states,
        "best_trial": best.number,
        "best_settings": best.user_attrs.get("settings", best.params),
        "best_valid_error": best.value,
    }


def _write_json(path, data):
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=2) + "\n")
    os.replace(tmp, path)


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

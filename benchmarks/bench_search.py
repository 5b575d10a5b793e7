#!/usr/bin/env python
"""Speed of a hyper-parameter search: trials per minute on 1 and 2 Dask workers,
and what Dask and Optuna add to each trial.

The trial: the tutorials' MLP (784-500-10 tanh, ``MLP(seed=1234)``) on the
embedded 10,000-digit sample, minibatches of 20, plain SGD, with the
learning rate and the L2 weight drawn from a space (``dlt_lib.search`` puts
both in shared variables, so every trial runs the same compiled graph).
Patience is set beyond reach: every trial trains exactly ``--epochs``
epochs, so every trial does the same work (about 10 s on a quiet 2-core
machine at the default 18 epochs: the issue's "trial of 10 s").

1. **Overhead.**  The same settings are trained (a) in a plain loop in this
   process, ``Objective.fit(settings)`` (the book's trainer called
   directly, as a script would), and (b) through ``search.optimize`` on a
   ``LocalCluster`` with one worker: a Dask task per trial, an Optuna study
   in SQLite, a report after every epoch, the parameters sent back.  The
   two are interleaved over ``--rounds`` rounds (the order alternating), so
   a burst of machine noise hits both.  Reported: the median seconds per
   trial each way, and the overhead ``(b - a) / a``, split into the
   trainer's own time inside the worker (the same work in another process)
   and the rest (Dask's task, Optuna's study in SQLite, the parameters sent
   back).  Target: under 5% for a 10 s trial.
2. **Throughput.**  ``--trials`` trials through ``search.optimize`` on one
   worker, then on two, each cluster warmed up first (each worker trains
   once: imports, the data loaded, its model built and its step compiled
   or loaded from PyTensor's cache; then one trial through Optuna).
   Reported: trials per minute and the speed-up.  Target: at least 1.7x
   with two workers on a 2-core machine.

Run from the repository root::

    python benchmarks/bench_search.py            # ~8 min on a quiet 2-core machine
    python benchmarks/bench_search.py --quick    # 6-epoch trials, a sanity check (~2 min)
    python benchmarks/bench_search.py --epochs 30 --trials 8 --rounds 3 --json out.json
"""

from __future__ import annotations

import os

# One BLAS thread here too: the plain loop must run as a worker does.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import dlt_lib  # noqa: E402,F401  (configures PyTensor first)
from dlt_lib import search  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OVERHEAD_TARGET, SPEEDUP_TARGET = 0.05, 1.7


def objective(epochs):
    space = search.SearchSpace(
        {
            "learning_rate": search.LogUniform(0.005, 0.05),
            "l2": search.LogUniform(1e-6, 1e-4),
            "n_hidden": 500,
            "batch_size": 20,
            "optimizer": "sgd",
        }
    )
    return search.Objective("mlp", "mnist-sample", space, n_epochs=epochs, patience=10**9)


def run_study(client, obj, n, folder, name, seed):
    storage = search.open_storage(f"sqlite:///{folder}/{name}.db")
    started = time.perf_counter()
    study = search.optimize(
        obj,
        n,
        client=client,
        storage=storage,
        study_name=name,
        sampler="random",
        pruner="none",
        seed=seed,
        progress=False,
    )
    seconds = time.perf_counter() - started
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == n and all(t.state.name == "COMPLETE" for t in trials), [t.state for t in trials]
    return seconds, trials


def plain_loop(obj, settings_list):
    times = []
    for settings in settings_list:
        started = time.perf_counter()
        obj.fit(settings)
        times.append(time.perf_counter() - started)
    return times


def drawn_settings(obj, seed, n):
    """The settings that the tasks of ``search.optimize(..., sampler="random", seed=seed)`` draw, in order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # also in a worker (warm_up)
    settings = []
    for slot in range(n):
        study = optuna.create_study(
            sampler=search.make_sampler("random", search.engines._seed_for(seed, slot))
        )
        settings.append(obj.settings(study.ask()))
    return settings


def overhead(obj, rounds, per_round, folder):
    client = search.start_cluster(1)
    try:
        warm_up(client, obj, folder, "warmup-1")
        plain, dask, inside = [], [], []
        for r in range(rounds):
            settings = drawn_settings(obj, r, per_round)
            if r % 2:  # every other round the plain loop goes first
                plain += plain_loop(obj, settings)
            seconds, trials = run_study(client, obj, per_round, folder, f"overhead-{r}", seed=r)
            if not r % 2:
                plain += plain_loop(obj, settings)
            ran = sorted((t.user_attrs["settings"] for t in trials), key=lambda s: s["learning_rate"])
            assert ran == sorted(settings, key=lambda s: s["learning_rate"]), (
                "both sides train the same settings"
            )
            dask.append(seconds / per_round)
            inside += [t.user_attrs["compile_seconds"] + t.user_attrs["train_seconds"] for t in trials]
    finally:
        client.close()
        client.cluster.close()
    return plain, dask, inside


def _fit_once(obj):
    obj.fit(drawn_settings(obj, 998, 1)[0])


def warm_up(client, obj, folder, name):
    """Every worker trains once (imports, data, its model and compiled step), then one trial goes through Optuna."""
    client.run(_fit_once, obj)
    run_study(client, obj, 1, folder, name, seed=999)


def throughput(obj, n_trials, n_workers, folder):
    client = search.start_cluster(n_workers)
    try:
        warm_up(client, obj, folder, f"warmup-{n_workers}")
        seconds, _ = run_study(client, obj, n_trials, folder, f"throughput-{n_workers}", seed=7)
    finally:
        client.close()
        client.cluster.close()
    return seconds


def machine():
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (float("nan"),) * 3
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "dlt_lib_commit": commit.stdout.strip() or "unknown",
        "load_average_at_start": [round(x, 2) for x in load],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--epochs", type=int, default=18, help="epochs per trial (18: about 10 s on a quiet 2-core machine)"
    )
    parser.add_argument("--trials", type=int, default=6, help="trials timed on 1 and on 2 workers")
    parser.add_argument(
        "--rounds", type=int, default=4, help="interleaved rounds of the overhead measurement"
    )
    parser.add_argument("--per-round", type=int, default=3, help="trials each way per round")
    parser.add_argument(
        "--quick", action="store_true", help="6-epoch trials, 4 trials, 2 rounds: a sanity check"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.trials, args.rounds = 6, 4, 2
    info = machine()
    print(f"bench_search: MLP 784-500-10 on the embedded sample, batch 20, {args.epochs} epochs per trial")
    print(f"machine: {info}")
    obj = objective(args.epochs)
    plain_loop(
        obj, [{**search.published_settings("mlp"), "learning_rate": 0.01, "l2": 1e-5, "n_hidden": 500}]
    )
    with tempfile.TemporaryDirectory() as folder:
        plain, dask, inside = overhead(obj, args.rounds, args.per_round, folder)
        one = throughput(obj, args.trials, 1, folder)
        two = throughput(obj, args.trials, 2, folder)
    plain_s, dask_s = statistics.median(plain), statistics.median(dask)
    inside_s = statistics.median(inside)
    over = dask_s / plain_s - 1
    per_minute = {1: 60 * args.trials / one, 2: 60 * args.trials / two}
    speedup = per_minute[2] / per_minute[1]
    results = {
        **info,
        "epochs_per_trial": args.epochs,
        "overhead": {
            "plain_loop_s_per_trial": plain,
            "dask_optuna_s_per_trial": dask,
            "trainer_s_inside_dask_trials": inside,
            "median_plain_s": plain_s,
            "median_dask_s": dask_s,
            "median_trainer_inside_s": inside_s,
            "overhead": over,
            "target": OVERHEAD_TARGET,
        },
        "throughput": {
            "trials": args.trials,
            "seconds_1_worker": one,
            "seconds_2_workers": two,
            "trials_per_minute": per_minute,
            "speedup": speedup,
            "target": SPEEDUP_TARGET,
        },
    }
    print()
    print("Per-trial overhead of Dask + Optuna (one worker) against the trainer in a plain loop")
    print(
        f"  plain loop       {plain_s:7.2f} s per trial (median of {len(plain)}; min {min(plain):.2f}, max {max(plain):.2f})"
    )
    print(
        f"  Dask + Optuna    {dask_s:7.2f} s per trial (median of {len(dask)} rounds; min {min(dask):.2f}, max {max(dask):.2f})"
    )
    print(
        f"  overhead         {100 * over:+7.1f} %   (target < {100 * OVERHEAD_TARGET:.0f}%: {'met' if over < OVERHEAD_TARGET else 'NOT met'})"
    )
    print(
        f"    of which: the trainer inside the worker {inside_s:.2f} s ({100 * (inside_s / plain_s - 1):+.1f} %), "
        f"the rest (task, study, results) {dask_s - inside_s:+.2f} s per trial"
    )
    print()
    print(f"Throughput, {args.trials} trials")
    print(f"  1 worker         {per_minute[1]:7.2f} trials per minute ({one:.1f} s)")
    print(f"  2 workers        {per_minute[2]:7.2f} trials per minute ({two:.1f} s)")
    print(
        f"  speed-up         {speedup:7.2f} x   (target >= {SPEEDUP_TARGET}: {'met' if speedup >= SPEEDUP_TARGET else 'NOT met'})"
    )
    try:
        load_end = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        load_end = None
    results["load_average_at_end"] = load_end
    print(
        f"\nload average at start {info['load_average_at_start']}, at end {load_end} "
        f"(on {info['cpus']} CPUs: above ~{info['cpus']} the machine was shared and the numbers are noisy)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""dlt_lib.search: the space, the objective, the cost of choosing, and real Dask clusters.

The tests marked ``dask`` start real ``LocalCluster`` worker processes and
run real trials (logistic regression on the embedded sample): a study
reaches its trial count on two workers, survives a worker killed mid-trial,
resumes after the driver is interrupted, and repeats itself with one worker.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from dlt_lib import cli, search
from dlt_lib.search import Choice, IntRange, LogUniform, SearchError, SearchSpace, Uniform

ROOT = Path(__file__).resolve().parents[1]
# A quick trial: logistic regression, 2,000 sample digits, batch 100; only the learning rate varies.
QUICK_SPACE = {
    "learning_rate": LogUniform(0.01, 1.0),
    "batch_size": 100,
    "l1": 0.0,
    "l2": 0.0,
    "optimizer": "sgd",
}
QUICK_FLAGS = ["--space", "learning_rate=0.01..1:log", "--space", "batch_size=100", "--n-train", "2000"]


def quick_objective(n_epochs=4, **kwargs):
    return search.Objective("logreg", "mnist-sample", QUICK_SPACE, n_epochs=n_epochs, n_train=2000, **kwargs)


def finished(study):
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def sqlite_ok(path):
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ----------------------------------------------------------------------------
# The search space
# ----------------------------------------------------------------------------
def test_space_parses_the_command_line_forms():
    space = SearchSpace.parse(
        [
            "learning_rate=1e-3..1:log",
            "l2=0..0.01",
            "n_hidden=50..800:log",
            "batch_size=20,100",
            "optimizer=sgd,adam",
            "l1=0",
        ]
    )
    assert space["learning_rate"] == LogUniform(1e-3, 1.0)
    assert space["l2"] == Uniform(0.0, 0.01)
    assert space["n_hidden"] == IntRange(50, 800, log=True)
    assert space["batch_size"] == Choice((20, 100)) and space["optimizer"] == Choice(("sgd", "adam"))
    assert space.fixed == {"l1": 0.0}
    assert set(space.searched) == {"learning_rate", "l2", "n_hidden", "batch_size", "optimizer"}
    # describe() writes what parse() reads
    again = SearchSpace.parse([f"{k}={v}" for k, v in space.describe().items()])
    assert dict(again) == dict(space)


@pytest.mark.parametrize(
    "items, message",
    [
        (["learning_rate=0.1", "batch_size=20"], "the search space is empty"),
        ([], "the search space is empty"),
        (["momentum=0.1..0.9"], "unknown hyper-parameter"),
        (["learning_rate=1..0.1:log"], "low < high"),
        (["learning_rate=0..1:log"], "low > 0"),
        (["learning_rate=0.1..1:ln"], "':log'"),
        (["batch_size=20.5,100"], "positive integer"),
        (["batch_size=0..100"], "positive integer"),
        (["optimizer=sgd,adamw"], "unknown rule 'adamw'"),
        (["l2=-1..1"], ">= 0"),
        (["l2=0,0"], "twice"),
        (["learning_rate"], "NAME=SPEC"),
        (["learning_rate=abc..1"], "not a number"),
    ],
)
def test_space_refuses_bad_input_with_a_reason(items, message):
    with pytest.raises(SearchError, match=message) as info:
        SearchSpace.parse(items)
    assert "\n" not in str(info.value)


def test_default_spaces_and_objective_checks():
    assert "n_hidden" in search.default_space("mlp") and "n_hidden" not in search.default_space("logreg")
    assert search.default_space("logreg")["learning_rate"] == LogUniform(1e-3, 1.0)
    with pytest.raises(SearchError, match="no hidden layer"):
        search.Objective("logreg", space={"n_hidden": Choice((10, 20))})
    with pytest.raises(SearchError, match="unknown model"):
        search.Objective("svm")
    objective = search.Objective("mlp", "mnist-sample")
    assert objective.patience == cli.DEFAULTS["mlp"]["patience"]
    # patience is kept in examples: the published batch size gets the published patience
    assert objective.patience_for(20) == 10_000 and objective.patience_for(100) == 2_000
    logreg = search.Objective("logreg", "mnist-sample")
    assert logreg.patience_for(600) == 5_000 and logreg.patience_for(20) == 150_000


def test_published_settings_are_the_train_commands_defaults():
    from dlt_lib.search.space import PUBLISHED_PATIENCE

    shared = ("learning_rate", "batch_size", "l1", "l2")  # what both the search and train set
    for model in PUBLISHED_PATIENCE:  # the models the search knows (train knows lenet too)
        defaults, settings = cli.DEFAULTS[model], search.published_settings(model)
        assert {k: settings[k] for k in shared} == {k: defaults[k] for k in shared}
        assert PUBLISHED_PATIENCE[model] == defaults["patience"]
    assert search.published_settings("mlp")["n_hidden"] == 500  # train's --n-hidden default


def test_grid_values_cover_each_dimension():
    space = SearchSpace({"learning_rate": LogUniform(0.01, 1.0), "batch_size": Choice((20, 100)), "l2": 0.0})
    grid = space.grid(3)
    assert grid == {"learning_rate": [0.01, 0.1, 1.0], "batch_size": [20, 100]}


# ----------------------------------------------------------------------------
# The cost of choosing
# ----------------------------------------------------------------------------
def test_selection_gap_is_the_exact_expectation_over_subsets():
    rng = np.random.default_rng(0)
    valid, test = rng.uniform(0.05, 0.2, 7), rng.uniform(0.05, 0.2, 7)
    for k in range(1, 8):
        chosen = [min(subset, key=lambda i: valid[i]) for subset in itertools.combinations(range(7), k)]
        expected = (float(np.mean(valid[chosen])), float(np.mean(test[chosen])))
        assert np.allclose(search.selection_gap(valid, test, k), expected)
    assert np.allclose(search.selection_gap(valid, test, 1), (valid.mean(), test.mean()))
    assert search.selection_gap(valid, test, 7)[0] == valid.min()
    with pytest.raises(ValueError, match="between 1 and"):
        search.selection_gap(valid, test, 8)


def test_selection_gap_grows_with_the_number_of_trials_when_errors_are_noise():
    # Trials that are all equally good, measured with noise: the chosen one's
    # validation error is optimistic, and more so the more trials there are.
    rng = np.random.default_rng(1)
    valid, test = 0.1 + rng.normal(0, 0.01, 200), 0.1 + rng.normal(0, 0.01, 200)
    gaps = [np.subtract(*search.selection_gap(valid, test, k)[::-1]) for k in (1, 4, 16, 64)]
    assert abs(gaps[0]) < 0.003 and all(a < b for a, b in zip(gaps, gaps[1:]))


# ----------------------------------------------------------------------------
# The objective, in this process, with an in-memory study
# ----------------------------------------------------------------------------
def test_objective_reports_each_validation_and_returns_the_best(tmp_path):
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.NopPruner()
    )
    study.enqueue_trial({"learning_rate": 0.1})
    study.enqueue_trial({"learning_rate": 1e38})  # diverges: an answer (pruned), not a failure
    objective = quick_objective(n_epochs=3, peek_at_test=True)
    objective.space = SearchSpace({**QUICK_SPACE, "learning_rate": LogUniform(0.01, 2e38)})
    study.optimize(objective, n_trials=2)
    good, diverged = study.trials
    assert good.state == TrialState.COMPLETE
    assert sorted(good.intermediate_values) == [1, 2, 3]
    assert good.value == min(good.intermediate_values.values()) < 0.3
    assert good.user_attrs["settings"] == {**objective.space.fixed, "learning_rate": 0.1}
    assert good.user_attrs["epochs"] == 3 and 0 < good.user_attrs["test_error"] < 0.3
    assert diverged.state == TrialState.PRUNED and "learning rate" in diverged.user_attrs["diverged"]


def test_a_pruned_trial_stops_training_at_once():
    # The pruner is asked after each validation, inside the trainer (its on_validation hook):
    # a trial it prunes at the first epoch trains no further.
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    study.optimize(quick_objective(n_epochs=5), n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [1]


def test_a_sqlite_study_is_kept_in_write_ahead_log_mode(tmp_path):
    import sqlite3

    import optuna

    url = search.open_storage(f"sqlite:///{tmp_path}/wal.db")
    optuna.create_study(study_name="s", storage=search.engines._rdb_storage(url))
    with sqlite3.connect(tmp_path / "wal.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_open_storage_explains_a_url_it_cannot_open(tmp_path):
    assert search.open_storage(f"sqlite:///{tmp_path}/ok.db").startswith("sqlite")
    for url in (f"sqlite:///{tmp_path}/missing/dir/x.db", "nosuchdb://host/x"):
        with pytest.raises(SearchError, match="cannot open the Optuna storage") as info:
            search.open_storage(url)
        assert "\n" not in str(info.value)
    with pytest.raises(SearchError, match="Dask scheduler"):
        search.open_storage("dask")
    with pytest.raises(SearchError, match="in-memory SQLite"):
        search.open_storage("sqlite:///:memory:")
    # a relative SQLite path is made absolute: the workers need not share the driver's directory
    relative = os.path.relpath(tmp_path / "rel.db")
    assert search.open_storage(f"sqlite:///{relative}") == f"sqlite:///{(tmp_path / 'rel.db').resolve()}"
    assert search.engines._mask("postgresql://me:secret@db/x") == "postgresql://me:***@db/x"


# ----------------------------------------------------------------------------
# The command line: bad input gives one line, before any cluster starts
# ----------------------------------------------------------------------------
def run_cli(argv, capsys):
    code = cli.main(["search", "logreg", "--dataset", "mnist-sample", "--quiet", *argv])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--space", "learning_rate=0.1"], "the search space is empty"),
        (["--storage", "sqlite:////nonexistent/dir/study.db"], "cannot open the Optuna storage"),
        (["--space", "n_hidden=10,20"], "no hidden layer"),
    ],
)
def test_search_cli_bad_input_is_one_line(argv, message, tmp_path, capsys):
    code, lines = run_cli([*argv, "--output-dir", str(tmp_path)], capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_search_cli_refuses_zero_trials(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["search", "logreg", "--trials", "0"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert info.value.code == 2 and len(lines) == 1 and "--trials" in lines[0] and ">= 1" in lines[0], lines


def test_search_cli_scheduler_that_does_not_answer(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    code, lines = run_cli(
        ["--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "1", "--output-dir", str(tmp_path)],
        capsys,
    )
    assert code == 2 and len(lines) == 1 and "no Dask scheduler answered" in lines[0], lines
    assert time.monotonic() - started < 30


def test_search_cli_help_names_every_flag():
    parser = cli.build_parser()
    search_parser = parser._subparsers._group_actions[0].choices["search"]
    text = search_parser.format_help()
    for flag in ("--trials", "--workers", "--scheduler", "--storage", "--study", "--output-dir", "--space"):
        assert flag in text
    for action in search_parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and len(action.help) > 10, action.option_strings


# ----------------------------------------------------------------------------
# Real Dask clusters
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_workers():
    client = search.start_cluster(2)
    yield client
    client.close()
    client.cluster.close()


@pytest.mark.dask
def test_two_workers_run_a_study_to_its_trial_count(two_workers, tmp_path):
    url = search.open_storage(f"sqlite:///{tmp_path}/study.db")
    results = []
    study = search.optimize(
        quick_objective(n_epochs=2),
        4,
        client=two_workers,
        storage=url,
        study_name="s",
        seed=0,
        progress=False,
        on_result=results.append,
    )
    assert len(finished(study)) == 4 and len(study.trials) == 4
    assert sorted(r.number for r in results) == [0, 1, 2, 3]
    assert len({r.worker for r in results}) == 2, "both workers ran trials"
    assert len({t.params["learning_rate"] for t in study.trials}) == 4, "tasks drew different settings"
    assert all(r.params is not None for r in results if r.state == "COMPLETE")
    # every worker is single-threaded, with one BLAS thread
    env = two_workers.run(lambda: os.environ.get("OPENBLAS_NUM_THREADS"))
    assert set(env.values()) == {"1"}
    # ... without Dask's 10 ms stack sampler or its 64 KiB malloc trim threshold
    lean = two_workers.run(
        lambda: (
            __import__("dask").config.get("distributed.worker.profile.enabled"),
            os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        )
    )
    assert set(lean.values()) == {(False, None)}
    assert {w["nthreads"] for w in two_workers.scheduler_info()["workers"].values()} == {1}
    # ... and they share this machine's PyTensor compile cache
    import pytensor

    compiledirs = two_workers.run(lambda: __import__("pytensor").config.compiledir)
    assert set(compiledirs.values()) == {pytensor.config.compiledir}
    assert sqlite_ok(tmp_path / "study.db")


@pytest.mark.dask
def test_search_cli_on_an_existing_scheduler_with_the_dask_storage(two_workers, tmp_path, capsys):
    # --scheduler: a cluster started elsewhere (here, the fixture's); --storage dask: Optuna's
    # DaskStorage, the study in the scheduler's memory.  The command must leave the cluster running.
    address = two_workers.scheduler.address
    out = tmp_path / "run"
    argv = [
        "search",
        "logreg",
        "--dataset",
        "mnist-sample",
        "--trials",
        "3",
        "--n-epochs",
        "2",
        "--scheduler",
        address,
        "--storage",
        "dask",
        "--output-dir",
        str(out),
        "--quiet",
        *QUICK_FLAGS,
    ]
    assert cli.main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"Dask cluster at {address}: 2 workers" in printed and "Dask dashboard:" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_finished"] == 3 and summary["storage"] == "dask"
    assert not (out / "study.db").exists()
    assert two_workers.submit(sum, [1, 2]).result() == 3, "the cluster is still up"


@pytest.mark.dask
def test_grid_search_on_two_workers_visits_each_point_once(two_workers, tmp_path):
    space = SearchSpace(
        {**QUICK_SPACE, "learning_rate": LogUniform(0.01, 1.0), "batch_size": Choice((50, 100))}
    )
    objective = search.Objective("logreg", "mnist-sample", space, n_epochs=1, n_train=2000)
    url = search.open_storage(f"sqlite:///{tmp_path}/study.db")
    grid = space.grid(2)
    study = search.optimize(
        objective,
        4,
        client=two_workers,
        storage=url,
        study_name="g",
        sampler="grid",
        seed=5,
        progress=False,
        grid_points=2,
    )
    visited = sorted((t.params["learning_rate"], t.params["batch_size"]) for t in study.trials)
    assert visited == sorted(itertools.product(grid["learning_rate"], grid["batch_size"]))


@pytest.mark.dask
def test_a_worker_killed_mid_trial_loses_nothing(two_workers, tmp_path):
    url = search.open_storage(f"sqlite:///{tmp_path}/study.db")
    objective = quick_objective(n_epochs=150)  # seconds per trial: time to kill one mid-way
    outcome = {}

    def drive():
        try:
            outcome["study"] = search.optimize(
                objective, 4, client=two_workers, storage=url, study_name="k", seed=1, progress=False
            )
        except BaseException as exc:  # pragma: no cover - reported below
            outcome["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    storage = search.engines._rdb_storage(url)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            study = optuna.load_study(study_name="k", storage=storage)
        except KeyError:  # not created yet
            continue
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if "worker" in trial.user_attrs and trial.params:  # settings drawn: training
                victim = trial
                break
    assert victim is not None, "no trial started"
    pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    driver.join(timeout=300)
    assert not driver.is_alive() and "error" not in outcome, outcome.get("error")
    study = outcome["study"]
    trials = study.get_trials(deepcopy=False)
    lost = trials[victim.number]
    assert lost.state == TrialState.FAIL, "the lost trial is recorded as failed"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].params == lost.params, "and retried once, with its settings"
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(finished(study)) == 4, "the study has exactly its trial count"
    tasks = [t.user_attrs[search.TASK_ATTR] for t in finished(study)]
    assert len(tasks) == len(set(tasks)), "no task counted twice"
    assert sqlite_ok(tmp_path / "study.db")


@pytest.mark.dask
def test_resume_after_interrupting_the_driver(tmp_path):
    out = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "dlt_lib",
        "search",
        "logreg",
        "--dataset",
        "mnist-sample",
        "--trials",
        "5",
        "--workers",
        "1",
        "--n-epochs",
        "3",
        "--output-dir",
        str(out),
        "--quiet",
        *QUICK_FLAGS,
    ]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    db = out / "study.db"
    deadline = time.monotonic() + 180
    before = []
    while time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    done = conn.execute(
                        "SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')"
                    ).fetchone()[0]
                except sqlite3.OperationalError:  # tables not made yet
                    continue
            if done >= 2:
                first.send_signal(signal.SIGINT)  # Ctrl-C
                break
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert "run the same command again" in err
    study = optuna.load_study(study_name="logreg-mnist-sample", storage=f"sqlite:///{db}")
    before = {t.number: (t.state, t.params, t.value) for t in finished(study)}
    assert 2 <= len(before) < 5
    assert not study.get_trials(states=(TrialState.RUNNING,)), "the interrupted trial is not left running"

    second = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert second.returncode == 0, second.stderr
    study = optuna.load_study(study_name="logreg-mnist-sample", storage=f"sqlite:///{db}")
    after = {t.number: (t.state, t.params, t.value) for t in finished(study)}
    assert len(after) == 5, "the total is exact"
    assert {n: after[n] for n in before} == before, "finished trials were kept, not repeated"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_finished"] == 5 and summary["best_valid_error"] == study.best_value
    assert 0 < summary["test_error"] < 0.5 and summary["test_examples"] == 1429
    for name in ("trials.csv", "history.png", "parameters.png", "best.npz"):
        assert (out / name).stat().st_size > 0, name
    assert sqlite_ok(db)


@pytest.mark.dask
def test_one_worker_repeats_a_search_exactly(tmp_path):
    client = search.start_cluster(1)
    try:
        runs = []
        for i, seed in enumerate((3, 3, 4)):
            url = search.open_storage(f"sqlite:///{tmp_path}/run{i}.db")
            study = search.optimize(
                quick_objective(n_epochs=2),
                3,
                client=client,
                storage=url,
                study_name="d",
                seed=seed,
                progress=False,
            )
            runs.append([(t.state, t.params, t.value) for t in study.trials])
    finally:
        client.close()
        client.cluster.close()
    assert runs[0] == runs[1], "same seed, one worker: the same trials and values"
    assert [p for _, p, _ in runs[0]] != [p for _, p, _ in runs[2]], "another seed draws other settings"

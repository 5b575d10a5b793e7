"""Resuming and sharing an output directory (issue 11, section 3).

A resumed run restores all of its history and repeats the saved run's
settings or is refused by name; a saved state holding values no run writes is
refused; one process at a time writes to a directory, and what a killed save
left there is cleaned up.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytensor
import pytest
from support import toy_data

from dlt_lib import checkpoint, cli, files, training
from dlt_lib.checkpoint import CheckpointError
from dlt_lib.models import MLP, LogisticRegression
from dlt_lib.training import EarlyStopping, train

DATA = toy_data()
SETTINGS = dict(learning_rate=0.1, batch_size=20, n_epochs=30, optimizer="momentum", progress=False, mode="C")


def run(model=None, data=DATA, patience=60, increase=2.0, threshold=0.995, **kwargs):
    model = model or LogisticRegression(12, 3)
    stopper = EarlyStopping(patience, increase, threshold)
    return model, train(model, data, early_stopping=stopper, **{**SETTINGS, **kwargs})


def _numbers(record):
    """Every field of a validation record but its wall time, as floats (NaN for None)."""
    values = dataclasses.asdict(record)
    del values["seconds"]
    return [math.nan if v is None else float(v) for v in values.values()]


def same_history(a, b):
    assert a.train_costs == pytest.approx(b.train_costs, rel=1e-6)
    assert len(a.records) == len(b.records)
    for x, y in zip(a.records, b.records):
        assert _numbers(x) == pytest.approx(_numbers(y), rel=1e-6, nan_ok=True)
    assert (a.stopped_at, a.epochs, a.stop_reason) == (b.stopped_at, b.epochs, b.stop_reason)


# ----------------------------------------------------------------------------
# A finished run, resumed
# ----------------------------------------------------------------------------
def test_resuming_a_run_that_ran_out_of_patience_changes_nothing(tmp_path):
    ckpt = tmp_path / "best.npz"
    _, first = run(checkpoint_path=ckpt)
    assert first.stop_reason.startswith("patience ran out") and first.epochs < 30
    _, again = run(checkpoint_path=ckpt, resume_from=ckpt)
    same_history(again, first)  # no extra update, the same reason, stopped_at and epochs restored
    assert again.resumed == {"from": str(tmp_path / "best.last.npz"), "iteration": first.stopped_at + 1}


def test_a_run_killed_after_its_last_checkpoint_resumes_to_the_same_end(tmp_path, monkeypatch):
    # The kill landed between the last validation's save and the end of the run: no final save.
    ckpt = tmp_path / "best.npz"
    save_state = training._Run.save_state
    monkeypatch.setattr(
        training._Run, "save_state", lambda self, path, finished=None: finished or save_state(self, path)
    )
    _, first = run(checkpoint_path=ckpt)
    monkeypatch.undo()
    _, resumed = run(checkpoint_path=ckpt, resume_from=ckpt)
    same_history(resumed, first)


def test_the_command_line_resumes_a_finished_run_to_the_same_summary(tmp_path, capsys):
    # Patience 3 validates after every update (and a threshold of 0.5 keeps it 3): the run stops
    # at a validation, the case where a resume used to run one update more.
    argv = ["train", "logreg", "--dataset", "mnist-sample", "--batch-size", "500", "--patience", "3"]
    argv += ["--improvement-threshold", "0.5", "--output-dir", str(tmp_path), "--quiet"]
    assert cli.main(argv) == 0
    first = json.loads((tmp_path / "summary.json").read_text())
    assert first["stop_reason"] == "patience ran out (patience 3 <= iteration 3)"
    assert cli.main([*argv, "--resume"]) == 0
    again = json.loads((tmp_path / "summary.json").read_text())
    for key in ("iterations", "epochs", "best_iteration", "best_valid_error", "test_error", "stop_reason"):
        assert again[key] == first[key], key
    assert again["resumed"]["iteration"] == 4
    capsys.readouterr()


# ----------------------------------------------------------------------------
# Changed settings
# ----------------------------------------------------------------------------
OTHER_DATA = ((DATA[0][0][::-1].copy(), DATA[0][1][::-1].copy()), DATA[1], DATA[2])

CHANGES = {
    "learning_rate": (dict(learning_rate=0.5), r"learning_rate 0\.1 \(saved\) -> 0\.5 \(now\)"),
    "batch_size": (dict(batch_size=40), r"batch_size 20 \(saved\) -> 40 \(now\)"),
    "optimizer": (dict(optimizer="nesterov"), r"optimizer 'momentum' \(saved\) -> 'nesterov'"),
    "momentum": (dict(optimizer_kwargs={"momentum": 0.5}), r"momentum None \(saved\) -> 0\.5 \(now\)"),
    "l1": (dict(l1=1e-4), r"l1 0\.0 \(saved\) -> 0\.0001 \(now\)"),
    "l2": (dict(l2=1e-3), r"l2 0\.0 \(saved\) -> 0\.001 \(now\)"),
    "patience": (dict(patience=500), r"patience 60\.0 \(saved\) -> 500\.0 \(now\)"),
    "patience_increase": (dict(increase=3.0), r"patience_increase 2\.0 \(saved\) -> 3\.0 \(now\)"),
    "improvement_threshold": (dict(threshold=0.9), r"improvement_threshold 0\.995 \(saved\) -> 0\.9"),
    "shuffle": (dict(shuffle=7), r"shuffle None \(saved\) -> 7 \(now\)"),
    "data": (dict(data=OTHER_DATA), "the training or validation data differ"),
    "model": (dict(model=LogisticRegression(12, 3)), None),  # the same: allowed (see below)
}


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("saved") / "best.npz"
    run(n_epochs=2, checkpoint_path=ckpt)
    return ckpt


@pytest.mark.parametrize("setting", [name for name, (_, match) in CHANGES.items() if match])
def test_every_changed_setting_is_refused_by_name_before_compiling(saved_run, setting, monkeypatch):
    change, match = CHANGES[setting]

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled before comparing the settings")

    monkeypatch.setattr(pytensor, "function", no_compiling)
    with pytest.raises(CheckpointError, match=match) as info:
        run(n_epochs=3, resume_from=saved_run, **change)
    assert str(saved_run.with_name("best.last.npz")) in str(info.value)


def test_another_model_or_seed_is_refused(saved_run, tmp_path):
    with pytest.raises(CheckpointError, match="saved from a LogisticRegression"):
        run(MLP(12, 4, 3), n_epochs=3, resume_from=saved_run)
    ckpt = tmp_path / "best.npz"
    run(MLP(12, 4, 3, seed=1), n_epochs=2, checkpoint_path=ckpt)
    with pytest.raises(CheckpointError, match="'seed': 1.*'seed': 2"):
        run(MLP(12, 4, 3, seed=2), n_epochs=3, resume_from=ckpt)


def test_more_epochs_are_allowed_and_reported_fewer_than_done_are_refused(tmp_path):
    ckpt = tmp_path / "best.npz"
    _, full = run(n_epochs=6, patience=10_000)
    run(n_epochs=3, patience=10_000, checkpoint_path=ckpt)
    _, resumed = run(n_epochs=6, patience=10_000, checkpoint_path=ckpt, resume_from=ckpt)
    same_history(resumed, full)
    assert resumed.resumed["n_epochs"] == [3, 6] and resumed.resumed["iteration"] == 60
    with pytest.raises(CheckpointError, match=r"it has done 120 updates, more than the 40 of n_epochs=2"):
        run(n_epochs=2, patience=10_000, resume_from=ckpt)


# ----------------------------------------------------------------------------
# States no run writes
# ----------------------------------------------------------------------------
def _forge(path, change):
    state = path.with_name("best.last.npz")
    arrays, meta = checkpoint.read_arrays(state)
    change(arrays, meta)
    checkpoint.write_arrays(state, arrays, meta)


FORGERIES = {
    "next_iteration -5": lambda a, m: m.update(next_iteration=-5),
    "next_iteration 2.5": lambda a, m: m.update(next_iteration=2.5),
    "next_iteration beyond the costs": lambda a, m: m.update(next_iteration=m["next_iteration"] + 7),
    "costs removed": lambda a, m: a.pop("history:train_costs"),
    "a best error of 7": lambda a, m: m["stopper"].update(best_loss=7.0),
    "a best iteration in the future": lambda a, m: m["stopper"].update(best_iteration=10**6),
    "a best iteration of text": lambda a, m: m["stopper"].update(best_iteration="x"),
    "a negative patience": lambda a, m: m["stopper"].update(patience=-1),
    "validations out of order": lambda a, m: m["history"]["records"].reverse(),
    "a record with a field too many": lambda a, m: m["history"]["records"][0].update(extra=1),
    "no history": lambda a, m: m.pop("history"),
    "an older format": lambda a, m: m.update(format="dlt_lib training state 2"),
    "an optimizer state too few": lambda a, m: a.pop("state:0"),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_state_no_run_writes_is_refused(tmp_path, forgery):
    ckpt = tmp_path / "best.npz"
    run(n_epochs=2, checkpoint_path=ckpt)
    _forge(ckpt, FORGERIES[forgery])
    with pytest.raises(CheckpointError, match="Cannot resume from .*best.last.npz") as info:
        run(n_epochs=4, resume_from=ckpt)
    assert "Start a new run" in str(info.value)


def test_resuming_from_nothing_says_there_is_nothing_to_resume(tmp_path):
    with pytest.raises(CheckpointError, match=f"Nothing to resume in {tmp_path}: it holds no best.last.npz"):
        run(resume_from=tmp_path / "best.npz")


# ----------------------------------------------------------------------------
# One run per directory
# ----------------------------------------------------------------------------
HOLD = (
    "import sys, time\n"
    "from dlt_lib import files\n"
    "with files.locked_directory(sys.argv[1]):\n"
    "    print('holding', flush=True)\n"
    "    time.sleep(60)\n"
)


def _holder(directory):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_run_is_refused_and_told_which_process_holds_the_directory(tmp_path, capsys):
    holder = _holder(tmp_path)
    try:
        argv = ["train", "logreg", "--dataset", "mnist-sample", "--n-epochs", "1"]
        assert cli.main([*argv, "--output-dir", str(tmp_path), "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {tmp_path} is in use by process {holder.pid} ") and "\n" not in err
        with pytest.raises(files.DirectoryBusyError, match=f"process {holder.pid}"):
            run(checkpoint_path=tmp_path / "best.npz")
    finally:
        holder.kill()
        holder.wait()
    # killed holding it: the lock is taken over, and who held it is known
    with files.locked_directory(tmp_path) as lock:
        assert lock.previous_holder.startswith(f"{holder.pid} (")
    assert not (tmp_path / files.LOCK_NAME).exists()  # released cleanly: nothing left behind


def test_a_lock_is_held_once_per_process_and_released_on_error(tmp_path):
    with files.locked_directory(tmp_path), files.locked_directory(tmp_path) as inner:
        assert inner.previous_holder is None  # re-entered, not taken over
    with pytest.raises(RuntimeError), files.locked_directory(tmp_path):
        raise RuntimeError
    holder = _holder(tmp_path)  # another process can take it now
    holder.kill()
    holder.wait()


def test_stale_temporary_files_of_a_killed_save_are_removed_by_the_next_run(tmp_path):
    stale = [tmp_path / ".best.npz.k3j_x9a2.tmp", tmp_path / ".best.last.npz.0a1b2c3d.tmp"]
    kept = [tmp_path / "notes.tmp", tmp_path / ".best.npz.tmp"]  # not names atomic_file makes
    for path in stale + kept:
        path.write_bytes(b"half a checkpoint")
    run(n_epochs=1, checkpoint_path=tmp_path / "best.npz")
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_ctrl_c_prints_one_line_and_leaves_a_run_to_resume(tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "dlt_lib", "train", "logreg", "--dataset", "mnist-sample"]
    argv += ["--batch-size", "20", "--n-epochs", "4", "--patience", "100000", "--output-dir", str(out)]
    proc = subprocess.Popen([*argv, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = out / "best.last.npz"
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert state.exists(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == [
        f"interrupted: {out} keeps the last saved state; continue with the same command and --resume"
    ], stderr
    assert not list(out.glob("*.tmp")) and not (out / files.LOCK_NAME).exists()
    env = {**os.environ, "DLT_OFFLINE": "1"}
    resumed = subprocess.run([*argv, "--quiet", "--resume"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 4 and summary["iterations"] == 4 * (7142 // 20)

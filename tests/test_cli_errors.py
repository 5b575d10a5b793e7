"""Ordinary mistakes at the command line (issue 11, section 2): one ``error:`` line, the right status, no traceback.

:data:`MISTAKES` is a table of bad invocations run in-process through
``cli.main`` (faithful: the same parser, the same error mapping, only no new
Python); the few that need a process of their own (a full or read-only disk,
Ctrl-C in ``test_resume.py``) run as one.  Status 2: the user's to fix (a flag,
an environment variable, a file named on the command line); 1: the machine or
the data failed; 3: the run diverged.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from support import skip_or_fail_in_ci

from dlt_lib import checkpoint, cli
from dlt_lib.models import LogisticRegression

SAMPLE = ["--dataset", "mnist-sample"]
TRAIN = ["train", "logreg", *SAMPLE, "--quiet"]


def resume(*flags, model="logreg", batch="600", epochs="2"):
    """Resume the saved run (logreg, the sample, batch 600, 2 epochs, the defaults) with ``flags`` changed."""
    return ["train", model, *SAMPLE, "--quiet", "--batch-size", batch, "--n-epochs", epochs, *flags] + [
        "--output-dir",
        "{saved}",
        "--resume",
    ]


#: id -> (arguments, exit status, words the error line must hold, environment).
MISTAKES = {
    # -- flags the parser refuses -------------------------------------------------
    "no command": ([], 2, "required", {}),
    "unknown command": (["fit"], 2, "invalid choice", {}),
    "no model": (["train"], 2, "required: model", {}),
    "unknown model": (["train", "svm"], 2, "invalid choice: 'svm'", {}),
    "unknown flag": ([*TRAIN, "--foo"], 2, "unrecognized arguments: --foo", {}),
    "learning rate 0": ([*TRAIN, "--learning-rate", "0"], 2, "expected a number > 0", {}),
    "learning rate negative": ([*TRAIN, "--learning-rate", "-1"], 2, "expected a number > 0", {}),
    "learning rate inf": ([*TRAIN, "--learning-rate", "inf"], 2, "got 'inf'", {}),
    "learning rate nan": ([*TRAIN, "--learning-rate", "nan"], 2, "got 'nan'", {}),
    "learning rate text": ([*TRAIN, "--learning-rate", "fast"], 2, "got 'fast'", {}),
    "batch size 0": ([*TRAIN, "--batch-size", "0"], 2, "expected an integer >= 1", {}),
    "batch size 2.5": ([*TRAIN, "--batch-size", "2.5"], 2, "got '2.5'", {}),
    "epochs 0": ([*TRAIN, "--n-epochs", "0"], 2, "expected an integer >= 1", {}),
    "l1 negative": ([*TRAIN, "--l1", "-1"], 2, "expected a number >= 0", {}),
    "l2 nan": ([*TRAIN, "--l2", "nan"], 2, "got 'nan'", {}),
    "l2 inf": ([*TRAIN, "--l2", "inf"], 2, "got 'inf'", {}),
    "hidden units absurd": (["train", "mlp", "--n-hidden", "100000000"], 2, "in [1, 10000]", {}),
    "hidden units 0": (["train", "mlp", "--n-hidden", "0"], 2, "in [1, 10000]", {}),
    "patience 0": ([*TRAIN, "--patience", "0"], 2, "expected an integer >= 1", {}),
    "patience increase 0.5": ([*TRAIN, "--patience-increase", "0.5"], 2, "expected a number >= 1", {}),
    "patience increase inf": ([*TRAIN, "--patience-increase", "inf"], 2, "got 'inf'", {}),
    "threshold 2": ([*TRAIN, "--improvement-threshold", "2"], 2, "in (0, 1]", {}),
    "threshold 0": ([*TRAIN, "--improvement-threshold", "0"], 2, "in (0, 1]", {}),
    "threshold inf": ([*TRAIN, "--improvement-threshold", "inf"], 2, "in (0, 1]", {}),
    "seed negative": (["train", "mlp", "--seed", "-1"], 2, "in [0, 4294967295]", {}),
    "seed too large": (["train", "mlp", "--seed", str(2**32)], 2, "in [0, 4294967295]", {}),
    "shuffle negative": ([*TRAIN, "--shuffle", "-1"], 2, "expected an integer >= 0", {}),
    "chunk size 0": ([*TRAIN, "--chunk-size", "0"], 2, "expected an integer >= 1", {}),
    "unknown optimizer": ([*TRAIN, "--optimizer", "adamw"], 2, "invalid choice: 'adamw'", {}),
    "unknown mode": ([*TRAIN, "--mode", "GPU"], 2, "expected one of C, NUMBA, JAX", {}),
    "empty mode": ([*TRAIN, "--mode", ""], 2, "expected one of C, NUMBA, JAX", {}),
    "unknown dataset": (["train", "logreg", "--dataset", "cifar"], 2, "invalid choice: 'cifar'", {}),
    "output dir /dev/null": ([*TRAIN, "--output-dir", "/dev/null"], 2, "is not a directory", {}),
    "output dir a file": ([*TRAIN, "--output-dir", "{file}"], 2, "is not a directory", {}),
    "output dir under a file": ([*TRAIN, "--output-dir", "{file}/run"], 2, "which is a file", {}),
    "output dir empty": ([*TRAIN, "--output-dir", ""], 2, "an empty path", {}),
    "evaluate nothing": (["evaluate"], 2, "required: checkpoint", {}),
    "evaluate a missing file": (["evaluate", "{tmp}/missing.npz"], 2, "no file", {}),
    "evaluate a directory x.npz": (
        ["evaluate", "{x.npz}"],
        2,
        "is a directory: give the .npz file in it",
        {},
    ),
    "evaluate a FIFO": (["evaluate", "{fifo}"], 2, "not a regular file", {}),
    "evaluate on an unknown dataset": (
        ["evaluate", "{best.npz}", "--dataset", "cifar"],
        2,
        "invalid choice",
        {},
    ),
    "evaluate in an unknown mode": (["evaluate", "{best.npz}", "--mode", "TPU"], 2, "expected one of C", {}),
    # -- the environment ----------------------------------------------------------
    "DLT_OFFLINE=maybe": (["train", "logreg", "--quiet"], 2, "DLT_OFFLINE='maybe'", {"DLT_OFFLINE": "maybe"}),
    "DLT_MODE=bogus, train": (
        [*TRAIN, "--output-dir", "{tmp}/r"],
        2,
        "DLT_MODE='bogus'",
        {"DLT_MODE": "bogus"},
    ),
    "DLT_MODE=bogus, evaluate": (["evaluate", "{best.npz}"], 2, "DLT_MODE='bogus'", {"DLT_MODE": "bogus"}),
    "Fashion-MNIST missing": (
        ["train", "logreg", "--dataset", "fashion-mnist", "--output-dir", "{tmp}/f", "--quiet"],
        1,
        "lacks train-images-idx3-ubyte.gz",
        {"DLT_FASHION_MNIST_DIR": "{empty}"},
    ),
    "Fashion-MNIST truncated": (
        ["train", "logreg", "--dataset", "fashion-mnist", "--output-dir", "{tmp}/f", "--quiet"],
        1,
        "truncated",
        {"DLT_FASHION_MNIST_DIR": "{truncated fashion}"},
    ),
    # -- settings the data refuse, runs that fail -----------------------------------
    "batch larger than the sample": (
        [*TRAIN, "--batch-size", "7143", "--output-dir", "{tmp}/b"],
        2,
        "7142",
        {},
    ),
    "a penalty that overflows": (
        [*TRAIN, "--l1", "1e38", "--n-epochs", "1", "--output-dir", "{tmp}/d"],
        3,
        "l1=1e+38 is far too large",
        {},
    ),
    # -- resuming -------------------------------------------------------------------
    "resume into an empty directory": (
        [*TRAIN, "--output-dir", "{empty}", "--resume"],
        2,
        "Nothing to resume",
        {},
    ),
    "resume another learning rate": (
        resume("--learning-rate", "0.5"),
        2,
        "learning_rate 0.13 (saved) -> 0.5",
        {},
    ),
    "resume another batch size": (resume(batch="500"), 2, "batch_size 600 (saved) -> 500 (now)", {}),
    "resume another l1": (resume("--l1", "0.001"), 2, "l1 0.0 (saved) -> 0.001", {}),
    "resume another l2": (resume("--l2", "0.001"), 2, "l2 0.0 (saved) -> 0.001", {}),
    "resume another patience": (resume("--patience", "100"), 2, "patience 5000.0 (saved) -> 100.0", {}),
    "resume another increase": (resume("--patience-increase", "3"), 2, "patience_increase 2.0", {}),
    "resume another threshold": (resume("--improvement-threshold", "0.9"), 2, "improvement_threshold", {}),
    "resume another optimizer": (resume("--optimizer", "momentum"), 2, "optimizer 'sgd' (saved)", {}),
    "resume shuffled": (resume("--shuffle", "1"), 2, "shuffle None (saved) -> 1", {}),
    "resume another model": (resume(model="mlp"), 2, "saved from a LogisticRegression", {}),
    "resume with fewer epochs": (resume(epochs="1"), 2, "more than the 11 of n_epochs=1", {}),
    "resume a forged state": (
        [*TRAIN, "--output-dir", "{forged}", "--resume"],
        2,
        "next_iteration is -5",
        {},
    ),
    # -- evaluating what is not a good checkpoint -----------------------------------------
    "evaluate best.json": (["evaluate", "{best.json}"], 2, "is JSON text", {}),
    "evaluate a text file": (["evaluate", "{file}"], 2, "does not start like one", {}),
    "evaluate a 5-class model": (["evaluate", "{5 classes}", *SAMPLE], 2, "784 inputs and 5 classes", {}),
    "evaluate a 6-input model": (["evaluate", "{6 inputs}", *SAMPLE], 2, "6 inputs and 10 classes", {}),
    "evaluate metadata not JSON": (["evaluate", "{not json}"], 2, "not valid JSON", {}),
    "evaluate metadata a list": (["evaluate", "{json list}"], 2, "not a JSON object", {}),
    "evaluate no hyper-parameters": (["evaluate", "{no hyper}"], 2, "no hyper-parameters", {}),
    "evaluate a string hyper-parameter": (["evaluate", "{odd hyper}"], 2, "n_in must be an integer", {}),
    "evaluate an unknown hyper-parameter": (["evaluate", "{extra hyper}"], 2, "cannot take", {}),
    "evaluate a huge claimed model": (["evaluate", "{huge claim}"], 2, "(100000, 5000)", {}),
    "evaluate an unknown model class": (["evaluate", "{unknown class}"], 2, "unknown model class 'SVM'", {}),
    "evaluate a truncated checkpoint": (["evaluate", "{truncated}"], 2, "damaged or truncated", {}),
    "evaluate a pickle": (["evaluate", "{pickle}"], 2, "is a Python pickle", {}),
    "evaluate an npz of objects": (["evaluate", "{objects}"], 2, "pickled Python objects", {}),
    "evaluate a foreign npz": (["evaluate", "{foreign}"], 2, "not a dlt_lib checkpoint", {}),
}


def _checkpoint_with(path, meta_text: str, **arrays):
    np.savez(path, __metadata__=np.array(meta_text), **arrays)
    return path


def _forged(path, change):
    checkpoint.save(path, LogisticRegression(784, 10))
    arrays, meta = checkpoint.read_arrays(path)
    change(meta)
    checkpoint.write_arrays(path, arrays, meta)
    return path


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """Every file and directory the table names, made once."""
    tmp = tmp_path_factory.mktemp("mistakes")
    p = {
        "tmp": tmp,
        "file": tmp / "a_file",
        "x.npz": tmp / "x.npz",
        "fifo": tmp / "pipe.npz",
        "empty": tmp / "empty",
    }
    p["file"].write_text("not a checkpoint")
    p["x.npz"].mkdir()
    p["empty"].mkdir()
    os.mkfifo(p["fifo"])
    saved = p["saved"] = tmp / "saved"
    assert cli.main([*TRAIN, "--batch-size", "600", "--n-epochs", "2", "--output-dir", str(saved)]) == 0
    p["best.npz"], p["best.json"] = saved / "best.npz", saved / "best.json"
    p["forged"] = tmp / "forged"
    shutil.copytree(saved, p["forged"])
    arrays, meta = checkpoint.read_arrays(p["forged"] / "best.last.npz")
    checkpoint.write_arrays(p["forged"] / "best.last.npz", arrays, {**meta, "next_iteration": -5})
    fashion = p["truncated fashion"] = tmp / "fashion"
    _small_fashion(fashion)
    p["5 classes"] = checkpoint.save(tmp / "five.npz", LogisticRegression(784, 5))
    p["6 inputs"] = checkpoint.save(tmp / "six.npz", LogisticRegression(6, 10))
    W, b = np.zeros((784, 10), "float32"), np.zeros(10, "float32")
    p["not json"] = _checkpoint_with(tmp / "notjson.npz", "{not json", W=W, b=b)
    p["json list"] = _checkpoint_with(tmp / "list.npz", "[1, 2]", W=W, b=b)
    p["no hyper"] = _checkpoint_with(
        tmp / "nohyper.npz", json.dumps({"model_class": "LogisticRegression"}), W=W
    )
    p["odd hyper"] = _forged(
        tmp / "odd.npz", lambda m: m.update(hyperparameters={"n_in": "784", "n_out": 10})
    )
    p["extra hyper"] = _forged(tmp / "extra.npz", lambda m: m["hyperparameters"].update(color="red"))
    p["huge claim"] = _forged(
        tmp / "huge.npz", lambda m: m.update(hyperparameters={"n_in": 100000, "n_out": 5000})
    )
    p["unknown class"] = _forged(tmp / "svm.npz", lambda m: m.update(model_class="SVM"))
    data = p["best.npz"].read_bytes()
    (tmp / "truncated.npz").write_bytes(data[: len(data) // 2])
    p["truncated"] = tmp / "truncated.npz"
    (tmp / "pickle.npz").write_bytes(pickle.dumps({"W": W}))
    p["pickle"] = tmp / "pickle.npz"
    p["objects"] = _checkpoint_with(tmp / "objects.npz", "{}", W=np.array([object()], dtype=object))
    np.savez(tmp / "foreign.npz", a=np.zeros(3))
    p["foreign"] = tmp / "foreign.npz"
    return {key: str(value) for key, value in p.items()}


def _small_fashion(directory):
    """Four small IDX files, the training images cut short (an interrupted copy)."""
    import gzip
    import struct

    directory.mkdir()
    for part, n in (("train", 60), ("t10k", 12)):
        images = struct.pack(">IIII", 0x803, n, 28, 28) + bytes(n * 784)
        labels = struct.pack(">II", 0x801, n) + bytes(range(10)) * (n // 10) + bytes(n % 10)
        (directory / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        (directory / f"{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    cut = directory / "train-images-idx3-ubyte.gz"
    cut.write_bytes(cut.read_bytes()[:-30])


def _fill(text: str, places: dict) -> str:
    """``text`` with each ``{name}`` replaced by that place's path."""
    for name, path in places.items():
        text = text.replace("{" + name + "}", path)
    assert "{" not in text, f"no place for {text}"
    return text


def invoke(argv, env, monkeypatch, capsys):
    """``cli.main(argv)`` with ``env`` set; (status, stderr).  A parser error is a SystemExit, as from the shell."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        status = cli.main(argv)
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def assert_one_error_line(err: str, status: int, expected_status: int, words: str):
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1, f"not one line:\n{err}"
    assert lines[0].startswith("error: ") or lines[0].startswith("python -m dlt_lib"), lines[0]
    assert "error: " in lines[0] and words in lines[0], lines[0]
    assert status == expected_status, (status, lines[0])


def test_the_table_is_long_enough():
    assert len(MISTAKES) >= 60


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_is_one_error_line_with_the_right_status(mistake, places, monkeypatch, capsys):
    arguments, expected_status, words, env = MISTAKES[mistake]
    monkeypatch.setenv("DLT_OFFLINE", "1")
    argv = [_fill(a, places) for a in arguments]
    env = {k: _fill(v, places) for k, v in env.items()}
    status, err = invoke(argv, env, monkeypatch, capsys)
    assert_one_error_line(err, status, expected_status, words)


def test_debug_adds_the_traceback(places, monkeypatch, capsys):
    status, err = invoke(["evaluate", places["not json"], "--debug"], {}, monkeypatch, capsys)
    assert status == 2 and "Traceback" in err and "JSONDecodeError" in err
    assert err.strip().splitlines()[-1].startswith("error: ") and "not valid JSON" in err
    status, err = invoke(["--debug", "evaluate", places["not json"]], {}, monkeypatch, capsys)
    assert status == 2 and "Traceback" in err


def test_mode_is_taken_in_any_case(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLT_OFFLINE", "1")
    assert cli.main([*TRAIN, "--mode", "c", "--n-epochs", "1", "--output-dir", str(tmp_path)]) == 0
    assert "mode C on cpu" in capsys.readouterr().out
    assert json.loads((tmp_path / "summary.json").read_text())["mode"] == "C"


def test_help_says_each_default_once():
    subparsers = cli.build_parser()._subparsers._group_actions[0].choices
    for name, parser in subparsers.items():
        formatter = parser._get_formatter()
        text = parser.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, text
        for action in parser._actions:
            shown = formatter._expand_help(action) if action.help else ""
            assert shown.count("default") <= 1, (name, action.dest, shown)
            if action.default not in (None, False, "==SUPPRESS==") and action.option_strings:
                assert shown.count("default") == 1, (name, action.dest, shown)


# ----------------------------------------------------------------------------
# A full disk and a read-only one: a file system of their own, in a process of its own
# ----------------------------------------------------------------------------
def _own_mount_namespace() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


def _train_on(directory, mount_options):
    """Train into ``directory/run`` on a tmpfs mounted there with ``mount_options``; (status, stderr)."""
    train = [sys.executable, "-m", "dlt_lib", *TRAIN, "--n-epochs", "1", "--output-dir", f"{directory}/run"]
    script = f"mount -t tmpfs -o {mount_options} tmpfs {directory} && exec {' '.join(train)}"
    argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script]
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "DLT_OFFLINE": "1"})
    return result.returncode, result.stderr


def test_a_full_disk_is_one_line_that_says_what_to_do(tmp_path):
    if _own_mount_namespace():  # a real file system that fills up: 48 KB of tmpfs
        status, err = _train_on(tmp_path, "size=48k")
    else:  # a file size limit instead: writes fail with EFBIG past 40 KB
        import resource

        argv = [
            sys.executable,
            "-m",
            "dlt_lib",
            *TRAIN,
            "--n-epochs",
            "1",
            "--output-dir",
            str(tmp_path / "run"),
        ]
        limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))  # noqa: E731
        result = subprocess.run(argv, capture_output=True, text=True, preexec_fn=limit)
        status, err = result.returncode, result.stderr
    assert_one_error_line(err, status, 1, "no room to write")
    assert "--resume" in err


def test_a_read_only_directory_is_one_line_that_says_what_to_do(tmp_path, monkeypatch, capsys):
    if os.geteuid() != 0:  # permissions hold for an ordinary user
        read_only = tmp_path / "ro"
        read_only.mkdir(mode=0o555)
        monkeypatch.setenv("DLT_OFFLINE", "1")
        status, err = invoke([*TRAIN, "--output-dir", str(read_only / "run")], {}, monkeypatch, capsys)
    elif _own_mount_namespace():  # root writes anywhere, except on a read-only file system
        status, err = _train_on(tmp_path, "ro,size=64k")
    else:
        skip_or_fail_in_ci("as root, a read-only directory needs a mount namespace (unshare) to make")
    assert_one_error_line(err, status, 1, "cannot write")
    assert "--output-dir" in err


def test_ctrl_c_before_anything_was_saved_says_so(tmp_path, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_train", interrupted)
    status, err = invoke([*TRAIN, "--output-dir", str(tmp_path)], {"DLT_OFFLINE": "1"}, monkeypatch, capsys)
    assert status == 130
    assert err.strip().splitlines() == [
        f"interrupted before anything was saved in {tmp_path}; run the same command again to start over"
    ]
    assert not (tmp_path / ".lock").exists()  # the lock was released on the way out

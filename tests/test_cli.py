"""The command line: train writes a checkpoint, a plot and a summary; evaluate reads them back."""

import json
import subprocess
import sys

import pytest

from dlt_lib import cli


def test_help_explains_every_flag():
    parser = cli.build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    for action in train_parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and len(action.help) > 10, f"{action.option_strings} has no help"
    text = train_parser.format_help()
    for flag in (
        "--optimizer",
        "--l1",
        "--l2",
        "--patience",
        "--n-epochs",
        "--mode",
        "--output-dir",
        "--dataset",
    ):
        assert flag in text


def test_published_defaults():
    assert cli.DEFAULTS["logreg"]["learning_rate"] == 0.13 and cli.DEFAULTS["logreg"]["batch_size"] == 600
    mlp = cli.DEFAULTS["mlp"]
    assert (mlp["learning_rate"], mlp["batch_size"], mlp["l1"], mlp["l2"]) == (0.01, 20, 0.0, 1e-4)


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(
        [
            "train",
            "logreg",
            "--dataset",
            "mnist-sample",
            "--n-epochs",
            "3",
            "--batch-size",
            "100",
            "--output-dir",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "LogisticRegression" and summary["epochs"] == 3
    assert summary["settings"]["learning_rate"] == 0.13 and summary["settings"]["batch_size"] == 100
    assert "10,000-digit sample" in summary["data_source"] and summary["mode"] in ("C", "NUMBA", "JAX")
    assert 0 < summary["test_error"] < 0.3  # three epochs of logistic regression already beat chance by far
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()

    assert cli.main(["evaluate", str(out / "best.npz"), "--dataset", "mnist-sample"]) == 0
    printed = capsys.readouterr().out
    assert f"test error {100 * summary['test_error']:.3f}%" in printed


def test_evaluate_reports_a_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    assert cli.main(["evaluate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not a checkpoint" in err


def test_divergence_exits_with_an_error(tmp_path, capsys):
    code = cli.main(
        [
            "train",
            "logreg",
            "--dataset",
            "mnist-sample",
            "--n-epochs",
            "2",
            "--learning-rate",
            "1e38",
            "--output-dir",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == 3
    assert "learning rate" in capsys.readouterr().err


# A value each flag must refuse; test_every_flag_refuses_a_bad_value_in_one_line
# fails for a flag that takes a value and has no entry here.
BAD = {
    ("train", "model"): "svm",
    ("train", "--dataset"): "cifar",
    ("train", "--learning-rate"): "0",
    ("train", "--batch-size"): "0",
    ("train", "--n-epochs"): "1.5",
    ("train", "--l1"): "-1",
    ("train", "--l2"): "nan",
    ("train", "--n-hidden"): "many",
    ("train", "--patience"): "-3",
    ("train", "--patience-increase"): "0.5",
    ("train", "--improvement-threshold"): "1.5",
    ("train", "--seed"): "-1",
    ("train", "--shuffle"): "yes",
    ("train", "--chunk-size"): "0",
    ("train", "--nkerns"): "0",
    ("train", "--optimizer"): "adamw",
    ("train", "--mode"): "GPU",
    ("train", "--output-dir"): "FILE",
    ("evaluate", "checkpoint"): "missing.npz",
    ("evaluate", "--dataset"): "cifar",
    ("evaluate", "--mode"): "TPU",
    ("search", "model"): "svm",
    ("search", "--dataset"): "cifar",
    ("search", "--trials"): "0",
    ("search", "--workers"): "0",
    ("search", "--connect-timeout"): "0",
    ("search", "--grid-points"): "1",
    ("search", "--n-epochs"): "0",
    ("search", "--patience"): "-3",
    ("search", "--n-train"): "0",
    ("search", "--seed"): "-1",
    ("search", "--scheduler"): "tcp://host:port",
    ("search", "--storage"): "not a url",
    ("search", "--study"): " ",
    ("search", "--output-dir"): "FILE",
    ("search", "--space"): "momentum=0.9",
    ("search", "--sampler"): "bayes",
    ("search", "--pruner"): "hyperband",
    ("search", "--mode"): "GPU",
}


def _value_arguments():
    """(command, flag or positional name) of every argument that takes a value."""
    subparsers = cli.build_parser()._subparsers._group_actions[0].choices
    for command, parser in subparsers.items():
        for action in parser._actions:
            if action.nargs != 0 and action.dest != "help":
                yield command, action.option_strings[0] if action.option_strings else action.dest


def test_every_flag_refuses_a_bad_value_in_one_line(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    arguments = list(_value_arguments())
    assert sorted(arguments) == sorted(BAD), "every flag that takes a value needs a bad value in BAD"
    for command, name in arguments:
        bad = str(a_file) if BAD[command, name] == "FILE" else BAD[command, name]
        before = {"train": ["logreg"], "evaluate": [str(a_file)], "search": ["logreg"]}[command]
        if not name.startswith("-"):
            argv = [command, bad]
        else:
            argv = [command, *before, name, bad]
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1, f"{argv}: not one line:\n{err}"
        assert f"argument {name}" in err and "see python -m dlt_lib" in err, err


def test_a_bad_flag_is_one_line_and_status_2_from_the_shell():
    argv = [sys.executable, "-m", "dlt_lib", "train", "logreg", "--patience-increase", "0.5"]
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "python -m dlt_lib train: error: argument --patience-increase: expected a number >= 1; got '0.5' "
        "(see python -m dlt_lib train --help)"
    ]


def test_resume_without_a_saved_run_is_a_clear_error(tmp_path, capsys):
    argv = [
        "train",
        "logreg",
        "--dataset",
        "mnist-sample",
        "--output-dir",
        str(tmp_path),
        "--resume",
        "--quiet",
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Nothing to resume in") and len(err.strip().splitlines()) == 1

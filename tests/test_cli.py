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
    assert "embedded sample" in summary["data_source"] and summary["mode"] in ("C", "NUMBA", "JAX")
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
    assert "is not a checkpoint" in capsys.readouterr().err


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


@pytest.mark.parametrize(
    "argv", [["train", "logreg", "--batch-size", "0"], ["train", "svm"], ["train", "mlp", "--l2", "-1"]]
)
def test_bad_flags_are_refused(argv):
    result = subprocess.run([sys.executable, "-m", "dlt_lib", *argv], capture_output=True, text=True)
    assert result.returncode == 2 and "error:" in result.stderr

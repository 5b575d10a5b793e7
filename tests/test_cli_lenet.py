"""``python -m dlt_lib train lenet``: the tutorials' defaults, a real (small) run, and evaluate on its checkpoint."""

import json

from dlt_lib import cli


def test_lenet_defaults_are_the_tutorials():
    lenet = cli.DEFAULTS["lenet"]
    assert (lenet["learning_rate"], lenet["batch_size"], lenet["n_epochs"]) == (0.1, 500, 200)
    assert (lenet["patience"], lenet["seed"], lenet["l1"], lenet["l2"]) == (10000, 23455, 0.0, 0.0)
    args = cli.build_parser().parse_args(["train", "lenet"])
    assert args.nkerns == [20, 50] and args.n_hidden == 500
    # the other models keep theirs
    assert cli.DEFAULTS["mlp"]["seed"] == 1234 and cli.DEFAULTS["mlp"]["n_epochs"] == 1000


def test_train_lenet_then_evaluate(tmp_path, capsys):
    out = tmp_path / "lenet"
    argv = ["train", "lenet", "--dataset", "mnist-sample", "--nkerns", "4", "6", "--n-hidden", "20"]
    argv += ["--n-epochs", "1", "--batch-size", "500", "--output-dir", str(out), "--quiet"]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "LeNet" and summary["epochs"] == 1
    assert summary["hyperparameters"]["nkerns"] == [4, 6] and summary["hyperparameters"]["seed"] == 23455
    assert summary["settings"]["learning_rate"] == 0.1 and summary["settings"]["n_epochs"] == 1
    assert 0 < summary["test_error"] < 0.9  # 14 updates: better than chance (90%) already
    capsys.readouterr()
    assert cli.main(["evaluate", str(out / "best.npz"), "--dataset", "mnist-sample"]) == 0
    assert f"test error {100 * summary['test_error']:.3f}%" in capsys.readouterr().out

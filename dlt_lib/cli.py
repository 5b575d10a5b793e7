"""Command line: ``python -m dlt_lib train ...`` and ``python -m dlt_lib evaluate ...``.

The defaults are the tutorials' published settings:

- logistic regression (``logistic_sgd.py``): learning rate 0.13, batch 600, patience 5000;
- MLP (``mlp.py``): 500 tanh units, learning rate 0.01, L1 0, L2 1e-4, batch 20, patience 10000.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

DEFAULTS = {
    "logreg": {"learning_rate": 0.13, "batch_size": 600, "l1": 0.0, "l2": 0.0, "patience": 5000},
    "mlp": {"learning_rate": 0.01, "batch_size": 20, "l1": 0.0, "l2": 1e-4, "patience": 10000},
}
DATASETS = ("mnist", "mnist-sample", "fashion-mnist")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _non_negative_float(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from dlt_lib import backend, updates

    parser = argparse.ArgumentParser(
        prog="python -m dlt_lib",
        description="Train and evaluate the Deep Learning Tutorials' models with PyTensor.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser(
        "train",
        help="train a model with minibatch SGD and early stopping",
        description="Train a model with minibatch updates and the tutorials' early stopping. "
        "Unset flags take the tutorials' published defaults for the chosen model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    tr.add_argument("model", choices=("logreg", "mlp"), help="logistic regression or a one-hidden-layer MLP")
    tr.add_argument(
        "--dataset",
        choices=DATASETS,
        default="mnist",
        help="mnist: the full 50k/10k/10k set (download, cache, or the embedded sample when offline); "
        "mnist-sample: the 10,000 digits shipped with dlt_lib; fashion-mnist: Zalando's Fashion-MNIST",
    )
    tr.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=None,
        help="step size (default: 0.13 for logreg, 0.01 for mlp)",
    )
    tr.add_argument(
        "--batch-size", type=_positive_int, default=None, help="minibatch size (default: 600 logreg, 20 mlp)"
    )
    tr.add_argument(
        "--n-epochs", type=_positive_int, default=1000, help="maximum number of passes over the training set"
    )
    tr.add_argument(
        "--optimizer",
        choices=sorted(updates.OPTIMIZERS),
        default="sgd",
        help="update rule from dlt_lib.updates",
    )
    tr.add_argument(
        "--l1", type=_non_negative_float, default=None, help="weight of the L1 penalty (default 0)"
    )
    tr.add_argument(
        "--l2",
        type=_non_negative_float,
        default=None,
        help="weight of the squared-L2 penalty (default: 0 logreg, 1e-4 mlp)",
    )
    tr.add_argument("--n-hidden", type=_positive_int, default=500, help="hidden units of the MLP")
    tr.add_argument(
        "--patience",
        type=_positive_int,
        default=None,
        help="minimum number of minibatch updates before stopping (default: 5000 logreg, 10000 mlp)",
    )
    tr.add_argument(
        "--patience-increase",
        type=float,
        default=2.0,
        help="on a significant improvement, wait until iteration x this factor",
    )
    tr.add_argument(
        "--improvement-threshold",
        type=float,
        default=0.995,
        help="a validation error below best x this is a significant improvement",
    )
    tr.add_argument("--seed", type=int, default=1234, help="seed of the MLP's weight initialisation")
    tr.add_argument(
        "--mode",
        choices=backend.MODES,
        default=None,
        help="PyTensor mode (default: $DLT_MODE or C); JAX is the GPU path",
    )
    tr.add_argument(
        "--output-dir",
        type=Path,
        default=Path("runs/latest"),
        help="where best.npz, learning_curves.png and summary.json are written",
    )
    tr.add_argument("--resume", action="store_true", help="continue the run saved in --output-dir")
    tr.add_argument("--offline", action="store_true", help="never download; same as DLT_OFFLINE=1")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = sub.add_parser(
        "evaluate",
        help="report the error of a saved checkpoint",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ev.add_argument("checkpoint", type=Path, help="a .npz written by 'train' (e.g. runs/latest/best.npz)")
    ev.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="data to evaluate on (default: the dataset the checkpoint was trained on)",
    )
    ev.add_argument("--mode", choices=backend.MODES, default=None, help="PyTensor mode")
    ev.add_argument("--offline", action="store_true", help="never download; same as DLT_OFFLINE=1")
    return parser


def _load(name, offline):
    from dlt_lib import data

    return data.load_dataset(name, offline=True if offline else None)


def cmd_train(args) -> int:
    from dlt_lib import backend, models, plot, training

    defaults = DEFAULTS[args.model]
    settings = {
        key: getattr(args, key) if getattr(args, key) is not None else value
        for key, value in defaults.items()
    }
    if args.mode:
        backend.set_mode(args.mode)
    print(backend.describe())
    splits = _load(args.dataset, args.offline)
    n_in = splits[0][0].shape[1]
    if args.model == "logreg":
        model = models.LogisticRegression(n_in, 10)
    else:
        model = models.MLP(n_in, args.n_hidden, 10, seed=args.seed)
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "best.npz"
    print(
        f"Training {type(model).__name__} ({model.n_parameters:,} parameters) on {splits.source}: "
        f"{settings}, optimizer {args.optimizer}"
    )
    started = time.perf_counter()
    try:
        history = training.train(
            model,
            splits,
            learning_rate=settings["learning_rate"],
            batch_size=settings["batch_size"],
            n_epochs=args.n_epochs,
            optimizer=args.optimizer,
            l1=settings["l1"],
            l2=settings["l2"],
            patience=settings["patience"],
            patience_increase=args.patience_increase,
            improvement_threshold=args.improvement_threshold,
            progress=not args.quiet,
            checkpoint_path=checkpoint,
            resume_from=checkpoint if args.resume else None,
            checkpoint_metadata={"dataset": args.dataset, "optimizer": args.optimizer, "settings": settings},
        )
    except training.TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(history.summary())
    figure = plot.learning_curves(history, title=f"{type(model).__name__} on {args.dataset} ({history.mode})")
    plot.save_figure(figure, out / "learning_curves.png")
    summary = {
        "model": type(model).__name__,
        "hyperparameters": model.hyperparameters(),
        "settings": {
            **settings,
            "n_epochs": args.n_epochs,
            "optimizer": args.optimizer,
            "patience_increase": args.patience_increase,
            "improvement_threshold": args.improvement_threshold,
        },
        "dataset": args.dataset,
        "data_source": splits.source,
        "mode": history.mode,
        "best_valid_error": history.best_valid_error,
        "test_error": history.test_error,
        "best_iteration": history.best.iteration if history.best else None,
        "iterations": history.stopped_at + 1,
        "epochs": history.epochs,
        "stop_reason": history.stop_reason,
        "train_seconds": history.seconds,
        "compile_seconds": history.compile_seconds,
        "total_seconds": time.perf_counter() - started,
        "checkpoint": str(checkpoint),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"Wrote {checkpoint}, {out / 'learning_curves.png'} and {out / 'summary.json'}")
    return 0


def cmd_evaluate(args) -> int:
    from dlt_lib import backend, checkpoint

    if args.mode:
        backend.set_mode(args.mode)
    try:
        meta = checkpoint.read_metadata(args.checkpoint)
        model = checkpoint.load(args.checkpoint)
    except checkpoint.CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dataset = args.dataset or meta.get("dataset") or "mnist"
    splits = _load(dataset, args.offline)
    (_, _), (Xva, yva), (Xte, yte) = splits
    valid_error, test_error = model.error_rate(Xva, yva), model.error_rate(Xte, yte)
    print(f"{meta['model_class']} from {args.checkpoint} on {dataset} ({splits.source}):")
    print(f"  validation error {100 * valid_error:.3f}%  test error {100 * test_error:.3f}%")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return cmd_train(args)
    return cmd_evaluate(args)


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m dlt_lib train ...``, ``evaluate ...`` and ``search ...``.

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
    tr.add_argument("--dataset", choices=DATASETS, default="mnist",
                    help="mnist: the full 50k/10k/10k set (download, cache, or the embedded sample when offline); "
                    "mnist-sample: the 10,000 digits shipped with dlt_lib; fashion-mnist: Zalando's Fashion-MNIST")
    tr.add_argument("--learning-rate", type=_positive_float, default=None,
                    help="step size (default: 0.13 for logreg, 0.01 for mlp)")
    tr.add_argument("--batch-size", type=_positive_int, default=None, help="minibatch size (default: 600 logreg, 20 mlp)")
    tr.add_argument("--n-epochs", type=_positive_int, default=1000, help="maximum number of passes over the training set")
    tr.add_argument("--optimizer", choices=sorted(updates.OPTIMIZERS), default="sgd", help="update rule from dlt_lib.updates")
    tr.add_argument("--l1", type=_non_negative_float, default=None, help="weight of the L1 penalty (default 0)")
    tr.add_argument("--l2", type=_non_negative_float, default=None,
                    help="weight of the squared-L2 penalty (default: 0 logreg, 1e-4 mlp)")
    tr.add_argument("--n-hidden", type=_positive_int, default=500, help="hidden units of the MLP")
    tr.add_argument("--patience", type=_positive_int, default=None,
                    help="minimum number of minibatch updates before stopping (default: 5000 logreg, 10000 mlp)")
    tr.add_argument("--patience-increase", type=float, default=2.0,
                    help="on a significant improvement, wait until iteration x this factor")
    tr.add_argument("--improvement-threshold", type=float, default=0.995,
                    help="a validation error below best x this is a significant improvement")
    tr.add_argument("--seed", type=int, default=1234, help="seed of the MLP's weight initialisation")
    tr.add_argument("--mode", choices=backend.MODES, default=None,
                    help="PyTensor mode (default: $DLT_MODE or C); JAX is the GPU path")
    tr.add_argument("--output-dir", type=Path, default=Path("runs/latest"),
                    help="where best.npz, learning_curves.png and summary.json are written")
    tr.add_argument("--resume", action="store_true", help="continue the run saved in --output-dir")
    tr.add_argument("--offline", action="store_true", help="never download; same as DLT_OFFLINE=1")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")

    _add_search_parser(sub, backend)

    ev = sub.add_parser("evaluate", help="report the error of a saved checkpoint",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ev.add_argument("checkpoint", type=Path, help="a .npz written by 'train' (e.g. runs/latest/best.npz)")
    ev.add_argument("--dataset", choices=DATASETS, default=None,
                    help="data to evaluate on (default: the dataset the checkpoint was trained on)")
    ev.add_argument("--mode", choices=backend.MODES, default=None, help="PyTensor mode")
    ev.add_argument("--offline", action="store_true", help="never download; same as DLT_OFFLINE=1")
    return parser


def _trials(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of trials, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 trial, got {text} (nothing to search)")
    return value


def _add_search_parser(sub, backend):
    from dlt_lib import search

    se = sub.add_parser(
        "search",
        help="choose hyper-parameters on the validation set (Optuna decides, Dask runs the trials)",
        description="Search the trainer's hyper-parameters: Optuna samples and prunes trials, Dask runs them "
        "(one trial per task) on a local cluster or an existing one. The study is kept in --storage, so the "
        "same command after an interruption continues it. The best trial's test error is measured once, at the end.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    se.add_argument("model", choices=search.MODELS, help="logistic regression or a one-hidden-layer MLP")
    se.add_argument("--dataset", choices=DATASETS, default="mnist", help="as for 'train'")
    se.add_argument("--trials", type=_trials, default=20,
                    help="number of finished (completed or pruned) trials the study should have")
    where = se.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None,
                       help="start a local Dask cluster of this many single-threaded workers "
                       "(default: one per core)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="use the Dask cluster whose scheduler is at ADDRESS, e.g. tcp://host:8786")
    se.add_argument("--connect-timeout", type=_positive_float, default=10.0,
                    help="seconds to wait for --scheduler to answer")
    se.add_argument("--storage", default=None, metavar="URL",
                    help="Optuna storage: a SQLAlchemy URL (default: sqlite:///OUTPUT_DIR/study.db), "
                    "or 'dask' / 'dask+URL' for Optuna's Dask storage on the scheduler")
    se.add_argument("--study", default=None, metavar="NAME", help="study name (default: MODEL-DATASET)")
    se.add_argument("--output-dir", type=Path, default=Path("runs/search"),
                    help="where study.db, trials.csv, history.png, parameters.png, best.npz and summary.json go")
    se.add_argument("--space", action="append", default=[], metavar="NAME=SPEC",
                    help="a hyper-parameter to search: LOW..HIGH, LOW..HIGH:log, A,B,C or a fixed value; "
                    f"names: {', '.join(search.PARAMETERS)}. Given once or more, these flags are the whole "
                    "space and other settings take the model's published values "
                    "(default space: learning_rate=1e-3..1:log batch_size=20,100,600 l1=0,1e-5,1e-4 "
                    "l2=0,1e-5,1e-4,1e-3 optimizer=sgd,momentum, and for mlp n_hidden=100,250,500,1000)")
    se.add_argument("--sampler", choices=search.SAMPLERS, default="tpe", help="Optuna's sampler")
    se.add_argument("--grid-points", type=_positive_int, default=3,
                    help="with --sampler grid: values across each range (a choice gives each of its values)")
    se.add_argument("--pruner", choices=search.PRUNERS, default="median",
                    help="Optuna's pruner: median, successive halving, or none")
    se.add_argument("--n-epochs", type=_positive_int, default=100, help="most epochs a trial may train")
    se.add_argument("--patience", type=_positive_int, default=None,
                    help="early-stopping patience of each trial, in updates at the model's published batch size "
                    "(default: 5000 logreg at 600, 10000 mlp at 20); other batch sizes wait as many examples")
    se.add_argument("--n-train", type=_positive_int, default=None,
                    help="train each trial on the first N training examples only (a quick search)")
    se.add_argument("--seed", type=int, default=0, help="seed of the sampler (one worker repeats a search exactly)")
    se.add_argument("--mode", choices=backend.MODES, default=None, help="PyTensor mode of every trial")
    se.add_argument("--offline", action="store_true", help="never download; same as DLT_OFFLINE=1")
    se.add_argument("--quiet", action="store_true", help="no progress bar")


def _load(name, offline):
    from dlt_lib import data

    return data.load_dataset(name, offline=True if offline else None)


def cmd_train(args) -> int:
    from dlt_lib import backend, models, plot, training

    defaults = DEFAULTS[args.model]
    settings = {key: getattr(args, key) if getattr(args, key) is not None else value for key, value in defaults.items()}
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
    print(f"Training {type(model).__name__} ({model.n_parameters:,} parameters) on {splits.source}: "
          f"{settings}, optimizer {args.optimizer}")
    started = time.perf_counter()
    try:
        history = training.train(
            model, splits,
            learning_rate=settings["learning_rate"], batch_size=settings["batch_size"], n_epochs=args.n_epochs,
            optimizer=args.optimizer, l1=settings["l1"], l2=settings["l2"], patience=settings["patience"],
            patience_increase=args.patience_increase, improvement_threshold=args.improvement_threshold,
            progress=not args.quiet, checkpoint_path=checkpoint,
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
        "settings": {**settings, "n_epochs": args.n_epochs, "optimizer": args.optimizer,
                     "patience_increase": args.patience_increase,
                     "improvement_threshold": args.improvement_threshold},
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


def cmd_search(args) -> int:
    import os

    from dlt_lib import backend, data, search

    if args.mode:
        backend.set_mode(args.mode)
    try:
        space = search.SearchSpace.parse(args.space) if args.space else None
        objective = search.Objective(
            args.model, args.dataset, space, n_epochs=args.n_epochs, patience=args.patience,
            n_train=args.n_train, offline=True if args.offline else None,
        )
        # Everything that can be checked here is checked before a cluster starts.
        splits = objective.splits()
        if args.storage and not args.storage.startswith("dask"):
            search.open_storage(args.storage)
        args.output_dir.mkdir(parents=True, exist_ok=True)
    except (search.SearchError, data.DatasetNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write to --output-dir {args.output_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(backend.describe())
    print(f"Searching {args.model} on {splits.source}: {args.trials} trials over "
          f"{search.format_space(objective.space)}")
    client = None
    try:
        if args.scheduler:
            client = search.connect(args.scheduler, timeout=args.connect_timeout)
            print(f"Dask cluster at {args.scheduler}: {len(client.scheduler_info()['workers'])} workers")
        else:
            workers = args.workers or os.cpu_count() or 1
            client = search.start_cluster(workers)
            print(f"Local Dask cluster: {workers} single-threaded worker processes")
        link = search.dashboard_link(client)
        print(f"Dask dashboard: {link}" if link else "Dask dashboard: not available (pip install bokeh)")
        summary = search.run_search(
            objective, args.trials, args.output_dir, client=client, storage=args.storage, study_name=args.study,
            sampler=args.sampler, pruner=args.pruner, seed=args.seed, progress=not args.quiet,
            grid_points=args.grid_points,
        )
    except search.SearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished trials are kept in the study; run the same command again to continue "
              f"({args.trials} trials in all).", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            cluster = client.cluster if not args.scheduler else None
            client.close()
            if cluster is not None:
                cluster.close()
    by_state = ", ".join(f"{n} {state.lower()}" for state, n in sorted(summary["trials_by_state"].items()))
    print(f"{summary['trials_finished']} trials finished ({by_state}).")
    print(f"Best: trial {summary['best_trial']}, validation error {100 * summary['best_valid_error']:.3f}%, "
          f"settings {summary['best_settings']}")
    print(f"Its test error, measured once: {100 * summary['test_error']:.3f}% "
          f"on {summary['test_examples']:,} test examples.")
    print(f"Wrote {args.output_dir}/: trials.csv, history.png, parameters.png, best.npz, summary.json "
          f"(study: {summary['storage']}, name {summary['study']!r})")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"train": cmd_train, "evaluate": cmd_evaluate, "search": cmd_search}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

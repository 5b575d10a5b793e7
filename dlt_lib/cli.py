"""Command line: ``python -m dlt_lib train ...``, ``evaluate ...`` and ``search ...``.

The defaults are the tutorials' published settings:

- logistic regression (``logistic_sgd.py``): learning rate 0.13, batch 600, patience 5000;
- MLP (``mlp.py``): 500 tanh units, learning rate 0.01, L1 0, L2 1e-4, batch 20, patience 10000;
- LeNet (``convolutional_mlp.py``): 20 and 50 filters of 5 x 5, 500 tanh units, learning rate 0.1,
  batch 500, patience 10000, at most 200 epochs.

Errors are reported in one place each: a bad flag by the parser, on one line
and with exit status 2 (every flag's value is checked by an argparse type
built on :func:`dlt_lib.validation.check_scalar`); an error while running by
:func:`main`, as one line ``error: <what happened and what to do>`` with the
status :func:`exit_status` gives it (:data:`EXIT_CODES`).  ``--debug`` adds
the traceback; Ctrl-C prints one line and leaves the last saved state to
``--resume`` from.  A new subcommand adds its parser in :func:`build_parser`
(``set_defaults(command=...)``) and raises the library's own errors: the
mapping in :func:`exit_status` covers it.
Taught in ``book/putting_it_together.ipynb``.
"""

from __future__ import annotations

import argparse
import errno
import json
import numbers
import sys
import time
import traceback
import warnings
from pathlib import Path

from dlt_lib.validation import InvalidParameterError, check_scalar, describe_scalar

DEFAULTS = {
    "logreg": {
        "learning_rate": 0.13,
        "batch_size": 600,
        "l1": 0.0,
        "l2": 0.0,
        "patience": 5000,
        "n_epochs": 1000,
    },
    "mlp": {
        "learning_rate": 0.01,
        "batch_size": 20,
        "l1": 0.0,
        "l2": 1e-4,
        "patience": 10000,
        "n_epochs": 1000,
        "seed": 1234,
    },
    "lenet": {
        "learning_rate": 0.1,
        "batch_size": 500,
        "l1": 0.0,
        "l2": 0.0,
        "patience": 10000,
        "n_epochs": 200,
        "seed": 23455,
    },
}
MODEL_CHOICES = {
    "logreg": "logistic regression",
    "mlp": "a one-hidden-layer MLP",
    "lenet": "the tutorials' LeNet",
}
DATASETS = ("mnist", "mnist-sample", "fashion-mnist")
#: The most hidden units ``train mlp`` takes (the tutorials use 500): 784 x 10,000 weights are 31 MB.
MAX_HIDDEN = 10_000

#: Exit status by kind of error: 2 a usage error (a bad flag, environment
#: variable or file named on the command line: the user's to fix), 3 a
#: training run that diverged, 1 any other runtime error (data, disk, a busy
#: directory), 130 Ctrl-C.
EXIT_CODES = {"usage": 2, "diverged": 3, "runtime": 1, "interrupted": 130}


class _Parser(argparse.ArgumentParser):
    """argparse, with an error on one line (``prog: error: ...``) rather than after the usage text."""

    def error(self, message):
        self.exit(EXIT_CODES["usage"], f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Each flag's default said once: added to its help only where the help does not already say it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" not in text and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def _number(kind, **bounds):
    """An argparse type: text -> ``kind`` (int or float) within ``bounds``, as :func:`check_scalar` takes them."""
    target = numbers.Integral if kind is int else numbers.Real
    expected = describe_scalar(target, **bounds)

    def parse(text):
        try:
            return check_scalar(kind(text), "value", target, **bounds)
        except (ValueError, OverflowError):  # int("x"), float("x"), out of bounds (InvalidParameterError)
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None

    return parse


def _output_dir(text):
    """A directory to write into: not empty, not an existing file, not under a file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a directory, e.g. runs/first")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise argparse.ArgumentTypeError(f"{text!r} would be inside {str(blocking)!r}, which is a file")
    return path


def _checkpoint_file(text):
    """A checkpoint to read: an existing regular file (a FIFO would make reading it wait forever)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no file {text!r}: give a checkpoint written by 'train'")
    if path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text!r} is a directory: give the .npz file in it, e.g. {path / 'best.npz'}"
        )
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular file (a FIFO, socket or device)")
    return path


def _mode(text):
    from dlt_lib import backend

    try:
        return backend.normalise_mode(text)
    except InvalidParameterError:
        raise argparse.ArgumentTypeError(f"expected one of C, NUMBA, JAX (any case); got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m dlt_lib train|evaluate``.  See ``book/saving_and_plotting.ipynb``."""
    parser = _Parser(
        prog="python -m dlt_lib",
        description="Train and evaluate the Deep Learning Tutorials' models with PyTensor.",
    )
    parser.add_argument("--debug", action="store_true", help="on an error, show the traceback too")
    sub = parser.add_subparsers(dest="command_name", required=True, metavar="{train,evaluate,search}")
    _add_train_command(sub)
    _add_evaluate_command(sub)
    _add_search_command(sub)
    for command in sub.choices.values():  # every subcommand, also one added later, takes --debug
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
    return parser


def _per_model(key: str) -> str:
    """``"default: 0.13 logreg, 0.01 mlp, 0.1 lenet"``: a flag's default for each model, from DEFAULTS."""
    return "default: " + ", ".join(f"{values[key]:g} {model}" for model, values in DEFAULTS.items())


_POSITIVE = {"min_val": 0, "include_boundaries": "neither"}
#: The numeric flags of ``train``: type, default (None: the model's, from DEFAULTS) and help.
TRAIN_NUMBERS = {
    "--learning-rate": (_number(float, **_POSITIVE), None, f"step size ({_per_model('learning_rate')})"),
    "--batch-size": (_number(int, min_val=1), None, f"minibatch size ({_per_model('batch_size')})"),
    "--n-epochs": (
        _number(int, min_val=1),
        None,
        f"maximum number of passes over the data ({_per_model('n_epochs')})",
    ),
    "--l1": (_number(float, min_val=0), None, f"weight of the L1 penalty ({_per_model('l1')})"),
    "--l2": (
        _number(float, min_val=0),
        None,
        f"weight of the squared-L2 penalty ({_per_model('l2')})",
    ),
    "--n-hidden": (
        _number(int, min_val=1, max_val=MAX_HIDDEN),
        500,
        "hidden units of the MLP or LeNet's tanh layer",
    ),
    "--patience": (
        _number(int, min_val=1),
        None,
        f"updates before stopping, at least ({_per_model('patience')})",
    ),
    "--patience-increase": (
        _number(float, min_val=1),
        2.0,
        "at a significant gain, wait until iteration x this",
    ),
    "--improvement-threshold": (
        _number(float, min_val=0, max_val=1, include_boundaries="right"),
        0.995,
        "a validation error below best x this is a significant gain",
    ),
    "--seed": (
        _number(int, min_val=0, max_val=2**32 - 1),
        None,
        "seed of the weights' initialisation (default: the tutorials', 1234 mlp, 23455 lenet)",
    ),
    "--shuffle": (_number(int, min_val=0), None, "seed of a new order each epoch (default: the fixed order)"),
    "--chunk-size": (_number(int, min_val=1), None, "minibatches held in memory at a time (default: all)"),
}


def _add_train_command(sub) -> None:
    from dlt_lib import updates

    tr = sub.add_parser(
        "train",
        help="train a model with minibatch SGD and early stopping",
        description="Train a model with minibatch updates and the tutorials' early stopping. "
        "Unset flags take the tutorials' published defaults for the chosen model.",
        formatter_class=_HelpFormatter,
    )
    tr.set_defaults(command=cmd_train)
    tr.add_argument(
        "model", choices=tuple(MODEL_CHOICES), help=", ".join(f"{k}: {v}" for k, v in MODEL_CHOICES.items())
    )
    tr.add_argument(
        "--dataset",
        choices=DATASETS,
        default="mnist",
        help="mnist: the full 50k/10k/10k set (download, cache, or the embedded sample when offline); "
        "mnist-sample: the 10,000 digits shipped with dlt_lib; fashion-mnist: Zalando's Fashion-MNIST",
    )
    for flag, (kind, default, text) in TRAIN_NUMBERS.items():
        tr.add_argument(flag, type=kind, default=default, help=text)
    tr.add_argument(
        "--nkerns",
        type=_number(int, min_val=1),
        nargs=2,
        default=[20, 50],
        metavar=("K1", "K2"),
        help="lenet: filters of its two convolution-pooling stages",
    )
    tr.add_argument("--optimizer", choices=sorted(updates.OPTIMIZERS), default="sgd", help="update rule")
    _add_mode(tr)
    tr.add_argument("--output-dir", type=_output_dir, default=Path("runs/latest"), help="where results go")
    tr.add_argument("--resume", action="store_true", help="continue the run saved in --output-dir")
    tr.add_argument("--offline", action="store_true", help="never download; same as DLT_OFFLINE=1")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_mode(parser) -> None:
    parser.add_argument(
        "--mode",
        type=_mode,
        metavar="{C,NUMBA,JAX}",
        help="PyTensor mode, any case (default: $DLT_MODE, else C); JAX is the GPU path",
    )


def _add_evaluate_command(sub) -> None:
    ev = sub.add_parser(
        "evaluate", help="report the error of a saved checkpoint", formatter_class=_HelpFormatter
    )
    ev.set_defaults(command=cmd_evaluate)
    ev.add_argument(
        "checkpoint", type=_checkpoint_file, help="a .npz written by 'train' (runs/latest/best.npz)"
    )
    ev.add_argument("--dataset", choices=DATASETS, help="data to evaluate on (default: the checkpoint's)")
    _add_mode(ev)
    ev.add_argument("--offline", action="store_true", help="never download; same as DLT_OFFLINE=1")


#: The numeric flags of ``search``: type, default and help.
SEARCH_NUMBERS = {
    "--trials": (_number(int, min_val=1), 20, "finished (completed or pruned) trials the study should have"),
    "--workers": (
        _number(int, min_val=1),
        None,
        "start a local Dask cluster of this many single-threaded workers (default: one per core)",
    ),
    "--connect-timeout": (_number(float, **_POSITIVE), 10.0, "seconds to wait for --scheduler to answer"),
    "--grid-points": (
        _number(int, min_val=2),
        3,
        "with --sampler grid: values across each range of the space",
    ),
    "--n-epochs": (_number(int, min_val=1), 100, "most epochs a trial may train"),
    "--patience": (
        _number(int, min_val=1),
        None,
        "patience of each trial, in updates at the model's published "
        "batch size (5000 logreg at 600, 10000 mlp at 20); other batch sizes wait as many examples",
    ),
    "--n-train": (_number(int, min_val=1), None, "train each trial on the first N training examples only"),
    "--seed": (
        _number(int, min_val=0, max_val=2**32 - 1),
        0,
        "seed of the sampler (one worker repeats a search)",
    ),
}


def _space_item(text):
    """``NAME=SPEC``, checked on its own (whether the whole space is empty is known only after every flag)."""
    from dlt_lib.search.space import SearchError, parse_item

    try:
        parse_item(text)
    except SearchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _scheduler_address(text):
    """``tcp://host:8786`` or ``host:8786``: a Dask scheduler's address (whether it answers is checked later)."""
    host, _, port = text.rpartition("://")[2].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"expected a scheduler address such as tcp://host:8786; got {text!r}"
        )
    return text


def _storage_url(text):
    """``dask``, ``dask+URL`` or a SQLAlchemy URL (whether it opens is checked later)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if text == "dask":
        return text
    try:
        make_url(text.removeprefix("dask+"))
    except ArgumentError:
        raise argparse.ArgumentTypeError(
            f"expected a SQLAlchemy URL such as sqlite:///runs/search/study.db, or 'dask'; got {text!r}"
        ) from None
    return text


def _study_name(text):
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a study name; got an empty one")
    return text


def _add_search_command(sub) -> None:
    from dlt_lib import search

    se = sub.add_parser(
        "search",
        help="choose hyper-parameters on the validation set (Optuna decides, Dask runs the trials)",
        description="Search the trainer's hyper-parameters: Optuna samples and prunes trials, Dask runs them "
        "(one trial per task) on a local cluster or an existing one. The study is kept in --storage, so the "
        "same command after an interruption continues it. The best trial's test error is measured once, at "
        "the end.",
        formatter_class=_HelpFormatter,
    )
    se.set_defaults(command=cmd_search)
    se.add_argument("model", choices=search.MODELS, help="logistic regression or a one-hidden-layer MLP")
    se.add_argument("--dataset", choices=DATASETS, default="mnist", help="as for 'train'")
    for flag, (kind, default, text) in SEARCH_NUMBERS.items():
        se.add_argument(flag, type=kind, default=default, help=text)
    se.add_argument(
        "--scheduler",
        type=_scheduler_address,
        metavar="ADDRESS",
        help="use the Dask cluster whose scheduler is at ADDRESS, "
        "e.g. tcp://host:8786 (instead of --workers)",
    )
    se.add_argument(
        "--storage",
        type=_storage_url,
        metavar="URL",
        help="Optuna storage: a SQLAlchemy URL (default: "
        "sqlite:///OUTPUT_DIR/study.db), or 'dask' / 'dask+URL' for Optuna's Dask storage",
    )
    se.add_argument("--study", type=_study_name, metavar="NAME", help="study name (default: MODEL-DATASET)")
    se.add_argument(
        "--output-dir",
        type=_output_dir,
        default=Path("runs/search"),
        help="where study.db, trials.csv, history.png, parameters.png, best.npz and summary.json go",
    )
    se.add_argument(
        "--space",
        action="append",
        default=[],
        type=_space_item,
        metavar="NAME=SPEC",
        help="a hyper-parameter to search: LOW..HIGH, LOW..HIGH:log, A,B,C or a fixed value; "
        f"names: {', '.join(search.PARAMETERS)}. Given once or more, these flags are the whole space "
        "and other settings take the model's published values (default space: "
        "learning_rate=1e-3..1:log batch_size=20,100,600 l1=0,1e-5,1e-4 l2=0,1e-5,1e-4,1e-3 "
        "optimizer=sgd,momentum, and for mlp n_hidden=100,250,500,1000)",
    )
    se.add_argument("--sampler", choices=search.SAMPLERS, default="tpe", help="Optuna's sampler")
    se.add_argument(
        "--pruner",
        choices=search.PRUNERS,
        default="median",
        help="Optuna's pruner: median, successive halving, or none",
    )
    _add_mode(se)
    se.add_argument("--offline", action="store_true", help="never download; same as DLT_OFFLINE=1")
    se.add_argument("--quiet", action="store_true", help="no progress bar")


def _check_environment(args) -> None:
    """The environment variables a command reads, checked before it starts (a flag given instead wins)."""
    from dlt_lib import backend, download

    if not getattr(args, "offline", False):
        download.is_offline()  # DLT_OFFLINE=maybe: an error naming the variable
    backend.set_mode(args.mode or backend.environment_mode())  # DLT_MODE=bogus: an error naming it


def _load(name, offline):
    from dlt_lib import data

    return data.load_dataset(name, offline=True if offline else None)


def cmd_train(args) -> int:
    """``train``: train, checkpoint, plot, and write ``summary.json``.  See ``book/saving_and_plotting.ipynb``."""
    from dlt_lib import files

    _check_environment(args)
    with files.locked_directory(args.output_dir) as lock:  # one run at a time in a directory
        if lock.previous_holder:
            print(f"Took over {args.output_dir} from process {lock.previous_holder}, which had stopped.")
        if lock.removed:
            print(f"Removed what an interrupted save left in {args.output_dir}: {', '.join(lock.removed)}.")
        return _train(args)


def _train(args) -> int:
    from dlt_lib import backend, plot, training
    from dlt_lib.files import write_atomically

    settings = {key: getattr(args, key) for key in DEFAULTS[args.model]}
    settings = {key: DEFAULTS[args.model][key] if value is None else value for key, value in settings.items()}
    print(backend.describe())
    splits = _load(args.dataset, args.offline)
    model = _build_model(args, settings, splits.train.X.shape[1])
    print(
        f"Training {type(model).__name__} ({model.n_parameters:,} parameters): {settings}, optimizer {args.optimizer}"
    )
    started, out = time.perf_counter(), args.output_dir
    checkpoint = out / "best.npz"
    stopper = training.EarlyStopping(settings["patience"], args.patience_increase, args.improvement_threshold)
    history = training.train(
        model,
        splits,
        **{key: settings[key] for key in ("learning_rate", "batch_size", "l1", "l2")},
        n_epochs=settings["n_epochs"],
        optimizer=args.optimizer,
        early_stopping=stopper,
        shuffle=args.shuffle,
        chunk_size=args.chunk_size,
        progress=not args.quiet,
        checkpoint_path=checkpoint,
        resume_from=checkpoint if args.resume else None,
        checkpoint_metadata={"dataset": args.dataset, "optimizer": args.optimizer, "settings": settings},
    )
    if history.resumed:
        print(_resumed_line(history.resumed))
    print(history.summary())
    figure = plot.learning_curves(history, title=f"{type(model).__name__} on {args.dataset} ({history.mode})")
    plot.save_figure(figure, out / "learning_curves.png")
    summary = _summary(args, settings, model, splits, history, time.perf_counter() - started)
    write_atomically(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    print(f"Wrote {checkpoint}, {out / 'learning_curves.png'} and {out / 'summary.json'}")
    return 0


def _build_model(args, settings, n_in):
    """The model ``train`` trains, from its flags (the tutorials' seeds unless ``--seed``)."""
    from dlt_lib import models

    if args.model == "logreg":
        return models.LogisticRegression(n_in, 10)
    if args.model == "mlp":
        return models.MLP(n_in, args.n_hidden, 10, seed=settings["seed"])
    side = int(round(n_in**0.5))
    if side * side != n_in:
        raise InvalidParameterError(f"lenet needs square images; the data's rows have {n_in} pixels.")
    return models.LeNet((side, side), args.nkerns, args.n_hidden, 10, seed=settings["seed"])


def _resumed_line(resumed: dict) -> str:
    changed = (
        f"; n_epochs {resumed['n_epochs'][0]} -> {resumed['n_epochs'][1]}" if "n_epochs" in resumed else ""
    )
    return f"Resumed {resumed['from']} at update {resumed['iteration']:,}{changed}."


def _summary(args, settings, model, splits, history, seconds) -> dict:
    """What ``summary.json`` holds: the settings, the data, the results and the times of a run."""
    best = history.best
    return {
        "model": type(model).__name__,
        "hyperparameters": model.hyperparameters(),
        "settings": {
            **settings,
            "optimizer": args.optimizer,
            "patience_increase": args.patience_increase,
            "improvement_threshold": args.improvement_threshold,
            "shuffle": args.shuffle,
        },
        "dataset": args.dataset,
        "data_source": splits.source,
        "mode": history.mode,
        "best_valid_error": history.best_valid_error,
        "test_error": history.test_error,
        "best_iteration": best.iteration if best else None,
        "iterations": history.stopped_at + 1,
        "epochs": history.epochs,
        "stop_reason": history.stop_reason,
        "warnings": history.warnings,
        "resumed": history.resumed,
        "train_seconds": history.seconds,
        "compile_seconds": history.compile_seconds,
        "total_seconds": seconds,
        "checkpoint": str(args.output_dir / "best.npz"),
    }


def cmd_evaluate(args) -> int:
    """``evaluate``: the validation and test errors of a checkpoint.  See ``book/saving_and_plotting.ipynb``."""
    from dlt_lib import checkpoint

    _check_environment(args)
    meta = checkpoint.read_metadata(args.checkpoint)
    model = checkpoint.load(args.checkpoint)
    dataset = args.dataset or meta.get("metadata", {}).get("dataset") or "mnist"
    splits = _load(dataset, args.offline)
    (_, _), (Xva, yva), (Xte, yte) = splits
    _check_fits(args.checkpoint, model, splits, dataset)
    valid_error, test_error = model.error_rate(Xva, yva), model.error_rate(Xte, yte)
    print(f"{meta['model_class']} from {args.checkpoint} on {dataset} ({splits.source}):")
    print(f"  validation error {100 * valid_error:.3f}%  test error {100 * test_error:.3f}%")
    return 0


def _check_fits(path, model, splits, dataset) -> None:
    """Refuse, saying why, a model whose inputs or classes are not the data's (a 5-class model on MNIST)."""
    n_in, n_classes = splits.train.X.shape[1], len(splits.class_names)
    if (model.n_in, model.n_out) != (n_in, n_classes):
        raise InvalidParameterError(
            f"{path} holds a {type(model).__name__} for {model.n_in} inputs and {model.n_out} classes; "
            f"{dataset} has {n_in} pixels per image and {n_classes} classes, so its error there means nothing. "
            "Evaluate it on the data it was trained for (in Python: checkpoint.load(path).error_rate(X, y))."
        )


def cmd_search(args) -> int:
    """Taught in ``book/hyperparameters.ipynb``."""
    from dlt_lib import backend, search

    if args.workers and args.scheduler:
        raise search.SearchError(
            "give --workers (a local cluster) or --scheduler (an existing one), not both."
        )
    _check_environment(args)
    space = search.SearchSpace.parse(args.space) if args.space else None
    objective = search.Objective(
        args.model, args.dataset, space, n_epochs=args.n_epochs, patience=args.patience,
        n_train=args.n_train, offline=True if args.offline else None,
    )  # fmt: skip
    # What can be checked here is checked before a cluster starts.
    splits = objective.splits()
    if args.storage and not args.storage.startswith("dask"):
        search.open_storage(args.storage)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    print(backend.describe())
    print(f"Searching {args.model}, {args.trials} trials over {search.format_space(objective.space)}")
    print(f"Data: {splits.source}")
    client = _search_client(args, search)
    try:
        summary = search.run_search(
            objective, args.trials, args.output_dir, client=client, storage=args.storage, study_name=args.study,
            sampler=args.sampler, pruner=args.pruner, seed=args.seed, progress=not args.quiet,
            grid_points=args.grid_points,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the finished trials are kept in the study; run the same command again to "
            f"continue ({args.trials} trials in all).",
            file=sys.stderr,
        )
        return 130
    finally:
        client.close()
        if not args.scheduler:
            client.cluster.close()
    _print_search_summary(summary, args.output_dir)
    return 0


def _search_client(args, search):
    """A client on the cluster of ``--scheduler``, or on a new local one (``--workers``)."""
    import os

    if args.scheduler:
        client = search.connect(args.scheduler, timeout=args.connect_timeout)
        print(f"Dask cluster at {args.scheduler}: {len(client.scheduler_info()['workers'])} workers")
    else:
        workers = args.workers or os.cpu_count() or 1
        client = search.start_cluster(workers)
        print(f"Local Dask cluster: {workers} single-threaded worker processes")
    link = search.dashboard_link(client)
    print(f"Dask dashboard: {link}" if link else "Dask dashboard: not available (pip install bokeh)")
    return client


def _print_search_summary(summary, out) -> None:
    by_state = ", ".join(f"{n} {state.lower()}" for state, n in sorted(summary["trials_by_state"].items()))
    print(f"{summary['trials_finished']} trials finished ({by_state}).")
    print(
        f"Best: trial {summary['best_trial']}, validation error {100 * summary['best_valid_error']:.3f}%, "
        f"settings {summary['best_settings']}"
    )
    print(
        f"Its test error, measured once: {100 * summary['test_error']:.3f}% "
        f"on {summary['test_examples']:,} test examples."
    )
    print(
        f"Wrote {out}/: trials.csv, history.png, parameters.png, best.npz, summary.json "
        f"(study: {summary['storage']}, name {summary['study']!r})"
    )


# ----------------------------------------------------------------------------
# Errors: every one a line that says what to do, and an exit status
# ----------------------------------------------------------------------------
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _os_error_message(exc: OSError) -> str:
    """An OSError as a sentence: what failed, on which file, and what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in _DISK_FULL:
        return (
            f"no room to write{where}: {exc.strerror}. Free some disk space (or raise the file size limit), "
            "or choose another --output-dir; --resume then continues from the last state saved."
        )
    if exc.errno in _NOT_ALLOWED:
        return f"cannot write{where}: {exc.strerror}. Choose a directory you may write to (--output-dir)."
    return f"{exc.strerror or exc}{where}." if exc.strerror else str(exc)


def exit_status(exc: BaseException) -> tuple[int, str] | None:
    """``(status, message)`` for an error while running a command, or None for a bug (which keeps its traceback).

    See ``book/saving_and_plotting.ipynb``.
    """
    from dlt_lib.checkpoint import CheckpointError
    from dlt_lib.download import DownloadError
    from dlt_lib.files import DirectoryBusyError
    from dlt_lib.formats import DataFormatError, UnsafePickleError
    from dlt_lib.search.space import SearchError
    from dlt_lib.training import TrainingDiverged

    if isinstance(exc, TrainingDiverged):
        return EXIT_CODES["diverged"], str(exc)
    if isinstance(exc, (CheckpointError, InvalidParameterError, SearchError)):
        return EXIT_CODES["usage"], str(exc)
    if isinstance(exc, (DataFormatError, UnsafePickleError, DownloadError, DirectoryBusyError, ImportError)):
        return EXIT_CODES["runtime"], str(exc)  # DownloadError, DatasetNotFoundError: already sentences
    if isinstance(exc, FileNotFoundError) and not exc.filename:
        return EXIT_CODES["runtime"], str(exc)
    if isinstance(exc, OSError):
        return EXIT_CODES["runtime"], _os_error_message(exc)
    if isinstance(exc, MemoryError):
        return EXIT_CODES[
            "runtime"
        ], "out of memory. Use a smaller model (--n-hidden) or minibatch (--batch-size)."
    return None


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings on one line each, as ``warning: ...``."""
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def _interrupted(args) -> str:
    out = getattr(args, "output_dir", None)
    if args.command_name != "train" or out is None:
        return "interrupted"
    if (out / "best.last.npz").exists():
        return f"interrupted: {out} keeps the last saved state; continue with the same command and --resume"
    return f"interrupted before anything was saved in {out}; run the same command again to start over"


def main(argv=None) -> int:
    """Run a command; return its exit status (:data:`EXIT_CODES`).  See ``book/saving_and_plotting.ipynb``."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.command(args)
    except KeyboardInterrupt:
        print(_interrupted(args), file=sys.stderr)
        return EXIT_CODES["interrupted"]
    except Exception as exc:
        status = exit_status(exc)
        if status is None:
            raise
        if args.debug:
            traceback.print_exc()
        print(f"error: {status[1]}", file=sys.stderr)
        return status[0]


if __name__ == "__main__":
    sys.exit(main())

"""One trial: train with the book's early-stopping trainer, report each validation, return the best.

Part of :mod:`dlt_lib.search` (chapter *Choosing hyper-parameters*).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

from dlt_lib.search.space import (
    PUBLISHED_PATIENCE,
    SearchError,
    SearchSpace,
    _check_model,
    default_space,
    published_settings,
)


@functools.lru_cache(maxsize=2)
def _load_splits(dataset, n_train, offline):
    """The data of a trial, loaded once per worker process (every trial of that process reuses it)."""
    from dlt_lib import data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.SampleFallbackWarning)  # the driver says which data it used
        splits = data.load_dataset(dataset, verbose=False, offline=offline)
    if n_train is None:
        return splits
    (X, y), valid, test = splits
    if not 0 < n_train <= len(X):
        raise SearchError(f"n_train={n_train}: the training set has {len(X)} examples.")
    return data.DataSplits((X[:n_train], y[:n_train]), valid, test, source=splits.source, name=splits.name)


def _train(model, splits, settings, *, n_epochs, patience, mode, on_validation):
    """The one call of the trainer in this module.

    The trainer keeps the learning rate and the penalty weights in shared
    variables, so trials that differ only in their values reuse one
    compiled step.  Its test slot gets the validation set: a trial never
    looks at the test set.  ``on_validation`` is the trainer's hook: an
    ``optuna.TrialPruned`` raised there ends the run.
    """
    from dlt_lib import training

    train_split, valid_split, _ = splits
    return training.train(
        model,
        (train_split, valid_split, valid_split),
        learning_rate=settings["learning_rate"],
        optimizer=settings["optimizer"],
        batch_size=settings["batch_size"],
        l1=settings["l1"],
        l2=settings["l2"],
        n_epochs=n_epochs,
        early_stopping=training.EarlyStopping(patience=patience),
        mode=mode,
        progress=False,
        on_validation=on_validation,
    )


#: This process's trial models, by shape (see :meth:`Objective._fresh_model`).
_TRIAL_MODELS = {}


@dataclass
class Objective:
    """One trial of a search: train a model with the settings a trial suggests.

    Calling it with an Optuna trial trains ``model`` on ``dataset`` with the
    book's early-stopping trainer, reports the validation error at each
    validation (``trial.report``) and raises ``optuna.TrialPruned`` when the
    study's pruner says the trial is hopeless; it returns the best
    validation error.  A run whose cost diverges is pruned too (and says so
    in its ``diverged`` attribute): a too-large learning rate is an answer,
    not a failure.

    Parameters
    ----------
    model : "logreg" or "mlp"
    dataset : a name for :func:`dlt_lib.data.load_dataset` ("mnist", "mnist-sample", "fashion-mnist").
        Each worker process loads it once.
    space : SearchSpace, optional (default: :func:`default_space`)
    n_epochs : the most epochs a trial may train.
    patience : early-stopping patience, in minibatch updates *at the
        model's published batch size* (default: the tutorials' 5000 for
        logistic regression at 600, 10000 for the MLP at 20).  A trial with
        another batch size gets the same patience in examples, so that a
        small batch is not stopped after a few epochs: see :meth:`patience_for`.
    n_train : use only the first ``n_train`` training examples (quick searches).
    seed : seed of the MLP's initial weights, the same in every trial.
    mode : PyTensor mode ("C", "NUMBA", "JAX"); default: the driver's.
    offline : never download (like ``DLT_OFFLINE=1``).
    peek_at_test : also measure each trial's test error, in the user
        attribute ``test_error``.  For the book's demonstration of what
        choosing costs only: a real search never looks at the test set.

    Taught in ``book/hyperparameters.ipynb``.
    """

    model: str
    dataset: str = "mnist"
    space: SearchSpace | None = None
    n_epochs: int = 1000
    patience: int | None = None
    n_train: int | None = None
    seed: int = 1234
    mode: str | None = None
    offline: bool | None = None
    peek_at_test: bool = False

    def __post_init__(self):
        from dlt_lib import backend

        _check_model(self.model)
        if self.space is None:
            self.space = default_space(self.model)
        elif not isinstance(self.space, SearchSpace):
            self.space = SearchSpace(self.space)
        if self.model == "logreg" and "n_hidden" in self.space:
            raise SearchError("n_hidden is the MLP's width: logistic regression has no hidden layer.")
        if self.patience is None:
            self.patience = PUBLISHED_PATIENCE[self.model]
        self.mode = backend.normalise_mode(self.mode or backend.mode_name())

    def settings(self, trial) -> dict:
        """The trial's full settings: the published ones, overridden by the space's."""
        return {**published_settings(self.model), **self.space.suggest(trial)}

    def splits(self):
        return _load_splits(self.dataset, self.n_train, self.offline)

    def build_model(self, settings, n_in):
        from dlt_lib import models

        if self.model == "logreg":
            return models.LogisticRegression(n_in, 10)
        return models.MLP(n_in, settings["n_hidden"], 10, seed=self.seed)

    def _fresh_model(self, settings, n_in):
        """A model with its initial weights, the same object for every trial of this shape in this process.

        The trainer keeps its compiled step on the model and starts it afresh
        for a new run with the same kind of settings (new learning rate or
        penalty values: new numbers in the same shared scalars), so a trial
        on a model seen before compiles nothing.  The weights are set back to
        their initial draws first: every trial starts from the same point.
        """
        key = (self.model, n_in, settings.get("n_hidden"), self.seed)
        if key not in _TRIAL_MODELS:
            model = self.build_model(settings, n_in)
            _TRIAL_MODELS[key] = (model, model.get_param_values())
        model, initial = _TRIAL_MODELS[key]
        model.set_param_values(initial)
        return model

    def patience_for(self, batch_size: int) -> int:
        """The patience, in updates, of a trial with ``batch_size``: as many examples as the published setting.

        The tutorials count patience in minibatch updates: 5000 updates of
        600 digits for logistic regression.  The same 5000 updates at batch
        size 20 would be 100,000 digits, two epochs of MNIST, and a search
        would stop every small-batch trial long before its large-batch
        rivals.  At the published batch size this is the published patience.
        """
        published = published_settings(self.model)["batch_size"]
        return max(1, math.ceil(self.patience * published / batch_size))

    def fit(self, settings, on_validation=None):
        """Train one model with ``settings``; return ``(model, history)``."""
        splits = self.splits()
        model = self._fresh_model(settings, splits[0][0].shape[1])
        history = _train(
            model,
            splits,
            settings,
            n_epochs=self.n_epochs,
            patience=self.patience_for(settings["batch_size"]),
            mode=self.mode,
            on_validation=on_validation,
        )
        return model, history

    def __call__(self, trial, keep: dict | None = None) -> float:
        import optuna

        from dlt_lib import training

        settings = self.settings(trial)
        trial.set_user_attr("settings", settings)
        n_validations = 0

        def report(record):
            # The step is the number of validations so far: one per epoch in the
            # book's settings, so trials with different batch sizes compare at
            # the same number of passes over the data.
            nonlocal n_validations
            n_validations += 1
            trial.report(record.valid_error, n_validations)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"validation error {record.valid_error:.2%} after {n_validations} validations: "
                    "worse than the pruner allows"
                )

        try:
            model, history = self.fit(settings, on_validation=report)
        except training.TrainingDiverged as exc:
            trial.set_user_attr("diverged", str(exc))
            raise optuna.TrialPruned(f"diverged: {exc}") from exc
        trial.set_user_attr("epochs", history.epochs)
        trial.set_user_attr("best_epoch", history.best.epoch if history.best else None)
        trial.set_user_attr("stop_reason", history.stop_reason)
        trial.set_user_attr("train_seconds", round(history.seconds, 3))
        trial.set_user_attr("compile_seconds", round(history.compile_seconds, 3))
        if self.peek_at_test:
            X_test, y_test = self.splits()[2]
            trial.set_user_attr("test_error", model.error_rate(X_test, y_test))
        if keep is not None:
            keep["params"] = model.get_param_values()
        return history.best_valid_error

    def describe(self) -> dict:
        """What identifies this search in a study's attributes (resuming checks it)."""
        return {
            "model": self.model,
            "dataset": self.dataset,
            "space": self.space.describe(),
            "n_epochs": self.n_epochs,
            "patience": self.patience,
            "n_train": self.n_train,
            "seed": self.seed,
            "mode": self.mode,
        }

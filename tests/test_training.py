"""The early-stopping trainer: the patience rule, the loop, divergence, determinism, resuming."""

import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from support import toy_data

from dlt_lib import training
from dlt_lib.checkpoint import CheckpointError
from dlt_lib.models import MLP, LogisticRegression
from dlt_lib.training import EarlyStopping, TrainingDiverged, train
from dlt_lib.validation import InvalidParameterError


def seed_loop(
    validation_losses, n_train_batches, n_epochs, patience, patience_increase, improvement_threshold
):
    """The seed tutorial's loop, transcribed literally, driven by scripted validation losses.

    Returns the iterations at which it validated, the (iteration, new patience)
    pairs where patience grew, and the last iteration it ran.
    """
    losses = iter(validation_losses)
    validation_frequency = min(n_train_batches, patience // 2)
    best_validation_loss = np.inf
    done_looping = False
    epoch = 0
    validated, grew = [], []
    it = -1
    while (epoch < n_epochs) and (not done_looping):
        epoch = epoch + 1
        for minibatch_index in range(n_train_batches):
            it = (epoch - 1) * n_train_batches + minibatch_index
            if (it + 1) % validation_frequency == 0:
                this_validation_loss = next(losses)
                validated.append(it)
                if this_validation_loss < best_validation_loss:
                    if this_validation_loss < best_validation_loss * improvement_threshold:
                        patience = max(patience, it * patience_increase)
                        grew.append((it, patience))
                    best_validation_loss = this_validation_loss
            if patience <= it:
                done_looping = True
                break
    return validated, grew, it


def test_patience_rule_on_a_scripted_sequence():
    # 4 minibatches per epoch, patience 10 -> validate every min(4, 5) = 4 updates: at 3, 7, 11, 15, ...
    stopper = EarlyStopping(patience=10, patience_increase=2, improvement_threshold=0.995)
    assert stopper.validation_frequency(4) == 4
    assert stopper.update(3, 0.50) and stopper.patience == 10  # max(10, 3*2)
    assert not stopper.should_stop(9) and stopper.should_stop(10)
    assert stopper.update(7, 0.40) and stopper.patience == 14  # significant: max(10, 7*2)
    # better, but by less than 0.5%: no extension
    assert stopper.update(11, 0.3995) and stopper.patience == 14
    assert stopper.best_loss == 0.3995 and stopper.best_iteration == 11
    assert not stopper.update(15, 0.45)
    assert stopper.stop_iteration() == 14
    # and the literal seed loop agrees: validations at 3, 7, 11, stop after iteration 14
    validated, grew, last = seed_loop([0.5, 0.4, 0.3995, 0.45], 4, 100, 10, 2, 0.995)
    assert validated == [3, 7, 11] and grew == [(3, 10), (7, 14)] and last == 14


@pytest.mark.parametrize("bad", [{"patience": 0}, {"patience_increase": 0.5}, {"improvement_threshold": 1.5}])
def test_patience_rule_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        EarlyStopping(**bad)


DATA = toy_data()


def run(model=None, patience=60, **kwargs):
    model = model or LogisticRegression(12, 3)
    settings = dict(learning_rate=0.1, batch_size=20, n_epochs=30, progress=False, mode="C")
    settings.update(kwargs)
    return model, train(model, DATA, early_stopping=EarlyStopping(patience), **settings)


def test_trainer_follows_the_seed_loop_exactly():
    model, history = run()
    n_batches = 400 // 20
    assert history.n_train_batches == n_batches and history.validation_frequency == min(n_batches, 60 // 2)
    # Replay the recorded validation errors through the literal seed loop: same validations, same stop.
    validated, grew, last = seed_loop([r.valid_error for r in history.records], n_batches, 30, 60, 2.0, 0.995)
    assert [r.iteration for r in history.records] == validated
    assert history.stopped_at == last
    assert len(history.train_costs) == last + 1
    assert [r.patience for r in history.records if r.is_best][-1] >= 60
    # the test error is measured at each new best, and only then
    assert all((r.test_error is not None) == r.is_best for r in history.records)
    assert history.best.valid_error == min(r.valid_error for r in history.records)


def test_trainer_learns_and_keeps_the_best_parameters():
    model, history = run()
    first = history.records[0]
    assert history.best_valid_error < 0.2 < 2 / 3  # far better than chance on a learnable problem
    assert history.train_costs[-1] < history.train_costs[0]
    # the model ends with the best parameters, whose errors are those recorded at the best point
    (_, _), (Xva, yva), (Xte, yte) = DATA
    assert model.error_rate(Xva, yva) == pytest.approx(history.best.valid_error)
    assert model.error_rate(Xte, yte) == pytest.approx(history.test_error)
    assert first.epoch == 1 and history.epochs >= 1


def test_scanned_chunks_equal_one_call_per_minibatch():
    (X, y), _, _ = DATA
    models, costs = {}, {}
    for use_scan in (True, False):
        models[use_scan] = LogisticRegression(12, 3)
        runner = training.compile_updates(
            models[use_scan], X, y, batch_size=20, learning_rate=0.1, optimizer="momentum", use_scan=use_scan
        )
        # pieces as train() runs them: up to a validation, across the end of an epoch
        costs[use_scan] = np.concatenate([runner(0, 7), runner(7, 13), runner(20, 25)])
    assert costs[True].shape == (45,)
    np.testing.assert_allclose(costs[True], costs[False], rtol=1e-5)
    np.testing.assert_allclose(models[True].W.get_value(), models[False].W.get_value(), rtol=1e-5, atol=1e-6)


def test_restore_best_false_keeps_the_last_parameters():
    # a fixed number of epochs, validated at the end of each: the best point comes before the end
    best_model, best = run(n_epochs=30, patience=1000)
    last_model, last = run(n_epochs=30, patience=1000, restore_best=False)
    assert best.train_costs == last.train_costs  # the same run
    assert best.best.iteration < best.stopped_at  # the best was not the last update
    (_, _), (Xva, yva), _ = DATA
    assert best_model.error_rate(Xva, yva) == pytest.approx(best.best_valid_error)
    assert not np.allclose(best_model.W.get_value(), last_model.W.get_value())
    # the model holds the parameters validated last, at the final update
    assert last.records[-1].iteration == last.stopped_at
    assert last_model.error_rate(Xva, yva) == pytest.approx(last.records[-1].valid_error)


def test_only_numba_scans_by_default():
    from dlt_lib.training import scans_by_default

    assert [scans_by_default(m) for m in ("C", "cvm", "NUMBA", "JAX")] == [False, False, True, False]


def test_same_seed_same_history():
    _, h1 = run(MLP(12, 8, 3, seed=7), learning_rate=0.05, n_epochs=3, l2=1e-3)
    _, h2 = run(MLP(12, 8, 3, seed=7), learning_rate=0.05, n_epochs=3, l2=1e-3)
    assert h1.train_costs == h2.train_costs
    assert [(r.iteration, r.valid_error, r.test_error) for r in h1.records] == [
        (r.iteration, r.valid_error, r.test_error) for r in h2.records
    ]


def test_regularisation_enters_the_cost():
    _, plain = run(n_epochs=1)
    _, penalised = run(n_epochs=1, l2=0.5)
    # identical first step (weights start at 0, so the penalty is 0), then the penalty shows
    assert plain.train_costs[0] == pytest.approx(penalised.train_costs[0])
    assert penalised.train_costs[-1] != pytest.approx(plain.train_costs[-1])


def test_divergence_stops_with_a_clear_error():
    with pytest.raises(TrainingDiverged, match=r"at iteration \d+ .*learning rate 3-10x smaller"):
        run(learning_rate=1e38, n_epochs=5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"learning_rate": 0}, "learning_rate must be a number > 0"),
        ({"learning_rate": -0.1}, "learning_rate must be a number > 0"),
        ({"learning_rate": pt.vector("lr")}, "symbolic learning_rate must be a scalar"),
        ({"batch_size": 0}, r"batch_size must be an integer in \[1, 400\]; got 0"),
        ({"batch_size": 401}, "must fit in the 400 training examples"),
        ({"patience": 0}, "patience must be a number >= 1"),
        ({"n_epochs": 0}, "n_epochs must be an integer >= 1"),
        ({"l2": -1.0}, "l2 must be a number >= 0"),
        ({"mode": "GPU"}, "PyTensor mode must be one of 'C', 'NUMBA', 'JAX'; got 'GPU'"),
        ({"checkpoint_metadata": {"training": 1}}, "must not use the key 'training'"),
    ],
)
def test_invalid_settings_are_rejected_before_compiling(monkeypatch, kwargs, message):
    def no_compiling(*args, **kw):
        raise AssertionError("compiled before validating the settings")

    monkeypatch.setattr(pytensor, "function", no_compiling)
    with pytest.raises(InvalidParameterError, match=message):
        run(**kwargs)


def test_wrong_data_is_rejected_with_a_clear_error():
    (Xtr, ytr), valid, test = DATA
    with pytest.raises(ValueError, match=r"Labels must lie in 0\.\.1 .* got values from 0 to 2"):
        train(LogisticRegression(12, 2), DATA, batch_size=20, progress=False)
    with pytest.raises(TypeError, match=r"\(train, valid, test\)"):
        train(LogisticRegression(12, 3), (Xtr, ytr), progress=False)


def test_checkpoint_at_best_and_resume_gives_the_same_run(tmp_path):
    settings = dict(n_epochs=6, patience=10_000, optimizer="momentum")
    _, full = run(**settings)

    ckpt = tmp_path / "run" / "best.npz"
    _, first_half = run(**{**settings, "n_epochs": 3}, checkpoint_path=ckpt)
    assert ckpt.exists() and (tmp_path / "run" / "best.last.npz").exists()
    resumed_model, resumed = run(**settings, checkpoint_path=ckpt, resume_from=ckpt)

    assert resumed.train_costs == pytest.approx(full.train_costs, rel=1e-6)
    assert [r.iteration for r in resumed.records] == [r.iteration for r in full.records]
    assert [r.valid_error for r in resumed.records] == [r.valid_error for r in full.records]
    assert len(first_half.train_costs) < len(full.train_costs)
    # the best checkpoint holds the best model's parameters
    from dlt_lib import checkpoint

    best = checkpoint.load(ckpt)
    np.testing.assert_array_equal(best.W.get_value(), resumed_model.W.get_value())
    meta = checkpoint.read_metadata(ckpt)
    assert meta["metadata"]["training"]["best_valid_error"] == pytest.approx(resumed.best_valid_error)
    assert meta["format"] == "dlt_lib checkpoint 2" and meta["model_class"] == "LogisticRegression"


def test_history_summary_and_columns():
    _, history = run(n_epochs=2)
    assert "best validation error" in history.summary()
    assert ", 2 epochs, " in history.summary()
    # one epoch is "1 epoch", and the stop reason is not nested in brackets
    history.epochs = 1
    assert ", 1 epoch, " in history.summary()
    assert history.summary().endswith(f"\nstopped: {history.stop_reason}")
    assert max(len(line) for line in history.summary().splitlines()) <= 79, "lines that fit the page"
    history.epochs = 2
    errors = history.column("valid_error")
    assert errors.shape == (len(history.records),) and np.all((0 <= errors) & (errors <= 1))
    tests = history.column("test_error")
    assert np.isnan(tests).sum() == sum(not r.is_best for r in history.records)
    assert math.isfinite(history.seconds) and history.mode == "C"


def test_progress_bar_runs(capsys):
    run(n_epochs=1, progress=True)
    assert "minibatch" in capsys.readouterr().err


def test_training_cost_includes_penalties():
    model = LogisticRegression(12, 3)
    model.set_param_values({"W": np.ones((12, 3), "float32"), "b": np.zeros(3, "float32")})
    y = pt.ivector("y")
    X = DATA[0][0][:5]
    yv = DATA[0][1][:5].astype("int32")
    base = pytensor.function([model.input, y], training.training_cost(model, y))(X, yv)
    both = pytensor.function([model.input, y], training.training_cost(model, y, l1=0.1, l2=0.01))(X, yv)
    assert both == pytest.approx(base + 0.1 * 36 + 0.01 * 36, rel=1e-5)


def test_a_shared_or_scheduled_learning_rate_is_accepted():
    from dlt_lib import updates

    _, constant = run(n_epochs=2)
    _, shared = run(n_epochs=2, learning_rate=pytensor.shared(np.float32(0.1), name="lr"))
    assert shared.train_costs == pytest.approx(constant.train_costs, rel=1e-5)  # float32 rounding
    step = updates.step_counter()
    halving = updates.exponential_decay(0.1, 0.5, step, decay_steps=20)  # halves every epoch of 20 updates
    _, scheduled = run(n_epochs=2, learning_rate=halving)
    assert step.get_value() == len(scheduled.train_costs) == 40  # the rule advanced the counter
    assert scheduled.train_costs[:2] == pytest.approx(constant.train_costs[:2])  # the same first step
    assert scheduled.train_costs[-1] != pytest.approx(constant.train_costs[-1])


def test_early_stopping_object_is_not_changed_by_a_run():
    stopper = EarlyStopping(patience=60)
    train(LogisticRegression(12, 3), DATA, batch_size=20, n_epochs=5, early_stopping=stopper, progress=False)
    assert (stopper.patience, stopper.best_loss, stopper.best_iteration) == (60, math.inf, -1)


def test_resume_refuses_a_state_from_another_run(tmp_path):
    from dlt_lib.checkpoint import CheckpointError

    ckpt = tmp_path / "best.npz"
    run(n_epochs=2, optimizer="momentum", checkpoint_path=ckpt)
    with pytest.raises(CheckpointError, match=r"optimizer 'momentum' \(saved\) -> 'adam' \(now\)"):
        run(n_epochs=3, optimizer="adam", learning_rate=0.01, resume_from=ckpt)
    with pytest.raises(CheckpointError, match=r"batch_size 20 \(saved\) -> 40 \(now\)"):
        run(n_epochs=3, optimizer="momentum", batch_size=40, resume_from=ckpt)
    with pytest.raises(CheckpointError, match="saved from a LogisticRegression"):
        run(MLP(12, 4, 3), n_epochs=3, optimizer="momentum", resume_from=ckpt)


# ----------------------------------------------------------------------------
# Shuffling, chunks, and a hook at each validation
# ----------------------------------------------------------------------------
def _loaded_minibatches(feed, iterations):
    """The rows of X the step reads at each of ``iterations``, through the feed's shared variables."""
    index = pt.lscalar("i")
    read = pytensor.function([index], feed.minibatch(index)[0])
    return [read(feed.load(it)) for it in iterations]


def test_fixed_order_is_the_default_and_a_seed_shuffles_each_epoch():
    (X, y), _, _ = DATA
    fixed = training.MinibatchFeed(X, y, 20)
    np.testing.assert_array_equal(_loaded_minibatches(fixed, [3, 23])[1], X[60:80])  # epoch 2, minibatch 3
    feed = training.MinibatchFeed(X, y, 20, shuffle=7)
    first, second = feed.order(0), feed.order(1)
    assert sorted(first) == list(range(400)) and not np.array_equal(first, second)
    np.testing.assert_array_equal(training.MinibatchFeed(X, y, 20, shuffle=7).order(1), second)  # seeded
    epoch_two = np.concatenate(_loaded_minibatches(feed, range(20, 40)))
    np.testing.assert_array_equal(epoch_two, X[second])
    assert not np.array_equal(epoch_two, X)


def test_shuffled_runs_repeat_and_resume_exactly(tmp_path):
    _, fixed = run(n_epochs=4, patience=10_000)
    _, shuffled = run(n_epochs=4, patience=10_000, shuffle=3)
    _, again = run(n_epochs=4, patience=10_000, shuffle=3)
    assert shuffled.train_costs == again.train_costs and shuffled.shuffle == 3
    assert shuffled.train_costs[:20] != fixed.train_costs[:20]
    ckpt = tmp_path / "best.npz"
    run(n_epochs=2, patience=10_000, shuffle=3, checkpoint_path=ckpt)
    _, resumed = run(n_epochs=4, patience=10_000, shuffle=3, resume_from=ckpt)
    assert resumed.train_costs == pytest.approx(shuffled.train_costs, rel=1e-6)
    with pytest.raises(CheckpointError, match=r"shuffle 3 \(saved\) -> None \(now\)"):
        run(n_epochs=4, patience=10_000, resume_from=ckpt)


@pytest.mark.parametrize("use_scan", [False, True])
def test_chunks_in_shared_memory_give_the_same_updates(use_scan):
    (X, y), _, _ = DATA
    results = []
    for chunk_size in (None, 3):
        model = LogisticRegression(12, 3)
        runner = training.compile_updates(
            model, X, y, batch_size=20, learning_rate=0.1, chunk_size=chunk_size, use_scan=use_scan, shuffle=5
        )
        assert runner.feed.shared.X.get_value().shape[0] == (chunk_size or 20)  # what the device holds
        results.append((np.concatenate([runner(0, 7), runner(7, 33)]), model.W.get_value()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-6)
    _, whole = run(n_epochs=3)
    _, chunked = run(n_epochs=3, chunk_size=6)  # 20 minibatches: chunks of 6, 6, 6 and 2
    assert chunked.train_costs == pytest.approx(whole.train_costs, rel=1e-6)


def test_on_validation_sees_each_record_and_can_stop_the_run():
    seen = []

    def stop_at_the_third(record):
        seen.append(record)
        return len(seen) == 3

    _, history = run(n_epochs=30, patience=10_000, on_validation=stop_at_the_third)
    assert seen == history.records and len(seen) == 3
    assert history.stop_reason == f"on_validation asked to stop at iteration {seen[-1].iteration}"


def test_an_exception_from_on_validation_propagates_and_leaves_a_run_to_resume(tmp_path, capsys):
    class Pruned(Exception):
        pass

    def prune_at_the_second(record):
        if record.iteration >= 39:
            raise Pruned(record.iteration)

    ckpt = tmp_path / "best.npz"
    with pytest.raises(Pruned):
        run(
            n_epochs=6,
            patience=10_000,
            progress=True,
            checkpoint_path=ckpt,
            on_validation=prune_at_the_second,
        )
    err = capsys.readouterr().err
    assert "40/120" in err  # the bar was closed where the run stopped, after 40 of 120 updates
    _, full = run(n_epochs=6, patience=10_000)
    _, resumed = run(n_epochs=6, patience=10_000, resume_from=ckpt)
    assert resumed.train_costs == pytest.approx(full.train_costs, rel=1e-6)


def test_numbers_are_kept_in_shared_scalars_so_new_values_reuse_the_compiled_step():
    (X, y), _, _ = DATA
    model = LogisticRegression(12, 3)
    runner = training.compile_updates(model, X, y, batch_size=20, learning_rate=0.1, l2=1e-3)
    shared = {var.name: var for var in runner.fn.get_shared()}
    assert float(shared["lr"].get_value()) == pytest.approx(0.1) and "l2" in shared and "l1" not in shared
    shared["lr"].set_value(np.float32(0.0))  # a new value, the same compiled step: nothing moves
    before = model.W.get_value()
    runner(0, 3)
    np.testing.assert_array_equal(model.W.get_value(), before)
    l2 = pytensor.shared(np.float32(0.5), name="my_l2")  # a symbolic penalty weight is taken as it is
    _, penalised = run(n_epochs=1, l2=l2)
    _, numeric = run(n_epochs=1, l2=0.5)
    assert penalised.train_costs == pytest.approx(numeric.train_costs, rel=1e-5)


def test_a_second_run_on_the_same_model_reuses_the_compiled_functions(monkeypatch):
    model = LogisticRegression(12, 3)
    start = model.get_param_values()
    run(model, n_epochs=2, optimizer="momentum", shuffle=1)
    model.set_param_values(start)

    def no_compiling(*args, **kw):
        raise AssertionError("compiled again")

    with monkeypatch.context() as patch:  # other numbers, another order, the same graph
        patch.setattr(pytensor, "function", no_compiling)
        _, again = run(model, n_epochs=2, optimizer="momentum", shuffle=2, learning_rate=0.2, l2=0.0)
    _, fresh = run(LogisticRegression(12, 3), n_epochs=2, optimizer="momentum", shuffle=2, learning_rate=0.2)
    assert again.train_costs == pytest.approx(fresh.train_costs, rel=1e-6)  # a fresh start: velocities at 0
    with pytest.raises(InvalidParameterError, match="learning_rate"):  # still checked
        run(model, n_epochs=2, optimizer="momentum", shuffle=2, learning_rate=-1)


@pytest.mark.parametrize("shuffle", [None, 4])
def test_a_feed_takes_other_arrays_of_the_same_shapes(shuffle):
    (X, y), _, _ = DATA
    feed = training.MinibatchFeed(X, y, 20, shuffle=shuffle, chunk_size=None if shuffle is None else 5)
    feed.refill(X[::-1].copy(), y[::-1].copy(), shuffle=shuffle)
    order = feed.order(0)
    np.testing.assert_array_equal(_loaded_minibatches(feed, [0])[0], X[::-1][order[:20]])
    with pytest.raises(InvalidParameterError, match="shapes this feed was built for"):
        feed.refill(X[:100], y[:100], shuffle=shuffle)

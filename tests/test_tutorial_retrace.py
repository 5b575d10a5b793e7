"""dlt_lib's trainer retraces the tutorials' own training loop, step for step.

``tutorial_loop`` below is ``mlp.py``'s ``test_mlp`` transcribed: the data in
shared variables, minibatch ``index`` as the slice ``[index * batch_size:
(index + 1) * batch_size]``, minibatches in order every epoch, validation
every ``min(n_train_batches, patience // 2)`` updates as the **mean of the
per-minibatch error rates over full minibatches**, the test error at each new
best, the same patience rule.  With validation and test sets whose sizes are
multiples of the batch size, the tutorials' evaluation and dlt_lib's (every
example) are the same numbers, and the two runs must agree on everything:
every validation error, when they stop and the parameters at the end.  The
best iteration too, except after a tie (see the comment in the test).
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from dlt_lib import backend, training
from dlt_lib.models import MLP, LogisticRegression


def tutorial_loop(model, data, learning_rate, batch_size, n_epochs, patience, l2=0.0,
                  patience_increase=2, improvement_threshold=0.995):  # fmt: skip
    (Xtr, ytr), (Xva, yva), (Xte, yte) = data

    def shared_dataset(X, y):
        return pytensor.shared(np.asarray(X, dtype="float32")), pytensor.shared(np.asarray(y, dtype="int32"))

    train_x, train_y = shared_dataset(Xtr, ytr)
    valid_x, valid_y = shared_dataset(Xva, yva)
    test_x, test_y = shared_dataset(Xte, yte)
    n_train_batches = len(Xtr) // batch_size
    n_valid_batches = len(Xva) // batch_size
    n_test_batches = len(Xte) // batch_size

    index, x, y = pt.lscalar(), model.input, pt.ivector("y")
    cost = model.negative_log_likelihood(y)
    if l2:
        cost = cost + np.float32(l2) * model.L2_sqr
    gparams = [pytensor.grad(cost, p) for p in model.params]
    lr = np.float32(learning_rate)
    updates = [(p, p - lr * g) for p, g in zip(model.params, gparams)]
    mode = backend.get_mode("C")

    def batch(data_x, data_y):
        return {x: data_x[index * batch_size : (index + 1) * batch_size],
                y: data_y[index * batch_size : (index + 1) * batch_size]}  # fmt: skip

    train_model = pytensor.function([index], cost, updates=updates, givens=batch(train_x, train_y), mode=mode)
    validate_model = pytensor.function([index], model.errors(y), givens=batch(valid_x, valid_y), mode=mode)
    test_model = pytensor.function([index], model.errors(y), givens=batch(test_x, test_y), mode=mode)

    validation_frequency = min(n_train_batches, patience // 2)
    best_validation_loss, best_iter, test_score = np.inf, 0, 0.0
    validations = []
    epoch, done_looping, it = 0, False, -1
    while (epoch < n_epochs) and (not done_looping):
        epoch = epoch + 1
        for minibatch_index in range(n_train_batches):
            train_model(minibatch_index)
            it = (epoch - 1) * n_train_batches + minibatch_index
            if (it + 1) % validation_frequency == 0:
                this_validation_loss = np.mean([validate_model(i) for i in range(n_valid_batches)])
                validations.append((it, float(this_validation_loss)))
                if this_validation_loss < best_validation_loss:
                    if this_validation_loss < best_validation_loss * improvement_threshold:
                        patience = max(patience, it * patience_increase)
                    best_validation_loss, best_iter = this_validation_loss, it
                    test_score = float(np.mean([test_model(i) for i in range(n_test_batches)]))
            if patience <= it:
                done_looping = True
                break
    return validations, best_iter, test_score, it, model.get_param_values()


def toy_data(seed=0, n_in=12):
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(n_in, 3))

    def split(n):
        X = rng.normal(size=(n, n_in)).astype("float32")
        return X, np.argmax(X @ teacher + 0.7 * rng.normal(size=(n, 3)), axis=1)

    return split(400), split(160), split(160)  # multiples of the batch size, 20


@pytest.mark.parametrize("make_model, l2", [(lambda: LogisticRegression(12, 3), 0.0),
                                            (lambda: MLP(12, 16, 3, seed=1234), 1e-3)])  # fmt: skip
def test_trainer_retraces_the_tutorial_loop(make_model, l2):
    data = toy_data()
    settings = dict(learning_rate=0.1, batch_size=20, n_epochs=40)
    validations, best_iter, test_score, last, params = tutorial_loop(
        make_model(), data, l2=l2, patience=100, **settings
    )

    model = make_model()
    stopping = training.EarlyStopping(patience=100, patience_increase=2, improvement_threshold=0.995)
    history = training.train(
        model, data, l2=l2, early_stopping=stopping, progress=False, mode="C", restore_best=False, **settings
    )
    assert [r.iteration for r in history.records] == [it for it, _ in validations]
    np.testing.assert_allclose(
        [r.valid_error for r in history.records], [v for _, v in validations], atol=1e-6
    )
    if history.best.iteration == best_iter:
        assert history.test_error == pytest.approx(test_score, abs=1e-6)
    else:
        # A tie: two validations with the same number of mistakes.  The tutorials
        # average float32 per-minibatch rates, whose rounding can make the later
        # one look a hair better (a "new best"); dlt_lib's rate is an exact count
        # over n, so a tie is never a new best.  The book says so.
        tutorial_best = dict(validations)[best_iter]
        assert tutorial_best == pytest.approx(history.best.valid_error, abs=1e-6)
        assert best_iter > history.best.iteration
    assert history.stopped_at == last
    got = model.get_param_values()
    for name, value in params.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_tutorials_leave_out_a_partial_last_minibatch_and_dlt_lib_does_not():
    # 170 validation examples at batch 20: the tutorials average 8 minibatches (160 examples).
    (Xtr, ytr), (Xva, yva), (Xte, yte) = toy_data()
    extra_X = np.random.default_rng(9).normal(size=(10, 12)).astype("float32")
    extra_y = np.zeros(10, dtype=int)
    data = ((Xtr, ytr), (np.concatenate([Xva, extra_X]), np.concatenate([yva, extra_y])), (Xte, yte))
    model = LogisticRegression(12, 3)
    history = training.train(model, data, learning_rate=0.1, batch_size=20, n_epochs=2,
                             progress=False, mode="C", restore_best=False)  # fmt: skip
    X_all, y_all = data[1]
    assert history.records[-1].valid_error == pytest.approx(model.error_rate(X_all, y_all), abs=1e-6)
    tutorials = model.error_rate(X_all[:160], y_all[:160])  # what the tutorials would have reported
    assert model.error_rate(X_all, y_all) != pytest.approx(tutorials, abs=1e-9)

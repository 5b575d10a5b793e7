"""Loss functions, written as symbolic PyTensor expressions.

Nothing here computes a number.  Each function builds a graph; it becomes a
number only once compiled with ``pytensor.function`` (or ``.eval()``).

Notation (as in the tutorials): ``p_y_given_x`` is the model's matrix of class
probabilities, one row per example; ``y`` is the vector of integer labels.

- The **0-1 loss** counts mistakes.  It is what we report, but it is a step
  function of the parameters: its gradient is zero almost everywhere, so
  gradient descent cannot use it.
- The **negative log-likelihood** (NLL) is its differentiable surrogate:
  it rewards putting probability on the right class, smoothly.

Why a *mean* and not a *sum* for the NLL?  The tutorials define the NLL as a
sum over the dataset, but train on its mean over a minibatch.  With the mean,
the size of a gradient step does not grow with the batch size, so a learning
rate tuned at batch 20 stays sensible at batch 600.  With the sum you would
have to divide the learning rate by the batch size yourself.
"""

from __future__ import annotations

import pytensor.tensor as pt

from dlt_lib.validation import InvalidParameterError, check_option


def _check_labels(y) -> None:
    if y.ndim != 1:
        raise TypeError(
            f"Labels must be a vector (one integer class per example); got a {y.ndim}-d "
            f"variable {y} of type {y.type}. Pass e.g. pt.ivector('y')."
        )
    if not y.dtype.startswith(("int", "uint")):
        raise TypeError(
            f"Labels are used as indices, so they must be integers; got dtype {y.dtype}. "
            "Cast them with pt.cast(y, 'int32') or store them in an int32 shared variable."
        )


def predictions(p_y_given_x):
    """The predicted class of each row: the index of its largest probability.

    Taught in ``book/losses.ipynb``.
    """
    return pt.argmax(p_y_given_x, axis=1)


def zero_one_loss(p_y_given_x, y):
    """Number of misclassified examples: ``sum_i [argmax_k p(k|x_i) != y_i]``.

    Taught in ``book/losses.ipynb``.
    """
    _check_labels(y)
    return pt.sum(pt.neq(predictions(p_y_given_x), y))


def zero_one_rate(p_y_given_x, y):
    """Fraction of misclassified examples (the 0-1 loss divided by ``n``).

    Taught in ``book/losses.ipynb``.
    """
    _check_labels(y)
    return pt.mean(pt.neq(predictions(p_y_given_x), y))


def log_probabilities_of_labels(log_p_y_given_x, y):
    """``log p(y_i | x_i)`` for every row ``i``: one entry picked per row.

    Mathematically this is the tutorials' ``log_p[pt.arange(n), y]``, which
    indexes the matrix with two vectors and returns ``log_p[0, y_0],
    log_p[1, y_1], ...``.  We compute the same numbers as a masked row sum,
    ``sum_k [k == y_i] * log_p[i, k]``: the gradient of a mask is elementwise,
    while the gradient of that indexing is a scatter (``AdvancedIncSubtensor``)
    which PyTensor's C mode runs in Python, once per minibatch.  The mask made
    a whole training step up to a third faster (``benchmarks/README.md``).

    Labels outside ``0..n_classes-1`` would pick nothing: the library checks
    labels where data enters (``check_data`` of the models, the trainer).
    Taught in ``book/losses.ipynb``.
    """
    _check_labels(y)
    classes = pt.arange(log_p_y_given_x.shape[1])
    is_label = pt.eq(y[:, None], classes[None, :])
    # switch, not multiplication: 0 * -inf (a probability of exactly 0) would be NaN.
    return pt.sum(pt.switch(is_label, log_p_y_given_x, 0), axis=1)


def negative_log_likelihood(p_y_given_x, y, reduction: str = "mean", *, log_p_y_given_x=None):
    """``-sum_i log p(y_i | x_i)`` (``reduction="sum"``) or its mean over the rows (``"mean"``).

    Pass ``log_p_y_given_x`` when you have it (models compute it from the logits
    with a stable log-softmax); otherwise ``log(p_y_given_x)`` is used.
    Taught in ``book/losses.ipynb``.
    """
    check_option(reduction, "reduction", ("mean", "sum"))
    log_p = pt.log(p_y_given_x) if log_p_y_given_x is None else log_p_y_given_x
    picked = log_probabilities_of_labels(log_p, y)
    return -pt.mean(picked) if reduction == "mean" else -pt.sum(picked)


def l1_penalty(params):
    """``sum_k sum |theta_k|`` over a list of parameters (usually only the weights).

    Taught in ``book/regularization.ipynb``.
    """
    params = list(params)
    if not params:
        raise InvalidParameterError("l1_penalty needs at least one parameter; got an empty list.")
    return pt.add(*[pt.sum(pt.abs(p)) for p in params]) if len(params) > 1 else pt.sum(pt.abs(params[0]))


def l2_penalty(params):
    """The *squared* L2 norm ``sum_k sum theta_k^2`` (weight decay, without the 1/2).

    Taught in ``book/regularization.ipynb``.
    """
    params = list(params)
    if not params:
        raise InvalidParameterError("l2_penalty needs at least one parameter; got an empty list.")
    return pt.add(*[pt.sum(pt.sqr(p)) for p in params]) if len(params) > 1 else pt.sum(pt.sqr(params[0]))

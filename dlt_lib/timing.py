"""Honest little timings for the chapters: medians of repeats, measured side by side.

A single timing on a shared laptop or a 2-core cloud machine is noise.  We
repeat, interleave the things being compared (so a background burst hits
both), and report medians.  Speed claims in the book come from these
functions run in the chapter itself, on the reader's machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytensor
import pytensor.tensor as pt

from dlt_lib import backend, data, training
from dlt_lib import updates as update_rules


def median_times(functions: dict, repeats: int = 5, warmup: int = 1) -> dict:
    """Call each function ``warmup`` times, then ``repeats`` times interleaved; return median seconds per name.

    Taught in ``book/backends.ipynb``.
    """
    for fn in functions.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(times)) for name, times in samples.items()}


@dataclass
class EpochTiming:
    """Seconds per epoch at one batch size (:func:`epoch_times`).  See ``book/gradient_descent.ipynb``."""

    batch_size: int
    updates_per_epoch: int
    seconds_per_epoch: float

    @property
    def microseconds_per_update(self) -> float:
        return 1e6 * self.seconds_per_epoch / self.updates_per_epoch


def epoch_times(
    model_factory, X, y, batch_sizes, learning_rate=0.1, mode=None, repeats=3
) -> list[EpochTiming]:
    """Seconds per training epoch (SGD on the NLL) for each batch size, compile time excluded.

    ``model_factory()`` returns a fresh model; the updates are those the
    trainer runs (:func:`dlt_lib.training.compile_updates`).
    Taught in ``book/gradient_descent.ipynb``.
    """
    results = []
    for batch_size in batch_sizes:
        model = model_factory()
        runner = training.compile_updates(
            model, X, y, batch_size=batch_size, learning_rate=learning_rate, mode=mode
        )
        seconds = median_times({"epoch": runner.epoch}, repeats=repeats)["epoch"]
        results.append(EpochTiming(batch_size, runner.n_batches, seconds))
    return results


def feeding_comparison(X, y, batch_size=600, n_batches=None, mode=None, repeats=5) -> dict:
    """One minibatch SGD step of logistic regression, fed two ways; median seconds per pass over the batches.

    ``"shared"``: the data lives in shared variables and the function takes only
    a minibatch *index*; ``givens`` picks that minibatch out of the data, as the
    tutorials recommend.  (Stored by :func:`dlt_lib.data.shared_dataset` with
    ``batch_size``, as the trainer stores it: minibatch ``i`` is the block ``X[i]``,
    the same rows as the tutorials' slice, in a form JAX can compile.)
    ``"host"``: the function takes the minibatch arrays as inputs, copied in on
    every call (see :func:`_off_boundary` for mode JAX on a CPU).  On a CPU both read the same memory; in JAX mode on a GPU the
    host version copies every batch to the device, the shared one never does.
    Taught in ``book/dataset.ipynb``.
    """
    from dlt_lib.models import LogisticRegression

    pmode = backend.get_mode(mode)
    n_batches = n_batches or len(X) // batch_size
    floatX = pytensor.config.floatX
    n_in, n_out = np.shape(X)[1], int(np.max(y)) + 1
    Xf = np.asarray(X[: n_batches * batch_size], dtype=floatX)
    yi = np.asarray(y[: n_batches * batch_size], dtype="int32")

    def step_for(model, labels):
        cost = model.negative_log_likelihood(labels)
        return cost, update_rules.sgd(cost, model.params, learning_rate=0.1)

    # From shared variables, by index.
    shared = data.shared_dataset((Xf, yi), batch_size=batch_size, name="train")
    backend.place_on_device([shared.X, shared.y], mode)
    model, labels, index = LogisticRegression(n_in, n_out), pt.ivector("y"), pt.lscalar("index")
    cost, ups = step_for(model, labels)
    X_batch, y_batch = shared.minibatch(index)
    givens = {model.input: X_batch, labels: y_batch}
    from_shared = pytensor.function([index], cost, updates=ups, givens=givens, mode=pmode)

    # From the host, one copy per call.
    x_in = pt.matrix("x", shape=(batch_size, n_in))
    model_h, labels_h = LogisticRegression(n_in, n_out, input=x_in), pt.ivector("y", shape=(batch_size,))
    cost_h, ups_h = step_for(model_h, labels_h)
    from_host = pytensor.function([x_in, labels_h], cost_h, updates=ups_h, mode=pmode)
    host_batches = [
        (_off_boundary(Xf[i * batch_size : (i + 1) * batch_size]), yi[i * batch_size : (i + 1) * batch_size])
        for i in range(n_batches)
    ]

    # np.asarray on the last result waits for it: JAX returns before it has finished.
    def shared_pass():
        for i in range(n_batches):
            out = from_shared(i)
        np.asarray(out)

    def host_pass():
        for xb, yb in host_batches:
            out = from_host(xb, yb)
        np.asarray(out)

    return median_times({"shared": shared_pass, "host": host_pass}, repeats=repeats)


def _off_boundary(array: np.ndarray) -> np.ndarray:
    """A copy of ``array`` starting 16 bytes past a 64-byte boundary.

    On a CPU, XLA uses a NumPy array in place when it starts on a 64-byte
    boundary and copies it otherwise, so whether a host-fed JAX step copies
    would depend on where the allocator put each minibatch.  Off the boundary
    it always copies, as it must to a GPU: the comparison measures the copy.
    """
    raw = np.empty(array.nbytes + 80, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64 + 16
    out = raw[start : start + array.nbytes].view(array.dtype).reshape(array.shape)
    out[...] = array
    return out

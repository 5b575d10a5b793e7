#!/usr/bin/env python
"""What the trainer's ways of feeding minibatches cost: fixed order, shuffling, chunks.

One epoch of SGD on MNIST-shaped data (784 float32 inputs, 10 classes), with
the updates ``dlt_lib.training.train`` runs (``compile_updates``), fed four ways:

- ``fixed order, whole set``: the default, the tutorials' way: the training
  set in shared variables once, the same order every epoch;
- ``shuffled, whole set``: ``shuffle=seed``: each epoch copies the set, in a
  new random order, into the shared variables (``set_value``);
- ``fixed order, chunks``: ``chunk_size=K``: only K minibatches live in the
  shared variables, refreshed with ``set_value`` when the updates reach the
  next chunk (the tutorials' advice for data larger than the device's memory);
- ``shuffled, chunks``: both.

All four run the same number of updates of the same step; epoch 0 is the
warm-up, and the epochs after it are timed (so that every way pays the work of
a real epoch: a new order, the chunks loaded again).  Timings are medians of interleaved repeats,
printed as ratios to the fixed-order, whole-set row measured side by side in
the same run.  In JAX mode every refresh is also a copy to the device.

Run from the repository root::

    python benchmarks/bench_feeding.py                  # 50,000 examples, batch 20 and 600, mode C
    python benchmarks/bench_feeding.py --quick          # 10,000 examples, 3 repeats
    python benchmarks/bench_feeding.py --modes C,JAX --chunk 50 --repeats 9
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

WAYS = {
    "fixed order, whole set": {},
    "shuffled, whole set": {"shuffle": 1},
    "fixed order, chunks": {"chunk": True},
    "shuffled, chunks": {"shuffle": 1, "chunk": True},
}


def make_data(n, seed=0):
    """MNIST-shaped inputs in [0, 1] and labels from a fixed linear teacher (so the learning is real)."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n, 784), dtype=np.float32) < 0.19).astype(np.float32) * rng.random(
        (n, 784), dtype=np.float32
    )
    teacher = rng.normal(size=(784, 10)).astype(np.float32)
    return X, np.argmax(X @ teacher, axis=1).astype(np.int64)


def runners(X, y, batch_size, mode, chunk):
    from dlt_lib import models, training

    built = {}
    for name, way in WAYS.items():
        chunk_size = chunk if way.get("chunk") else None
        runner = training.compile_updates(
            models.LogisticRegression(784, 10),
            X,
            y,
            batch_size=batch_size,
            learning_rate=0.13,
            mode=mode,
            shuffle=way.get("shuffle"),
            chunk_size=chunk_size,
        )
        runner(0, runner.n_batches)  # compile, warm up, and leave epoch 0 behind
        built[name] = runner
    return built


def time_epochs(built, repeats):
    """Median seconds of epochs 1, 2, ... of each way, interleaved so a background burst hits all.

    Each repeat runs the next epoch, so each way does the work a real epoch
    does (a new order, the chunks loaded again), and no more.
    """
    times = {name: [] for name in built}
    for epoch in range(1, repeats + 1):
        for name, runner in built.items():
            start = time.perf_counter()
            out = runner(epoch * runner.n_batches, runner.n_batches)
            np.asarray(out)  # JAX returns before it has finished
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="training examples")
    parser.add_argument("--batch-sizes", default="20,600", help="comma-separated")
    parser.add_argument("--chunk", type=int, default=50, help="minibatches per chunk")
    parser.add_argument("--modes", default="C", help="comma-separated: C, NUMBA, JAX")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10,000 examples, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats = 10_000, 3

    from dlt_lib import backend

    X, y = make_data(args.n)
    print(
        f"{args.n:,} examples x 784, logistic regression, chunks of {args.chunk} minibatches, "
        f"median of {args.repeats} interleaved epochs; {backend.describe()}"
    )
    for mode in args.modes.split(","):
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            built = runners(X, y, batch_size, mode, args.chunk)
            medians = time_epochs(built, args.repeats)
            base = medians["fixed order, whole set"]
            print(
                f"\nmode {mode}, batch {batch_size} ({built['fixed order, whole set'].n_batches} updates per epoch)"
            )
            for name, seconds in medians.items():
                print(f"  {name:24s} {1e3 * seconds:8.1f} ms per epoch  [{seconds / base:4.2f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

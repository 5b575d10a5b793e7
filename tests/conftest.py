"""Shared test set-up.

Importing dlt_lib first configures PyTensor (floatX=float32, OpenBLAS for the
C linker) before any test module imports pytensor itself.
"""

import gzip
import http.server
import importlib.util
import socket
import struct
import threading

import numpy as np
import pytest
from support import REAL_CACHE, real_cache_state

import dlt_lib  # noqa: F401  (configures PyTensor; numpy/pytest above do not import it)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``jax`` skip when jax is not installed (it is optional: ``pip install dlt_lib[jax]``)."""
    if importlib.util.find_spec("jax") is not None:
        return
    skip = pytest.mark.skip(reason="jax is not installed (pip install jax jaxlib)")
    for item in items:
        if item.get_closest_marker("jax"):
            item.add_marker(skip)


# ----------------------------------------------------------------------------
# Data-layer fixtures (tests/test_data.py, test_download.py, test_formats.py):
# synthetic MNIST files and a local HTTP server.  Nothing below is autouse;
# tests opt in by naming a fixture.
# ----------------------------------------------------------------------------

# ----------------------------------------------------------------------------
# A Python-2-style pickle, written opcode by opcode
# ----------------------------------------------------------------------------
# Python 3 pickles bytes (at protocol 2) as a call to _codecs.encode, which our
# restricted unpickler rightly refuses; the real mnist.pkl.gz, written by
# Python 2's cPickle, holds them as BINSTRING opcodes and names NumPy's
# reconstruct function numpy.core.multiarray._reconstruct.  So we write that
# layout directly.


def _py2(obj) -> bytes:
    if obj is None:
        return b"N"
    if obj is True:
        return b"\x88"
    if obj is False:
        return b"\x89"
    if isinstance(obj, (int, np.integer)):
        obj = int(obj)
        if 0 <= obj < 256:
            return b"K" + bytes([obj])
        if 0 <= obj < 65536:
            return b"M" + struct.pack("<H", obj)
        return b"J" + struct.pack("<i", obj)
    if isinstance(obj, bytes):  # a Python 2 str
        if len(obj) < 256:
            return b"U" + bytes([len(obj)]) + obj
        return b"T" + struct.pack("<I", len(obj)) + obj
    if isinstance(obj, tuple):
        if not obj:
            return b")"
        body = b"".join(_py2(x) for x in obj)
        if len(obj) <= 3:
            return body + b"\x85\x86\x87"[len(obj) - 1 : len(obj)]
        return b"(" + body + b"t"
    if isinstance(obj, np.dtype):
        order = obj.byteorder.replace("=", "<").encode()
        return (
            b"cnumpy\ndtype\n"
            + _py2((obj.str[1:].encode(), 0, 1))
            + b"R"
            + _py2((3, order, None, None, None, -1, -1, 0))
            + b"b"
        )
    if isinstance(obj, np.ndarray):
        return (
            b"cnumpy.core.multiarray\n_reconstruct\n"
            + b"cnumpy\nndarray\n"
            + _py2((0,))
            + _py2(b"b")
            + b"\x87R"
            + _py2((1, obj.shape, obj.dtype, False, np.ascontiguousarray(obj).tobytes()))
            + b"b"
        )
    raise TypeError(f"cannot write {type(obj).__name__} as a Python 2 pickle")


def py2_pickle_bytes(obj) -> bytes:
    return b"\x80\x02" + _py2(obj) + b"."


def small_mnist(n_train=60, n_valid=12, n_test=12, seed=0):
    """((X, y), (X, y), (X, y)) with mnist.pkl.gz's dtypes; every class in every split."""
    rng = np.random.default_rng(seed)
    splits = []
    for n in (n_train, n_valid, n_test):
        X = (rng.integers(0, 256, size=(n, 784)) / 256).astype(np.float32)
        y = (np.arange(n) % 10).astype(np.int64)
        splits.append((X, y))
    return tuple(splits)


@pytest.fixture
def write_mnist_pkl():
    """write_mnist_pkl(path, splits=None) -> (path, splits): a gzipped Py2-style mnist.pkl.gz."""

    def write(path, splits=None):
        splits = small_mnist() if splits is None else splits
        with gzip.open(path, "wb") as f:
            f.write(py2_pickle_bytes(splits))
        return path, splits

    return write


@pytest.fixture
def py2_pickle():
    return py2_pickle_bytes


# ----------------------------------------------------------------------------
# IDX files
# ----------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.asarray(array).astype(dtype).tobytes()


@pytest.fixture
def write_idx():
    """write_idx(path, array, gz=None) writes an IDX file (gzipped if the name ends in .gz)."""

    def write(path, array, *, type_code=0x08, gz=None):
        data = idx_bytes(np.asarray(array), type_code)
        gz = str(path).endswith(".gz") if gz is None else gz
        with open(path, "wb") as f:
            f.write(gzip.compress(data) if gz else data)
        return path

    return write


@pytest.fixture
def write_idx_set(write_idx):
    """write_idx_set(directory, n_train=60, n_test=12) writes the four IDX .gz files; returns the arrays."""

    def write(directory, n_train=60, n_test=12, seed=1):
        rng = np.random.default_rng(seed)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for part, n in (("train", n_train), ("t10k", n_test)):
            images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
            labels = (np.arange(n) % 10).astype(np.uint8)
            write_idx(directory / f"{part}-images-idx3-ubyte.gz", images)
            write_idx(directory / f"{part}-labels-idx1-ubyte.gz", labels)
            arrays[part] = (images, labels)
        return arrays

    return write


# ----------------------------------------------------------------------------
# Environment and network
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_cache_untouched():
    """Fail the module if any of its tests wrote to, or deleted from, the real cache."""
    before = real_cache_state()
    yield
    assert real_cache_state() == before, f"a test changed the real cache {REAL_CACHE}"


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    """A clean environment for data tests: a private cache, no offline flag, no Fashion dir.

    Returns the cache directory (also in DLT_DATA_HOME).
    """
    home = tmp_path / "cache"
    monkeypatch.setenv("DLT_DATA_HOME", str(home))
    monkeypatch.delenv("DLT_OFFLINE", raising=False)
    monkeypatch.delenv("DLT_FASHION_MNIST_DIR", raising=False)
    return home


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    hits: list = []

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        self.hits.append(self.path)
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 (port chosen by the OS).

    Yields an object with ``.url`` (base URL, no trailing slash), ``.routes``
    (path -> bytes to serve; anything else is a 404) and ``.hits`` (paths
    requested, in order).
    """
    handler = type("Handler", (_Handler,), {"routes": {}, "hits": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.routes = handler.routes
    server.hits = handler.hits
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_port_url():
    """A URL on 127.0.0.1 that accepts the connection but never answers (for timeouts)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()

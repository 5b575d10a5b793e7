"""Small files that declare huge sizes (issue 11, section 1): refused before memory is taken for them.

Each bomb is opened by a fresh Python process whose peak resident memory
(``VmHWM``) must stay under :data:`PEAK_MB`.  The child's
address space is capped at 3 GiB, so that a loader which does allocate what a
bomb declares fails there (MemoryError) instead of taking the machine's memory.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import pytest

from dlt_lib import checkpoint, formats
from dlt_lib.checkpoint import CheckpointError
from dlt_lib.formats import DataFormatError, RestrictedUnpickler, UnsafePickleError
from dlt_lib.models import LogisticRegression

PEAK_MB = 300

# Runs in the child: caps its address space, runs the work, and writes its peak resident memory (VmHWM,
# which starts afresh at exec; ru_maxrss from wait4 would count the forked copy of this test process).
_CHILD = """
import atexit, json, resource, runpy, sys
report, spec = sys.argv[1], json.loads(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

def peak():
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(report, "w") as out:
        out.write(str(kb / 1024))

atexit.register(peak)
if "code" in spec:
    exec(compile(spec["code"], "<bomb>", "exec"), {"__name__": "__main__"})
else:
    sys.argv = ["python -m dlt_lib", *spec["argv"]]
    runpy.run_module("dlt_lib", run_name="__main__", alter_sys=True)
"""


def run_measured(spec: dict, *, env=None, timeout=180):
    """Run ``{"code": ...}`` or ``{"argv": [...]}`` (a dlt_lib command) in a fresh Python with at most 3 GiB
    of address space; return its exit status, stdout, stderr and peak resident memory in MB."""
    env = {**os.environ, "DLT_OFFLINE": "1", **(env or {})}
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as report:
        argv = [sys.executable, "-c", _CHILD, report.name, json.dumps(spec)]
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        peak = report.read()
    assert peak, (
        f"the child died before reporting its memory (status {result.returncode}):\n{result.stderr[-3000:]}"
    )
    return result.returncode, result.stdout, result.stderr, float(peak)


def load_in_a_child(call: str, **kwargs):
    """Run ``call`` (Python, after ``from dlt_lib import ...``) in a child; return (error type, message, peak MB)."""
    code = (
        "import json\n"
        "from dlt_lib import checkpoint, data, formats\n"
        f"try:\n    {call}\n    print(json.dumps([None, '']))\n"
        "except Exception as exc:\n    print(json.dumps([type(exc).__name__, str(exc)]))\n"
    )
    status, out, err, peak = run_measured({"code": code}, **kwargs)
    assert status == 0 and out.strip(), f"the child failed (status {status}):\n{err[-3000:]}"
    kind, message = json.loads(out.strip().splitlines()[-1])
    return kind, message, peak


# ----------------------------------------------------------------------------
# Making bombs quickly: a deflate stream of zeros built from one repeated block
# ----------------------------------------------------------------------------
@functools.lru_cache
def deflate_then_zeros(head: bytes, n_zeros: int, tail: bytes = b"", chunk: int = 1 << 20) -> bytes:
    """A raw deflate stream of ``head + n_zeros zero bytes + tail``, in well under a second for 1 GB.

    After a full flush the compressor forgets what came before, so every
    further megabyte of zeros compresses to the same bytes: compress two and
    repeat the second.
    """
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [co.compress(head) + co.flush(zlib.Z_FULL_FLUSH)]
    full, rest = divmod(n_zeros, chunk)
    if full:
        parts.append(co.compress(b"\0" * chunk) + co.flush(zlib.Z_FULL_FLUSH))
        again = co.compress(b"\0" * chunk) + co.flush(zlib.Z_FULL_FLUSH)
        parts.append(again * (full - 1))
    parts.append(co.compress(b"\0" * rest + tail) + co.flush())
    return b"".join(parts)


@functools.lru_cache
def crc_then_zeros(head: bytes, n_zeros: int, tail: bytes = b"") -> int:
    crc, block = zlib.crc32(head), b"\0" * (1 << 24)
    for _ in range(n_zeros // len(block)):
        crc = zlib.crc32(block, crc)
    return zlib.crc32(b"\0" * (n_zeros % len(block)) + tail, crc)


def gzip_of_zeros(head: bytes, n_zeros: int, tail: bytes = b"", *, isize: int | None = None) -> bytes:
    """A valid gzip file of ``head``, ``n_zeros`` zeros and ``tail``; ``isize`` replaces the declared size."""
    size = len(head) + n_zeros + len(tail)
    trailer = struct.pack(
        "<II", crc_then_zeros(head, n_zeros, tail), (size if isize is None else isize) % 2**32
    )
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflate_then_zeros(head, n_zeros, tail) + trailer


def write_zip(path, members):
    """A zip archive by hand: ``members`` are (name, deflated bytes, size, crc), so a member may hold 1 GB."""
    local, central = bytearray(), bytearray()
    for name, body, size, crc in members:
        raw = name.encode()
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(body), size, len(raw), 0)
        local += raw + body
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            len(body),
            size,
            len(raw),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += raw
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path


def npy_member(name: str, array_header: dict, n_zeros: int):
    """A zip member holding a ``.npy`` header and ``n_zeros`` zero bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, array_header)
    head = header.getvalue()
    return name, deflate_then_zeros(head, n_zeros), len(head) + n_zeros, crc_then_zeros(head, n_zeros)


def metadata_member(meta: dict):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array(json.dumps(meta)), allow_pickle=False)
    data = buffer.getvalue()
    return "__metadata__.npy", zlib.compress(data, 9)[2:-4], len(data), zlib.crc32(data)


# ----------------------------------------------------------------------------
# The bombs of the issue, each in a child process with its memory measured
# ----------------------------------------------------------------------------
def test_a_34_byte_pickle_allocates_nothing(tmp_path):
    # numpy.ndarray((10**9,), 'O'): the type as the string 'O' never went through the dtype check.
    path = tmp_path / "o.pkl"
    path.write_bytes(
        b"\x80\x02cnumpy\nndarray\n\x8a\x08" + (10**9).to_bytes(8, "little") + b"\x85U\x01O\x86R."
    )
    assert path.stat().st_size == 34
    kind, message, peak = load_in_a_child(f"data.load_mnist(path={str(path)!r})")
    assert kind == "UnsafePickleError" and str(path) in message and "numpy.ndarray" in message, message
    assert peak < PEAK_MB, f"peak {peak:.0f} MB"


def test_an_11_byte_pickle_cannot_make_the_unpickler_fill_its_memo_table(tmp_path):
    # LONG_BINPUT 0x08000000: the C unpickler grows its memo table to that index (2 GB, zeroed).
    path = tmp_path / "memo.pkl"
    path.write_bytes(b"\x80\x02K\x00r\x00\x00\x00\x08.")
    kind, message, peak = load_in_a_child(f"formats.load_mnist_pickle({str(path)!r})")
    assert kind == "DataFormatError" and str(path) in message, message  # a plain int: not MNIST's layout
    assert peak < PEAK_MB, f"peak {peak:.0f} MB"


@pytest.fixture(scope="module")
def pickle_bomb(tmp_path_factory):
    """A 1 MB gzip file: a pickle of one string of 10**9 zero bytes (gzip's trailer says so)."""
    path = tmp_path_factory.mktemp("bombs") / "mnist.pkl.gz"
    path.write_bytes(gzip_of_zeros(b"\x80\x02T" + struct.pack("<I", 10**9), 10**9, b"."))
    assert path.stat().st_size < 1.1e6
    return path


def test_a_gzipped_pickle_bomb_is_refused_from_its_trailer(pickle_bomb):
    kind, message, peak = load_in_a_child(f"data.load_mnist(path={str(pickle_bomb)!r})")
    assert kind == "DataFormatError" and str(pickle_bomb) in message and "1,000,000,008" in message, message
    assert peak < PEAK_MB, f"peak {peak:.0f} MB"


def test_a_gzipped_pickle_bomb_with_a_lying_trailer_is_refused_at_its_string(pickle_bomb, tmp_path):
    lying = tmp_path / "mnist.pkl.gz"
    lying.write_bytes(pickle_bomb.read_bytes()[:-4] + struct.pack("<I", 100))  # "inflates to 100 bytes"
    kind, message, peak = load_in_a_child(f"formats.load_mnist_pickle({str(lying)!r})")
    assert kind == "DataFormatError" and "declares 1,000,000,000 bytes" in message, message
    assert peak < PEAK_MB, f"peak {peak:.0f} MB"


def _idx_header(magic, *shape):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in shape)


def _fashion_dir(directory, n_train, n_labels=None):
    """Four Fashion-MNIST files whose training images declare ``n_train`` images (all zeros)."""
    directory.mkdir()
    n_labels = n_train if n_labels is None else n_labels
    files = {
        "train-images-idx3-ubyte.gz": (_idx_header(0x803, n_train, 28, 28), n_train * 784),
        "train-labels-idx1-ubyte.gz": (_idx_header(0x801, n_labels), n_labels),
        "t10k-images-idx3-ubyte.gz": (_idx_header(0x803, 10, 28, 28), 10 * 784),
        "t10k-labels-idx1-ubyte.gz": (_idx_header(0x801, 10), 10),
    }
    for name, (head, n_zeros) in files.items():
        (directory / name).write_bytes(gzip_of_zeros(head, n_zeros))
    return directory


@pytest.mark.parametrize("n_labels", [400_000, 60_000])
def test_an_idx_file_declaring_400000_images_is_refused_by_train(tmp_path, n_labels):
    directory = _fashion_dir(tmp_path / "fashion", 400_000, n_labels)
    assert (directory / "train-images-idx3-ubyte.gz").stat().st_size < 400_000  # the 305 KB
    argv = ["train", "logreg", "--dataset", "fashion-mnist"]
    argv += ["--n-epochs", "1", "--quiet", "--output-dir", str(tmp_path / "run")]
    status, out, err, peak = run_measured({"argv": argv}, env={"DLT_FASHION_MNIST_DIR": str(directory)})
    assert status == 1 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "-idx" in line and "60,000" in line, line
    assert peak < PEAK_MB, f"peak {peak:.0f} MB"


def _forged_checkpoint(path, **hyperparameters):
    """A real LogisticRegression(784, 10) checkpoint whose metadata claims other hyper-parameters."""
    checkpoint.save(path, LogisticRegression(784, 10))
    arrays, meta = checkpoint.read_arrays(path)
    meta["hyperparameters"] = hyperparameters
    checkpoint.write_arrays(path, arrays, meta)
    return path


def test_a_checkpoint_whose_metadata_claims_a_huge_model_is_refused_before_building_it(tmp_path):
    path = _forged_checkpoint(tmp_path / "best.npz", n_in=100_000, n_out=5_000)
    argv = ["evaluate", str(path), "--dataset", "mnist-sample"]
    status, out, err, peak = run_measured({"argv": argv})
    assert status == 2 and "Traceback" not in err, err
    line = err.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error: ") and str(path) in line, line
    assert "(100000, 5000)" in line and "(784, 10)" in line, line
    assert peak < PEAK_MB, f"peak {peak:.0f} MB"


GIGABYTE_OF_FLOATS = {"descr": "<f4", "fortran_order": False, "shape": (250_000_000,)}


@pytest.mark.parametrize(
    "member, expected",
    [
        (
            "../../outside.npy",
            "members named",
        ),  # a name dlt_lib never writes, read before the names were checked
        ("W.npy", "at most"),  # a name it does write, declaring 1 GB
    ],
)
def test_a_1gb_zip_member_is_refused_before_it_is_read(tmp_path, member, expected):
    path = write_zip(
        tmp_path / "best.npz",
        [
            metadata_member({"model_class": "LogisticRegression"}),
            npy_member(member, GIGABYTE_OF_FLOATS, 10**9),
        ],
    )
    assert path.stat().st_size < 1.2e6
    kind, message, peak = load_in_a_child(f"checkpoint.load({str(path)!r})")
    assert kind == "CheckpointError" and str(path) in message and expected in message, message
    assert peak < PEAK_MB, f"peak {peak:.0f} MB"


# ----------------------------------------------------------------------------
# The same holes, in-process: every spelling of a type, every way to a size
# ----------------------------------------------------------------------------
def _global(module, name):
    return f"c{module}\n{name}\n".encode()


_REBUILD = _global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
HOSTILE = {
    "ndarray called with a string 'O'": _global("numpy", "ndarray") + b"K\x03\x85U\x01O\x86R.",
    "_reconstruct of objects": _REBUILD + b"K\x03\x85U\x01O\x87R.",
    "an object dtype in the state": _REBUILD
    + b"K\x00\x85U\x01b\x87R(K\x01K\x01\x85"
    + _global("numpy", "dtype")
    + b"U\x02O8K\x00K\x01\x87R]K\x07a\x89tb.",
    "a state naming its type by a string": _REBUILD
    + b"K\x00\x85U\x01b\x87R(K\x01K\x01\x85U\x01O\x89U\x08AAAAAAAAtb.",
    "a void type made to look like objects": _global("numpy", "dtype")
    + b"U\x02V8K\x00K\x01\x87R(K\x03U\x01|NNNK\x08K\x01K?tb.",
    "_frombuffer of objects": _global("numpy._core.numeric", "_frombuffer")
    + b"(C\x08AAAAAAAAU\x01OK\x01\x85U\x01CtR.",
    "scalar of an object": _global("numpy.core.multiarray", "scalar")
    + _global("numpy", "dtype")
    + b"U\x01O\x85RK\x01\x86R.",
    "_codecs.encode other than Latin-1": _global("_codecs", "encode") + b"U\x01xU\x05rot13\x86R.",
    "NEWOBJ of ndarray": _global("numpy", "ndarray") + b"K\x03\x85U\x01O\x86\x81.",
}


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_only_checked_types_and_sizes_are_built_however_they_are_spelled(what):
    # The unpickler itself refuses, before anything is built (not the layout check, after it).
    unpickler = RestrictedUnpickler(
        io.BytesIO(b"\x80\x02" + HOSTILE[what]), name="hostile.pkl", encoding="latin1"
    )
    with pytest.raises((UnsafePickleError, DataFormatError), match="hostile.pkl"):
        unpickler.load()


def test_one_string_reused_by_many_arrays_counts_for_each(tmp_path):
    # Sixteen arrays over one memoised megabyte: 16 MB from a file that holds one.
    one = b"T" + struct.pack("<I", 1 << 20) + b"\0" * (1 << 20) + b"q\x01"
    array = _REBUILD + b"K\x00\x85U\x01b\x87R(K\x01J\x00\x00\x10\x00\x85" + _global("numpy", "dtype")
    array += b"U\x02u1K\x00K\x01\x87R\x89h\x01tb"
    data = b"\x80\x02" + one + b"0" + b"(" + array * 16 + b"t."
    with pytest.raises(DataFormatError, match="would hold more than 10,485,760 bytes"):
        RestrictedUnpickler(io.BytesIO(data), name="reused.pkl", max_bytes=10 << 20, encoding="latin1").load()
    arrays = RestrictedUnpickler(io.BytesIO(data), max_bytes=20 << 20, encoding="latin1").load()
    assert len(arrays) == 16 and all(type(a) is np.ndarray and a.shape == (1 << 20,) for a in arrays)


def test_an_idx_header_whose_size_overflows_is_a_clear_error(tmp_path):
    path = tmp_path / "huge-idx"
    path.write_bytes(_idx_header(0x00000804, *[0xFFFFFFFF] * 4) + b"\0" * 16)
    with pytest.raises(DataFormatError, match=r"accepts at most 67,108,864") as info:
        formats.read_idx(path)
    assert str(path) in str(info.value)


def test_an_idx_header_larger_than_its_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(_idx_header(0x803, 60_000, 28, 28) + b"\0" * 100))
    with pytest.raises(DataFormatError, match="inflates to at most"):
        formats.read_idx_images(path)
    plain = tmp_path / "images"
    plain.write_bytes(_idx_header(0x803, 60_000, 28, 28) + b"\0" * 100)
    with pytest.raises(DataFormatError, match="expected 47,040,000 bytes, found 100"):
        formats.read_idx_images(plain)


def test_a_checkpoint_with_odd_or_missing_hyperparameters_is_refused_by_name(tmp_path):
    for hyper, expected in (
        ({"n_in": 784}, "cannot take"),
        ({"n_in": "784", "n_out": 10}, "n_in must be an integer"),
        ({"n_in": 784, "n_out": 10, "color": "red"}, "cannot take"),
        ({"n_in": 392, "n_out": 20}, "(392, 20)"),
    ):
        path = _forged_checkpoint(tmp_path / "best.npz", **hyper)
        with pytest.raises(CheckpointError, match=expected) as info:
            checkpoint.load(path)
        assert str(path) in str(info.value)


def test_the_readme_states_these_limits():
    from pathlib import Path

    from dlt_lib import cli, data

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Data and files")[1].split("\n## ")[0]
    for name, value in (
        ("formats.MAX_PICKLE_BYTES", formats.MAX_PICKLE_BYTES),
        ("formats.MAX_IDX_BYTES", formats.MAX_IDX_BYTES),
        ("checkpoint.MAX_ARRAY_BYTES", checkpoint.MAX_ARRAY_BYTES),
    ):
        assert f"{value // 2**20} MiB" in section and name in section, name
    assert f"{checkpoint.MAX_METADATA_BYTES // 2**20} MiB of metadata" in section
    assert data.IDX_MAX_EXAMPLES == {"train": 60_000, "test": 10_000}
    assert "60,000 training and 10,000 test images" in section
    assert f"at most {cli.MAX_HIDDEN:,} units" in section

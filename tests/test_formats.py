"""IDX reader and restricted unpickler (dlt_lib.formats)."""

import gzip
import io
import os
import pickle
import pickletools

import numpy as np
import pytest

from dlt_lib.formats import (
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    DataFormatError,
    RestrictedUnpickler,
    UnsafePickleError,
    check_mnist_layout,
    load_mnist_pickle,
    read_idx,
    read_idx_images,
    read_idx_labels,
)

# ----------------------------------------------------------------------------
# IDX
# ----------------------------------------------------------------------------


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("name", ["img.idx", "img.idx.gz"])
def test_read_idx_roundtrip_images(tmp_path, write_idx, images, name):
    path = write_idx(tmp_path / name, images)
    out = read_idx_images(path)
    assert out.dtype == np.uint8 and out.shape == (7, 28, 28)
    np.testing.assert_array_equal(out, images)
    out[0, 0, 0] = 1  # the result is an ordinary writable array, not a view of bytes


def test_read_idx_labels_from_file_object(write_idx, tmp_path):
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    data = (write_idx(tmp_path / "l.gz", labels)).read_bytes()
    out = read_idx_labels(io.BytesIO(data))
    np.testing.assert_array_equal(out, labels)


def test_read_idx_gzip_detected_by_content_not_name(tmp_path, write_idx, images):
    path = write_idx(tmp_path / "no-suffix", images, gz=True)
    np.testing.assert_array_equal(read_idx(path), images)


def test_read_idx_other_types_are_big_endian(tmp_path, write_idx):
    values = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    out = read_idx(write_idx(tmp_path / "i.idx", values, type_code=0x0C))
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def test_read_idx_bad_magic_names_file_and_both_numbers(tmp_path, write_idx, images):
    path = write_idx(tmp_path / "labels-but-images.gz", images)
    with pytest.raises(DataFormatError) as info:
        read_idx_labels(path)
    msg = str(info.value)
    assert "labels-but-images.gz" in msg
    assert f"0x{IDX_IMAGES_MAGIC:08X}" in msg and f"0x{IDX_LABELS_MAGIC:08X}" in msg


def test_read_idx_not_idx_at_all(tmp_path):
    path = tmp_path / "page.html"
    path.write_bytes(b"<html>Not Found</html>")
    with pytest.raises(DataFormatError, match="not an IDX magic number"):
        read_idx(path)


def test_read_idx_truncated_data_says_expected_and_found(tmp_path, write_idx, images):
    path = write_idx(tmp_path / "short.idx", images)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(DataFormatError) as info:
        read_idx_images(path)
    msg = str(info.value)
    assert "short.idx" in msg and "truncated" in msg
    assert f"expected {7 * 784:,} bytes, found {7 * 784 - 100:,}" in msg


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "hdr.idx"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataFormatError, match="dimension sizes: expected 12 bytes, found 2"):
        read_idx(path)


def test_read_idx_trailing_bytes_are_an_error(tmp_path, write_idx, images):
    path = write_idx(tmp_path / "long.idx", images)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataFormatError, match="more bytes"):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path, write_idx, images):
    path = write_idx(tmp_path / "cut.gz", images)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError) as info:
        read_idx_images(path)
    msg = str(info.value)
    assert "cut.gz" in msg and "gzip stream is truncated or corrupt" in msg


def test_read_idx_gzip_cut_only_in_its_trailer(tmp_path, write_idx, images):
    # All the data decompresses; only the CRC/size trailer is missing.
    path = write_idx(tmp_path / "trailer.gz", images)
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(DataFormatError, match="trailer.gz"):
        read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path, write_idx, images):
    path = write_idx(tmp_path / "bad.gz", images)
    data = bytearray(path.read_bytes())
    for i in range(40, len(data) - 20, 50):  # flip bits all through the deflate stream
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="bad.gz"):
        read_idx(path)


# ----------------------------------------------------------------------------
# The restricted unpickler
# ----------------------------------------------------------------------------


def test_fixture_pickle_has_the_python2_layout(py2_pickle):
    # The test file must look like the real mnist.pkl.gz, or the tests below
    # prove nothing about it: Python 2 str opcodes, the old numpy.core name.
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(py2_pickle((np.zeros((2, 3), np.float32),)))]
    names = [op for op, _ in ops]
    assert ("GLOBAL", "numpy.core.multiarray _reconstruct") in ops
    assert "BINSTRING" in names or "SHORT_BINSTRING" in names
    assert not any(op == "GLOBAL" and "codecs" in arg for op, arg in ops)


def test_load_mnist_pickle_reads_python2_layout(tmp_path, write_mnist_pkl):
    path, splits = write_mnist_pkl(tmp_path / "mnist.pkl.gz")
    out = load_mnist_pickle(path)
    assert len(out) == 3
    for (X, y), (X0, y0) in zip(out, splits):
        assert X.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(X, X0)
        np.testing.assert_array_equal(y, y0)


def test_restricted_unpickler_accepts_numpy_2_names_too():
    # A pickle written by NumPy 2 (protocol 3 or 4) names numpy._core.multiarray._reconstruct.
    pickled = pickle.dumps(np.arange(4.0), protocol=4)  # 5 would use _frombuffer
    assert b"_reconstruct" in pickled
    out = RestrictedUnpickler(io.BytesIO(pickled)).load()
    np.testing.assert_array_equal(out, np.arange(4.0))


class _RunsACommand:
    """Unpickling this calls os.system(command) -- the classic pickle exploit."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture
def hostile(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsACommand(f"touch {marker}"), protocol=2)
    return marker, payload


def test_the_hostile_pickle_really_runs_code_with_plain_pickle(hostile):
    # The control experiment: without our unpickler the command runs.  Without
    # it, the refusal tests below could pass with a payload that does nothing.
    marker, payload = hostile
    pickle.loads(payload)
    assert marker.exists()


def test_hostile_pickle_is_refused_and_command_not_run(tmp_path, hostile):
    marker, payload = hostile
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(payload))
    with pytest.raises(UnsafePickleError) as info:
        load_mnist_pickle(path)
    assert not marker.exists()
    msg = str(info.value)
    assert "system" in msg and "refusing" in msg and "mnist.pkl.gz" in msg


def test_hostile_object_hidden_inside_valid_layout_is_refused(tmp_path, py2_pickle):
    marker = tmp_path / "pwned2"
    # A real-looking first split, then the payload where the labels should be.
    good = py2_pickle((np.zeros((1, 784), np.float32),))[2:-1]
    evil = pickle.dumps(_RunsACommand(f"touch {marker}"), protocol=2)[2:-1]
    with pytest.raises(UnsafePickleError):
        RestrictedUnpickler(io.BytesIO(b"\x80\x02" + good + evil + b"\x86."), encoding="latin1").load()
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load")])
def test_other_globals_are_refused(module, name):
    data = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
    with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
        RestrictedUnpickler(io.BytesIO(data)).load()


def test_object_arrays_are_refused():
    pickled = pickle.dumps(np.array([1, "x"], dtype=object), protocol=2)
    with pytest.raises(UnsafePickleError):
        RestrictedUnpickler(io.BytesIO(pickled), encoding="latin1").load()


def test_not_a_pickle_is_a_format_error(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(b"hello, this is not a pickle"))
    with pytest.raises(DataFormatError, match="mnist.pkl.gz"):
        load_mnist_pickle(path)


def test_truncated_pickle_gzip_is_a_format_error(tmp_path, write_mnist_pkl):
    path, _ = write_mnist_pkl(tmp_path / "mnist.pkl.gz")
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        load_mnist_pickle(path)


# ----------------------------------------------------------------------------
# Layout check
# ----------------------------------------------------------------------------


def _splits(n=4, cols=784, xdtype=np.float32, ymax=9):
    X = np.zeros((n, cols), dtype=xdtype)
    y = np.arange(n) % (ymax + 1)
    return ((X, y),) * 3


def test_layout_ok():
    assert len(check_mnist_layout(_splits())) == 3


@pytest.mark.parametrize(
    "obj,match",
    [
        (_splits()[:2], "3 splits"),
        (_splits(cols=783), r"shape \(n, 784\)"),
        (_splits(xdtype=np.uint8), "float array"),
        (((np.full((2, 784), 2.0, np.float32), np.zeros(2, int)),) * 3, r"\[0, 1\]"),
        (((np.zeros((2, 784), np.float32), np.array([0, 10])),) * 3, r"0\.\.9"),
        (((np.zeros((2, 784), np.float32), np.zeros(3, int)),) * 3, "2 images but 3 labels"),
        (((np.zeros((2, 784), np.float32), np.zeros(2, float)),) * 3, "integer array"),
    ],
)
def test_layout_errors(obj, match):
    with pytest.raises(DataFormatError, match=match):
        check_mnist_layout(obj, "f.pkl.gz")

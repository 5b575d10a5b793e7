"""The public data API (dlt_lib.data): loaders, sources, sample, shared variables."""

import copy
import gzip
import hashlib
import pickle
from importlib import resources
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from support import real_cache_state, require

from dlt_lib import data
from dlt_lib.download import MNIST_IDX_FILES, Resource
from dlt_lib.formats import DataFormatError, UnsafePickleError

pytestmark = pytest.mark.usefixtures("data_env", "real_cache_untouched")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _canonical(monkeypatch, path: Path):
    """Make ``path`` the 'published' mnist.pkl.gz, as far as load_mnist can tell."""
    monkeypatch.setattr(data, "MNIST_PKL", Resource("mnist.pkl.gz", md5=_md5(path), size=path.stat().st_size))


def _check_form(splits, sizes=None):
    assert isinstance(splits, data.DataSplits) and isinstance(splits, tuple) and len(splits) == 3
    for split in splits:
        assert isinstance(split, data.Split)
        X, y = split
        assert X.dtype == np.float32 and y.dtype == np.int64
        assert X.ndim == 2 and X.shape[1] == 784 and y.shape == (len(X),)
        assert 0.0 <= X.min() and X.max() <= 1.0
        assert y.min() >= 0 and y.max() <= 9
    if sizes is not None:
        assert [s.n for s in splits] == list(sizes)


# ----------------------------------------------------------------------------
# load_mnist: explicit path and the cache
# ----------------------------------------------------------------------------


def test_explicit_path_non_canonical_is_loaded_and_labelled(tmp_path, write_mnist_pkl, capsys):
    path, ref = write_mnist_pkl(tmp_path / "my-mnist.pkl.gz")
    splits = data.load_mnist(path)
    _check_form(splits, (60, 12, 12))
    for split, (X, y) in zip(splits, ref):
        np.testing.assert_array_equal(split.X, X)
        np.testing.assert_array_equal(split.y, y)
    assert "NOT the canonical mnist.pkl.gz" in splits.source and str(path) in splits.source
    assert capsys.readouterr().out.strip() == f"MNIST: {splits.source}"  # one line


def test_explicit_path_canonical(tmp_path, write_mnist_pkl, monkeypatch):
    path, _ = write_mnist_pkl(tmp_path / "mnist.pkl.gz")
    _canonical(monkeypatch, path)
    splits = data.load_mnist(str(path), verbose=False)
    assert "MD5 verified" in splits.source and "NOT" not in splits.source


def test_explicit_directory_with_pickle_or_idx(tmp_path, write_mnist_pkl, write_idx_set):
    (tmp_path / "a").mkdir()
    write_mnist_pkl(tmp_path / "a" / "mnist.pkl.gz")
    assert data.load_mnist(tmp_path / "a", verbose=False)[0].n == 60
    write_idx_set(tmp_path / "b", n_train=36, n_test=7)
    splits = data.load_mnist(tmp_path / "b", verbose=False)
    _check_form(splits, (30, 6, 7))
    assert "checksums differ" in splits.source


def test_explicit_path_missing(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_mnist(tmp_path / "nope.pkl.gz")
    msg = str(info.value)
    assert "nope.pkl.gz" in msg and "no such file" in msg and "a02cd19f81d51c426d7ca14024243ce9" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetNotFoundError, match="neither mnist.pkl.gz nor all four"):
        data.load_mnist(tmp_path / "empty")


def test_explicit_path_with_wrong_layout_is_refused(tmp_path, write_mnist_pkl):
    X = np.zeros((3, 100), np.float32)
    y = np.zeros(3, np.int64)
    path, _ = write_mnist_pkl(tmp_path / "wrong.pkl.gz", ((X, y),) * 3)
    with pytest.raises(DataFormatError, match=r"shape \(n, 784\)"):
        data.load_mnist(path)


def test_explicit_hostile_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    # GLOBAL posix.system, the string, TUPLE1, REDUCE: what pickling os.system('touch ...') gives.
    payload = b"\x80\x02cposix\nsystem\nX" + len(f"touch {marker}").to_bytes(4, "little")
    payload += f"touch {marker}".encode() + b"\x85R."
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(payload))
    with pytest.raises(UnsafePickleError, match="posix.system"):
        data.load_mnist(path)
    assert not marker.exists()


def test_truncated_pickle_via_load_mnist(tmp_path, write_mnist_pkl):
    path, _ = write_mnist_pkl(tmp_path / "mnist.pkl.gz")
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        data.load_mnist(path)


def test_cache_directory_discovery(data_env, write_mnist_pkl, monkeypatch, closed_port_url):
    data_env.mkdir()
    path, _ = write_mnist_pkl(data_env / "mnist.pkl.gz")
    _canonical(monkeypatch, path)
    # Mirrors that would fail prove the cache is used without the network.
    splits = data.load_mnist(mirrors=[closed_port_url + "/x"], verbose=False)
    _check_form(splits, (60, 12, 12))
    assert "cache directory" in splits.source and str(data_env) in splits.source


def test_data_home_argument_overrides_env(tmp_path, write_mnist_pkl, monkeypatch):
    home = tmp_path / "elsewhere"
    home.mkdir()
    path, _ = write_mnist_pkl(home / "mnist.pkl.gz")
    _canonical(monkeypatch, path)
    assert str(home) in data.load_mnist(data_home=home, offline=True, verbose=False).source


def test_cached_file_with_wrong_checksum_is_not_used(data_env, write_mnist_pkl, monkeypatch, capsys):
    data_env.mkdir()
    write_mnist_pkl(data_env / "mnist.pkl.gz")  # its MD5 is not the published one
    monkeypatch.setenv("DLT_OFFLINE", "1")
    splits = data.load_mnist()
    assert splits.name == "mnist-sample"
    assert "Ignoring" in capsys.readouterr().out


def test_cached_idx_files_are_used(data_env, write_idx_set, monkeypatch):
    write_idx_set(data_env / "mnist", n_train=60, n_test=12)
    files = {
        k: Resource(r.filename, md5=_md5(data_env / "mnist" / r.filename)) for k, r in MNIST_IDX_FILES.items()
    }
    monkeypatch.setattr(data, "MNIST_IDX_FILES", files)
    splits = data.load_mnist(offline=True, verbose=False)
    _check_form(splits, (50, 10, 12))
    assert splits.name == "mnist" and "IDX files in the cache directory" in splits.source


# ----------------------------------------------------------------------------
# Offline: the embedded sample
# ----------------------------------------------------------------------------


def test_offline_env_gives_the_sample_with_a_notice(monkeypatch, capsys, data_env):
    monkeypatch.setenv("DLT_OFFLINE", "1")
    splits = data.load_mnist()
    # one line, which says which data and why; how to get the full set is in .notice
    assert (
        capsys.readouterr().out
        == "MNIST: the 10,000-digit sample shipped in dlt_lib (offline: DLT_OFFLINE=1)\n"
    )
    assert splits.name == "mnist-sample" and splits.source.startswith(data.SAMPLE_SOURCE)
    assert str(data_env) in splits.notice and "mnist.pkl.gz" in splits.notice
    _check_form(splits, (7142, 1429, 1429))
    n_train, n_valid, n_test = (s.n for s in splits)
    assert n_train + n_valid + n_test == 10_000
    assert abs(n_train / n_valid - 5) < 0.01 and n_valid == n_test
    for split in splits:
        assert set(np.unique(split.y)) == set(range(10))
        # Real images: each has ink, none is blank or saturated.
        assert (split.X.max(axis=1) > 0.5).all() and (split.X.mean(axis=1) < 0.5).all()
    # Pixels are bytes / 255, exactly.
    k = splits.train.X * 255
    np.testing.assert_allclose(k, np.round(k), atol=1e-4)


def test_offline_and_asking_for_the_full_data_is_an_error(monkeypatch, data_env):
    monkeypatch.setenv("DLT_OFFLINE", "1")
    with pytest.raises(data.DatasetNotFoundError, match="downloads are off.*mnist.pkl.gz"):
        data.load_mnist(sample_fallback=False)


def test_fashion_mnist_not_required_degrades_with_one_sentence(monkeypatch, tmp_path, data_env, capsys):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "not-installed")
    monkeypatch.setenv("DLT_OFFLINE", "1")
    with pytest.raises(data.DatasetNotFoundError, match="not installed"):
        data.load_fashion_mnist()
    assert data.load_fashion_mnist(required=False) is None
    out = capsys.readouterr().out
    assert out.startswith("Fashion-MNIST: not available") and out.count("\n") == 1


def test_offline_argument_quiet_warns():
    with pytest.warns(data.SampleFallbackWarning, match="offline=True"):
        splits = data.load_mnist(offline=True, verbose=False)
    assert splits.name == "mnist-sample"


def test_load_mnist_sample_matches_the_npz_and_its_provenance(capsys):
    splits = data.load_mnist_sample()
    assert capsys.readouterr().out.strip() == f"MNIST: {data.SAMPLE_SOURCE}"
    npz_path = resources.files("dlt_lib").joinpath("datasets/mnist_sample.npz")
    with npz_path.open("rb") as f, np.load(f) as npz:
        for part, split in zip(("train", "valid", "test"), splits):
            assert npz[f"X_{part}"].dtype == np.uint8 and npz[f"y_{part}"].dtype == np.uint8
            np.testing.assert_array_equal(split.y, npz[f"y_{part}"])
            np.testing.assert_array_equal(np.rint(split.X * 255).astype(np.uint8), npz[f"X_{part}"])
    # The sample is what PROVENANCE.md says it is.
    digest = hashlib.sha256(npz_path.read_bytes()).hexdigest()
    provenance = resources.files("dlt_lib").joinpath("datasets/PROVENANCE.md").read_text()
    assert digest in provenance
    all_y = np.concatenate([s.y for s in splits])
    counts = np.bincount(all_y, minlength=10)
    assert counts.tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert ", ".join(f"{c:,}" for c in counts) in provenance


def test_sample_splits_are_disjoint():
    splits = data.load_mnist_sample(verbose=False)
    rows = [{bytes(np.rint(x * 255).astype(np.uint8)) for x in s.X} for s in splits]
    assert not rows[0] & rows[1] and not rows[0] & rows[2] and not rows[1] & rows[2]


# ----------------------------------------------------------------------------
# Fashion-MNIST
# ----------------------------------------------------------------------------


def test_fashion_mnist_from_debian_package(capsys):
    present = all(
        (data.DEBIAN_FASHION_MNIST_DIR / r.filename).is_file() for r in data.FASHION_MNIST_FILES.values()
    )
    require(
        present, "Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)"
    )
    splits = data.load_fashion_mnist()
    assert "Debian package dataset-fashion-mnist" in capsys.readouterr().out
    _check_form(splits, (50_000, 10_000, 10_000))
    assert splits.name == "fashion-mnist" and splits.class_names == data.FASHION_MNIST_CLASSES
    train_valid = np.concatenate([splits.train.y, splits.valid.y])
    assert np.bincount(train_valid, minlength=10).tolist() == [6000] * 10
    assert np.bincount(splits.test.y, minlength=10).tolist() == [1000] * 10
    for split in splits:
        assert split.X.min() == 0.0 and split.X.max() == 1.0


def test_fashion_mnist_from_env_dir(tmp_path, monkeypatch, write_idx_set):
    arrays = write_idx_set(tmp_path / "fm", n_train=42, n_test=5)
    monkeypatch.setenv("DLT_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    splits = data.load_fashion_mnist(verbose=False)
    _check_form(splits, (35, 7, 5))
    assert "DLT_FASHION_MNIST_DIR" in splits.source
    np.testing.assert_array_equal(splits.test.y, arrays["t10k"][1])


def test_fashion_mnist_env_dir_incomplete(tmp_path, monkeypatch, write_idx_set):
    write_idx_set(tmp_path / "fm")
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("DLT_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    with pytest.raises(data.DatasetNotFoundError, match="lacks t10k-labels-idx1-ubyte.gz"):
        data.load_fashion_mnist()


def test_fashion_mnist_offline_and_absent_says_how_to_install(tmp_path, monkeypatch, data_env):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "not-installed")
    monkeypatch.setenv("DLT_OFFLINE", "1")
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_fashion_mnist()
    msg = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in msg and str(data_env / "fashion-mnist") in msg
    assert "DLT_OFFLINE" in msg


def test_fashion_mnist_truncated_idx_is_an_error(tmp_path, monkeypatch, write_idx_set):
    write_idx_set(tmp_path / "fm")
    bad = tmp_path / "fm" / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(gzip.decompress(bad.read_bytes())[:-10]))
    monkeypatch.setenv("DLT_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte.gz.*expected"):
        data.load_fashion_mnist()


# ----------------------------------------------------------------------------
# load_dataset, DataSplits
# ----------------------------------------------------------------------------


def test_load_dataset_names(monkeypatch):
    monkeypatch.setenv("DLT_OFFLINE", "1")
    assert data.load_dataset("mnist-sample", verbose=False).name == "mnist-sample"
    # The options common to all loaders are accepted for the sample too (the CLI passes them).
    assert (
        data.load_dataset("mnist-sample", offline=True, data_home="x", verbose=False).name == "mnist-sample"
    )
    with pytest.raises(TypeError):
        data.load_dataset("mnist-sample", mirrors=[])
    with pytest.warns(data.SampleFallbackWarning):
        assert data.load_dataset("MNIST", verbose=False).name == "mnist-sample"
    assert set(data.DATASETS) == {"mnist", "mnist-sample", "fashion-mnist"}
    with pytest.raises(
        ValueError, match="dataset name must be one of 'mnist', 'mnist-sample', 'fashion-mnist'; got 'cifar'"
    ):
        data.load_dataset("cifar")


def test_load_dataset_fashion_dispatch(tmp_path, monkeypatch, write_idx_set):
    write_idx_set(tmp_path / "fm")
    monkeypatch.setenv("DLT_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    assert data.load_dataset("fashion_mnist", verbose=False).name == "fashion-mnist"


def test_datasplits_behaves_like_a_tuple_and_survives_pickle():
    splits = data.load_mnist_sample(verbose=False)
    train, valid, test = splits
    assert train is splits.train and valid is splits.valid and test is splits.test
    X, y = train
    assert X is train.X and train.n == len(y)
    assert "mnist-sample" in repr(splits) and "7,142" in repr(splits)
    for clone in (pickle.loads(pickle.dumps(splits)), copy.deepcopy(splits)):
        assert (
            isinstance(clone, data.DataSplits) and clone.source == splits.source and clone.name == splits.name
        )
        np.testing.assert_array_equal(clone.test.X, test.X)
    assert data.CLASS_NAMES["fashion-mnist"][0] == "T-shirt/top" and len(data.FASHION_MNIST_CLASSES) == 10


# ----------------------------------------------------------------------------
# Shared variables
# ----------------------------------------------------------------------------


def _toy_split(n=10, d=4):
    X = np.arange(n * d, dtype=np.float64).reshape(n, d) / (n * d)
    y = np.arange(n) % 3
    return data.Split(X, y)


def test_shared_dataset_types():
    shared = data.shared_dataset(_toy_split(), name="train")
    assert shared.X.dtype == pytensor.config.floatX == "float32"
    assert shared.y.dtype == "int32"  # no floatX-and-cast hack
    assert shared.n == 10 and shared.X.name == "train_X" and shared.y.name == "train_y"
    np.testing.assert_array_equal(shared.y.get_value(), _toy_split().y)


def test_minibatch_slices_compile_and_return_the_right_rows():
    split = _toy_split(n=10)
    shared = data.shared_dataset(split)
    index = pt.lscalar("index")
    X_mb, y_mb = shared.minibatch(index, 4)
    f = pytensor.function([index], [X_mb, y_mb], mode="FAST_COMPILE")
    for i in range(shared.n_batches(4)):
        X_i, y_i = f(i)
        np.testing.assert_allclose(X_i, split.X[i * 4 : (i + 1) * 4].astype(np.float32))
        np.testing.assert_array_equal(y_i, split.y[i * 4 : (i + 1) * 4])
    X_last, _ = f(2)  # the partial batch that drop_last leaves out
    assert len(X_last) == 2


def test_labels_are_usable_as_indices():
    # The negative log-likelihood picks p[i, y_i]: y must be an integer tensor.
    split = _toy_split(n=6, d=3)
    shared = data.shared_dataset(split)
    index = pt.lscalar()
    X_mb, y_mb = shared.minibatch(index, 3)
    picked = X_mb[pt.arange(y_mb.shape[0]), y_mb]
    f = pytensor.function([index], picked, mode="FAST_COMPILE")
    expected = split.X[3:6][np.arange(3), split.y[3:6]]
    np.testing.assert_allclose(f(1), expected.astype(np.float32))


def test_n_batches():
    shared = data.shared_dataset(_toy_split(n=10))
    assert (
        shared.n_batches(4) == 2 and shared.n_batches(4, drop_last=False) == 3 and shared.n_batches(10) == 1
    )
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, 10\]"):
            shared.n_batches(bad)
    with pytest.raises(ValueError, match="got 11. A minibatch must fit in the 10 examples"):
        shared.minibatch(0, 11)


def test_shared_dataset_by_minibatch_gives_the_same_rows_as_the_slice():
    split = _toy_split(n=10)
    flat, blocks = data.shared_dataset(split), data.shared_dataset(split, batch_size=4)
    assert blocks.X.type.shape == (2, 4, split[0].shape[1]) and blocks.y.type.shape == (2, 4)
    assert (blocks.n, blocks.n_batches(), blocks.batch_size) == (8, 2, 4)  # the last 10 % 4 are left out
    index = pt.lscalar("i")
    both = pytensor.function([index], [*flat.minibatch(index, 4), *blocks.minibatch(index)])
    for i in range(2):
        Xf, yf, Xb, yb = both(i)
        np.testing.assert_array_equal(Xf, Xb)
        np.testing.assert_array_equal(yf, yb)
    with pytest.raises(ValueError, match="stored in minibatches of 4; got batch_size=5"):
        blocks.minibatch(0, 5)


def test_shared_dataset_rejects_bad_input():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match="integer labels"):
        data.shared_dataset((X, np.zeros(4)))
    with pytest.raises(ValueError, match=r"y of shape \(4,\)"):
        data.shared_dataset((X, np.zeros(3, int)))
    with pytest.raises(ValueError, match=r"shape \(n, n_features\)"):
        data.shared_dataset((np.zeros(4), np.zeros(4, int)))


def test_shared_splits():
    shared = data.shared_splits(data.load_mnist_sample(verbose=False))
    assert [s.n for s in shared] == [7142, 1429, 1429]
    assert shared.train.X.name == "train_X" and shared.test.y.dtype == "int32"
    with pytest.raises(ValueError, match="expects \\(train, valid, test\\)"):
        data.shared_splits([_toy_split()])


def test_a_download_lands_in_the_test_cache_not_the_real_one(
    data_env, http_server, write_mnist_pkl, tmp_path, monkeypatch
):
    before = real_cache_state()
    path, _ = write_mnist_pkl(tmp_path / "served.pkl.gz")
    _canonical(monkeypatch, path)
    http_server.routes["/mnist.pkl.gz"] = path.read_bytes()
    splits = data.load_mnist(mirrors=[f"{http_server.url}/mnist.pkl.gz"], idx_mirrors=[], verbose=False)
    assert "downloaded from" in splits.source
    assert (data_env / "mnist.pkl.gz").read_bytes() == path.read_bytes()  # the cache the test chose
    assert real_cache_state() == before  # and nothing in the real one


@pytest.mark.parametrize(
    "source, short",
    [
        (f"{data.SAMPLE_SOURCE} (no network: none of the 5 download URLs answered)", data.SAMPLE_SOURCE),
        ("mnist.pkl.gz at /tmp/x (MD5 verified)", "mnist.pkl.gz at /tmp/x"),
        ("MNIST IDX files in /data (read as is)", "MNIST IDX files in /data"),
        ("arrays passed by the caller", "arrays passed by the caller"),
        ("", ""),
    ],
)
def test_short_source_drops_only_the_closing_remark(source, short):
    assert data.short_source(source) == short

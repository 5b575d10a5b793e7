"""Mirror downloads against a real HTTP server on 127.0.0.1 (dlt_lib.download).

No test here reaches beyond 127.0.0.1.
"""

import hashlib
import http.client
import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from dlt_lib import data
from dlt_lib.download import (
    MNIST_IDX_FILES,
    MNIST_PKL,
    Attempt,
    DownloadError,
    Resource,
    _is_connection_error,
    cache_dir,
    download,
    download_from,
    fetch,
    is_offline,
    verify_file,
)

pytestmark = [pytest.mark.network_free_server, pytest.mark.usefixtures("real_cache_untouched")]

PAYLOAD = bytes(range(256)) * 40  # 10 KiB
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
CORRUPT = PAYLOAD[:-1] + b"\x00"  # same size, one byte wrong


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def listing(directory: Path):
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


@pytest.fixture
def mirrors(http_server, closed_port_url):
    """Three mirrors of payload.bin: one down, one corrupt, one good."""
    http_server.routes["/bad/payload.bin"] = CORRUPT
    http_server.routes["/good/payload.bin"] = PAYLOAD
    return [
        f"{closed_port_url}/payload.bin",
        f"{http_server.url}/bad/payload.bin",
        f"{http_server.url}/good/payload.bin",
    ]


def test_down_corrupt_good(tmp_path, mirrors, capsys):
    path, url = download_from(mirrors, "payload.bin", md5=PAYLOAD_MD5, size=len(PAYLOAD), data_home=tmp_path)
    assert url == mirrors[2]
    assert path == tmp_path / "payload.bin"
    assert path.read_bytes() == PAYLOAD
    # Exactly the good file: no temporary file, no corrupt copy left behind.
    assert listing(tmp_path) == ["payload.bin"]
    assert capsys.readouterr().out == ""  # the failed mirrors are not reported: one worked


def test_all_bad_lists_every_url_and_how_to_place_the_file(tmp_path, mirrors, http_server):
    urls = [mirrors[0], mirrors[1], f"{http_server.url}/missing/payload.bin"]
    with pytest.raises(DownloadError) as info:
        download(urls, "payload.bin", md5=PAYLOAD_MD5, data_home=tmp_path, verbose=False)
    err = info.value
    assert [a.url for a in err.attempts] == urls
    assert [a.connection for a in err.attempts] == [True, False, False]
    assert not err.all_connection_errors  # a server answered: a real error, no offline fallback
    msg = str(err)
    for url in urls:
        assert url in msg
    assert "connection refused" in msg and "MD5" in msg and "HTTP 404" in msg
    assert str(tmp_path / "payload.bin") in msg and PAYLOAD_MD5 in msg
    assert listing(tmp_path) == []


def test_only_connection_errors_are_flagged_as_offline(tmp_path, closed_port_url, silent_port_url):
    urls = [f"{closed_port_url}/a", f"{silent_port_url}/b"]
    with pytest.raises(DownloadError) as info:
        download(urls, "x.bin", md5=PAYLOAD_MD5, data_home=tmp_path, timeout=0.5, verbose=False)
    err = info.value
    assert all(a.connection for a in err.attempts), err.attempts
    assert err.all_connection_errors
    assert "timed out" in err.attempts[1].reason
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "exc,connection",
    [
        (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")), True),  # DNS
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), True),
        (urllib.error.URLError(TimeoutError("timed out")), True),
        (TimeoutError("timed out"), True),  # while reading the body
        (ConnectionResetError(104, "reset"), True),
        (urllib.error.HTTPError("http://x", 503, "Service Unavailable", {}, None), False),
        (http.client.IncompleteRead(b"abc", 10), False),
        (PermissionError(13, "cannot write the cache"), False),  # our disk, not the network
    ],
)
def test_connection_error_classification(exc, connection):
    # DNS failures are tested here, not for real: that would need a DNS query.
    assert _is_connection_error(exc) is connection


def test_content_length_mismatch_is_skipped_without_reading(tmp_path, http_server):
    http_server.routes["/p.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="server announced 10,240 bytes, expected 10,241"):
        download([f"{http_server.url}/p.bin"], "p.bin", md5=None, size=len(PAYLOAD) + 1, data_home=tmp_path)


def test_sha256_is_checked_too(tmp_path, http_server):
    http_server.routes["/p.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="SHA-256"):
        download([f"{http_server.url}/p.bin"], "p.bin", md5=PAYLOAD_MD5, sha256="0" * 64, data_home=tmp_path)
    assert listing(tmp_path) == []


def test_download_needs_a_checksum_and_urls(tmp_path):
    with pytest.raises(ValueError, match="no md5, size or sha256"):
        download(["http://127.0.0.1:9/x"], "x", md5=None, data_home=tmp_path)
    with pytest.raises(ValueError, match="at least one URL"):
        download([], "x", md5=PAYLOAD_MD5, data_home=tmp_path)


def test_fetch_uses_a_good_cache_and_replaces_a_bad_one(tmp_path, http_server):
    http_server.routes["/d/payload.bin"] = PAYLOAD
    res = Resource("payload.bin", md5=PAYLOAD_MD5, size=len(PAYLOAD))
    cached = tmp_path / "sub" / "payload.bin"
    cached.parent.mkdir()
    cached.write_bytes(CORRUPT)
    path, origin = fetch(res, [f"{http_server.url}/d/"], subdir="sub", data_home=tmp_path, verbose=False)
    assert origin == f"{http_server.url}/d/payload.bin" and path.read_bytes() == PAYLOAD
    assert http_server.hits == ["/d/payload.bin"]
    path, origin = fetch(res, [f"{http_server.url}/d/"], subdir="sub", data_home=tmp_path, verbose=False)
    assert origin == "cache" and http_server.hits == ["/d/payload.bin"]  # no second request
    assert listing(tmp_path) == ["sub/payload.bin"]


def test_verify_file_messages(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(PAYLOAD)
    assert verify_file(p, PAYLOAD_MD5, len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest()) is None
    assert verify_file(p, PAYLOAD_MD5, 5) == "size 10,240 bytes, expected 5"
    assert verify_file(p, "0" * 32).startswith(f"MD5 {PAYLOAD_MD5}, expected 000")


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("DLT_DATA_HOME", raising=False)
    assert cache_dir() == tmp_path / "xdg" / "dlt_lib"
    monkeypatch.setenv("DLT_DATA_HOME", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_is_offline(monkeypatch):
    monkeypatch.delenv("DLT_OFFLINE", raising=False)
    assert is_offline() is False
    monkeypatch.setenv("DLT_OFFLINE", "1")
    assert is_offline() is True
    assert is_offline(False) is False  # the argument wins
    monkeypatch.setenv("DLT_OFFLINE", "0")
    assert is_offline() is False
    monkeypatch.setenv("DLT_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="DLT_OFFLINE='maybe'"):
        is_offline()


def test_published_checksums_are_well_formed():
    # Guards against a typo in the constants (each checked against the
    # search results quoted in download.py).
    for res in [MNIST_PKL, *MNIST_IDX_FILES.values()]:
        assert len(res.md5) == 32 and int(res.md5, 16) >= 0
        assert res.sha256 is None or len(res.sha256) == 64
    assert MNIST_PKL.md5 == "a02cd19f81d51c426d7ca14024243ce9" and MNIST_PKL.size == 16_168_813


def test_download_error_attributes(tmp_path):
    err = DownloadError(
        "f.gz", tmp_path, "abc", [Attempt("u1", "refused", True), Attempt("u2", "refused", True)]
    )
    assert err.all_connection_errors and len(err.attempts) == 2
    assert not DownloadError("f.gz", tmp_path, "abc", []).all_connection_errors


# ----------------------------------------------------------------------------
# load_mnist / load_fashion_mnist over the local server
# ----------------------------------------------------------------------------


@pytest.fixture
def served_mnist_pkl(tmp_path, write_mnist_pkl, http_server, monkeypatch):
    """A synthetic mnist.pkl.gz on the server, with its MD5 made the 'published' one."""
    path, splits = write_mnist_pkl(tmp_path / "served.pkl.gz")
    body = path.read_bytes()
    http_server.routes["/good/mnist.pkl.gz"] = body
    http_server.routes["/bad/mnist.pkl.gz"] = body[:-1] + bytes([body[-1] ^ 1])
    monkeypatch.setattr(data, "MNIST_PKL", Resource("mnist.pkl.gz", md5=md5(body), size=len(body)))
    return splits


def test_load_mnist_downloads_over_mirrors(data_env, http_server, closed_port_url, served_mnist_pkl):
    good = f"{http_server.url}/good/mnist.pkl.gz"
    mirrors = [f"{closed_port_url}/mnist.pkl.gz", f"{http_server.url}/bad/mnist.pkl.gz", good]
    splits = data.load_mnist(mirrors=mirrors, idx_mirrors=[], verbose=False)
    assert splits.name == "mnist" and good in splits.source and "MD5 verified" in splits.source
    np.testing.assert_array_equal(splits.train.X, served_mnist_pkl[0][0])
    assert listing(data_env) == ["mnist.pkl.gz"]
    # Now it is cached: the next call finds it without the network.
    again = data.load_mnist(mirrors=[f"{closed_port_url}/x"], verbose=False)
    assert "cache directory" in again.source


def test_load_mnist_falls_back_to_idx_files(data_env, http_server, write_idx_set, tmp_path, monkeypatch):
    arrays = write_idx_set(tmp_path / "served", n_train=60, n_test=12)
    files = {}
    for key, res in MNIST_IDX_FILES.items():
        body = (tmp_path / "served" / res.filename).read_bytes()
        http_server.routes[f"/idx/{res.filename}"] = body
        files[key] = Resource(res.filename, md5=md5(body), size=len(body))
    monkeypatch.setattr(data, "MNIST_IDX_FILES", files)
    splits = data.load_mnist(
        mirrors=[f"{http_server.url}/nothing/mnist.pkl.gz"],
        idx_mirrors=[f"{http_server.url}/idx/"],
        verbose=False,
    )
    assert [s.n for s in splits] == [50, 10, 12]  # 60 -> 50 + 10, like 60,000 -> 50,000 + 10,000
    images, labels = arrays["train"]
    np.testing.assert_allclose(splits.valid.X, images[50:].reshape(10, 784) / 255, rtol=1e-6)
    np.testing.assert_array_equal(splits.train.y, labels[:50])
    assert "IDX files downloaded from" in splits.source
    assert sorted(listing(data_env)) == sorted(f"mnist/{r.filename}" for r in files.values())


def test_load_mnist_bad_files_raise_instead_of_falling_back(
    data_env, http_server, closed_port_url, served_mnist_pkl
):
    mirrors = [f"{closed_port_url}/mnist.pkl.gz", f"{http_server.url}/bad/mnist.pkl.gz"]
    with pytest.raises(DownloadError) as info:
        data.load_mnist(mirrors=mirrors, idx_mirrors=[closed_port_url + "/"], verbose=False)
    msg = str(info.value)
    assert all(u in msg for u in mirrors) and "IDX files" in msg
    assert listing(data_env) == []


def test_load_mnist_without_network_uses_the_sample(data_env, closed_port_url, capsys):
    splits = data.load_mnist(mirrors=[f"{closed_port_url}/a"], idx_mirrors=[f"{closed_port_url}/"])
    assert splits.name == "mnist-sample"
    # One line: the pickle's URL and the first IDX file's failed (no server: the rest are not tried).
    expected = f"{data.SAMPLE_SOURCE} (no network: none of the 2 download URLs answered)"
    assert splits.source == expected and capsys.readouterr().out == f"MNIST: {expected}\n"
    assert str(data_env) in splits.notice and "mnist.pkl.gz" in splits.notice
    with pytest.warns(data.SampleFallbackWarning, match="no network"):
        data.load_mnist(mirrors=[f"{closed_port_url}/a"], idx_mirrors=[], verbose=False)


def test_asking_for_the_full_data_without_network_lists_every_url(data_env, closed_port_url):
    mirrors = [f"{closed_port_url}/a", f"{closed_port_url}/b"]
    with pytest.raises(DownloadError) as info:
        data.load_mnist(mirrors=mirrors, idx_mirrors=[f"{closed_port_url}/"], sample_fallback=False)
    message = str(info.value)
    assert (
        all(url in message for url in mirrors) and f"{closed_port_url}/train-images-idx3-ubyte.gz" in message
    )
    assert message.count("connection refused") == 3


def test_load_fashion_mnist_downloads(data_env, http_server, write_idx_set, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "not-installed")
    write_idx_set(tmp_path / "served", n_train=30, n_test=6)
    files = {}
    for key, res in data.FASHION_MNIST_FILES.items():
        body = (tmp_path / "served" / res.filename).read_bytes()
        http_server.routes[f"/f/{res.filename}"] = body
        files[key] = Resource(res.filename, md5=md5(body), size=len(body))
    monkeypatch.setattr(data, "FASHION_MNIST_FILES", files)
    splits = data.load_fashion_mnist(mirrors=[f"{http_server.url}/f/"], verbose=False)
    assert [s.n for s in splits] == [25, 5, 6] and splits.name == "fashion-mnist"
    assert splits.class_names[9] == "Ankle boot"
    again = data.load_fashion_mnist(mirrors=[], verbose=False)  # from the cache now
    assert "cache directory" in again.source


def test_load_fashion_mnist_download_failure_says_how_to_install(
    data_env, closed_port_url, tmp_path, monkeypatch
):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "not-installed")
    with pytest.raises(DownloadError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist(mirrors=[f"{closed_port_url}/"], verbose=False)

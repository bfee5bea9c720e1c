"""Downloads, against a local HTTP server on 127.0.0.1 (never the real network).

.venv/bin/python -m pytest tests/data/test_download.py -q
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch

from cifar_files import write_cifar10
from convtrain.base.errors import DownloadError
from convtrain.data.dataset_registry import DATASETS, DataFile, load_dataset
from convtrain.data.download import download_file, md5_of
from idx_files import NAMES, write_idx_set


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


class _ShortBody(_Quiet):
    """Promises 1000 bytes and sends 10, as a dropped connection would."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"0123456789")


@pytest.fixture
def serve(tmp_path):
    """serve(handler=None) -> base URL of a server on 127.0.0.1 publishing tmp_path/www."""
    servers = []
    (tmp_path / "www").mkdir()

    def start(handler=None):
        handler = handler or functools.partial(_Quiet, directory=str(tmp_path / "www"))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()  # quick shutdown
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _publish(tmp_path: Path, name: str, payload: bytes) -> str:
    (tmp_path / "www" / name).write_bytes(payload)
    return hashlib.md5(payload).hexdigest()


def test_download_success(tmp_path, serve):
    md5 = _publish(tmp_path, "file.bin", b"abc" * 100_000)
    dest = download_file(serve() + "file.bin", tmp_path / "data" / "file.bin", md5, "file.bin")
    assert dest == tmp_path / "data" / "file.bin" and md5_of(dest) == md5
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]  # no .part left


def test_md5_mismatch_deletes_the_download(tmp_path, serve):
    _publish(tmp_path, "file.bin", b"tampered")
    url, dest = serve() + "file.bin", tmp_path / "data" / "file.bin"
    with pytest.raises(DownloadError) as e:
        download_file(url, dest, "0" * 32, "file.bin")
    assert url in str(e.value) and "deleted" in str(e.value) and "\n" not in str(e.value)
    assert list(dest.parent.iterdir()) == []


@pytest.mark.parametrize("failure", ["404", "refused", "short"])
def test_network_failure_says_what_to_place_where(tmp_path, serve, failure):
    if failure == "refused":
        with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/file.bin"
    else:
        url = (serve(_ShortBody) if failure == "short" else serve()) + "file.bin"
    dest = tmp_path / "data" / "file.bin"
    with pytest.raises(DownloadError) as e:
        download_file(url, dest, "", "file.bin")
    message = str(e.value)
    assert "\n" not in message and url in message and f"place file.bin by hand at {dest}" in message
    assert list(dest.parent.iterdir()) == []  # neither the file nor a .part


def test_fashion_mnist_downloads_missing_files(tmp_path, serve, monkeypatch):
    written = write_idx_set(tmp_path / "www")
    files = tuple(
        dataclasses.replace(f, md5=md5_of(tmp_path / "www" / f.name)) for f in DATASETS["fashion-mnist"].files
    )
    spec = dataclasses.replace(DATASETS["fashion-mnist"], url_base=serve(), files=files)
    monkeypatch.setitem(DATASETS, "fashion-mnist", spec)
    data = load_dataset("fashion-mnist", str(tmp_path / "data"))
    assert data.notes == []  # downloaded files match their md5
    assert torch.equal(data.train.labels, torch.as_tensor(written[NAMES[1]]))
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(n + ".gz" for n in NAMES)
    assert gzip.decompress((raw / (NAMES[0] + ".gz")).read_bytes())[:4] == (2051).to_bytes(4, "big")


def test_cifar_download_then_unpack(tmp_path, serve, monkeypatch):
    files = write_cifar10(tmp_path / "www", per_batch=4, archive=True)
    md5 = md5_of(files.path)
    spec = dataclasses.replace(DATASETS["cifar10"], url_base=serve(), files=(DataFile(files.path.name, md5),))
    monkeypatch.setitem(DATASETS, "cifar10", spec)
    data = load_dataset("cifar10", str(tmp_path / "data"))
    assert data.notes == [] and torch.equal(data.test.labels, torch.from_numpy(files.test_labels))
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
    ]


def test_cifar_download_with_wrong_md5_leaves_nothing(tmp_path, serve, monkeypatch):
    write_cifar10(tmp_path / "www", per_batch=4, archive=True)  # not the official archive: md5 differs
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(DATASETS["cifar10"], url_base=serve()))
    with pytest.raises(DownloadError, match="not the official c58f30108f718f92721af3b95e74349a"):
        load_dataset("cifar10", str(tmp_path / "data"))
    assert list((tmp_path / "data").iterdir()) == []

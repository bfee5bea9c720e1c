"""IDX datasets: bundled MNIST, local MNIST / Fashion-MNIST copies, and every kind of broken IDX file.

.venv/bin/python -m pytest tests/data/test_idx.py -q
"""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from convtrain.base.errors import DataError
from convtrain.data.dataset_registry import DATASETS, DataWarning, load_dataset
from convtrain.data.formats.idx import parse_idx, read_idx
from convtrain.data.info import channel_stats
from helpers import REPO
from idx_files import NAMES, idx_bytes, write_idx_set

MNIST_TRAIN_COUNTS = [
    5923,
    6742,
    5958,
    6131,
    5842,
    5421,
    5918,
    6265,
    5851,
    5949,
]  # published per-digit counts
BUNDLED = REPO / "src" / "convtrain" / "data" / "bundled"


# ----- MNIST -----


def test_mnist_bundled_needs_no_data_dir(tmp_path):
    data = load_dataset("mnist", str(tmp_path))
    assert (len(data.train), len(data.test), data.num_classes) == (60000, 10000, 10)
    assert data.train.images.shape[1:] == (1, 28, 28) and data.train.images.dtype == torch.uint8
    assert data.train.labels.dtype == torch.int64
    assert torch.bincount(data.train.labels).tolist() == MNIST_TRAIN_COUNTS
    # Compare against a direct read of the bundled gzip files, bypassing the IDX parser.
    labels = np.frombuffer(
        gzip.decompress((BUNDLED / "t10k-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8
    )
    assert torch.equal(data.test.labels, torch.from_numpy(labels.astype(np.int64)))
    first = np.frombuffer(
        gzip.decompress((BUNDLED / "train-images-idx3-ubyte.gz").read_bytes()), np.uint8, 784, 16
    )
    assert torch.equal(data.train.images[0, 0], torch.from_numpy(first.reshape(28, 28).copy()))
    mean, std = channel_stats(data.train.images)  # the registry's constants match the data
    assert mean[0] == pytest.approx(DATASETS["mnist"].mean[0], abs=1e-4)
    assert std[0] == pytest.approx(DATASETS["mnist"].std[0], abs=1e-4)
    assert data.notes == [] and "bundled" in data.source
    assert list(tmp_path.iterdir()) == []  # nothing cached


def test_mnist_local_copy_is_used_and_checked_by_content(tmp_path):
    written = write_idx_set(tmp_path / "MNIST" / "raw", gz=False)
    with pytest.warns(DataWarning, match="not the official|differ from the official"):
        data = load_dataset("mnist", str(tmp_path))
    assert len(data.train) == 12 and data.source == str(tmp_path / "MNIST" / "raw")
    assert np.array_equal(data.test.images[:, 0].numpy(), written[NAMES[2]])


def test_mnist_from_shared_copy_through_env(shared_datasets, monkeypatch):
    monkeypatch.setenv("CONVTRAIN_DATA", str(shared_datasets))
    data = load_dataset("mnist")
    assert data.source == str(shared_datasets / "MNIST" / "raw")
    assert data.notes == []  # recompressed files, but their contents carry the official md5
    assert (len(data.train), len(data.test)) == (60000, 10000)


# ----- Fashion-MNIST -----


def test_fashion_shared_copy_warns_about_md5_and_loads(shared_datasets):
    with pytest.warns(DataWarning, match="md5"):
        data = load_dataset("fashion-mnist", str(shared_datasets), download=False)
    assert len(data.notes) == 1  # one line for the four files
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    assert torch.bincount(data.train.labels).tolist() == [6000] * 10
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_local_files_gz_or_raw(tmp_path, gz):
    written = write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=gz)
    # Only the published .gz files have a known md5: a differing one is noted, never refused.
    with pytest.warns(DataWarning, match="md5") if gz else contextlib.nullcontext():
        data = load_dataset("fashion-mnist", str(tmp_path), download=False)
    assert np.array_equal(data.train.images[:, 0].numpy(), written[NAMES[0]])
    assert np.array_equal(data.test.labels.numpy(), written[NAMES[3]])
    assert len(data.notes) == (1 if gz else 0)


def test_fashion_missing_without_download_says_where(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", str(tmp_path), download=False)
    message = str(e.value)
    assert "\n" not in message and str(tmp_path / "FashionMNIST" / "raw") in message
    assert all(name + ".gz" in message for name in NAMES)


# ----- broken files -----


def _load_broken(tmp_path: Path, name: str, payload: bytes) -> str:
    folder = tmp_path / "FashionMNIST" / "raw"
    write_idx_set(folder)
    (folder / (name + ".gz")).write_bytes(payload)
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", str(tmp_path), download=False)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_wrong_magic_number(tmp_path):
    payload = gzip.compress(idx_bytes(np.arange(12) % 10, magic=2051))
    message = _load_broken(tmp_path, NAMES[1], payload)
    assert "train-labels-idx1-ubyte.gz" in message and "2051" in message and "2049" in message


def test_truncated_idx_contents(tmp_path):
    payload = gzip.compress(idx_bytes(np.zeros((12, 28, 28)))[:-100])
    message = _load_broken(tmp_path, NAMES[0], payload)
    assert "train-images-idx3-ubyte.gz" in message and "truncated" in message


@pytest.mark.parametrize("cut", ["gzip", "garbage"])
def test_corrupt_gzip(tmp_path, cut):
    good = gzip.compress(idx_bytes(np.zeros((12, 28, 28))))
    payload = good[: len(good) // 2] if cut == "gzip" else good[:10] + b"\xff" * 50
    message = _load_broken(tmp_path, NAMES[0], payload)
    assert "train-images-idx3-ubyte.gz" in message and "corrupt or truncated" in message


def test_images_and_labels_counts_differ(tmp_path):
    message = _load_broken(tmp_path, NAMES[1], gzip.compress(idx_bytes(np.arange(11) % 10)))
    assert "12 images but 11 labels" in message


def test_label_out_of_range(tmp_path):
    message = _load_broken(tmp_path, NAMES[3], gzip.compress(idx_bytes(np.full(6, 10))))
    assert "labels span 10..10" in message and "10 classes" in message


@pytest.mark.parametrize(
    "raw, problem",
    [
        (b"\x00\x00", "too short"),
        ((2051).to_bytes(4, "big") + b"\x00\x00\x00\x01", "header"),
        (idx_bytes(np.zeros((2, 4, 4))) + b"\x00", "trailing"),
        (idx_bytes(np.zeros((2, 4, 5))), "square"),
    ],
)
def test_parse_idx_rejects(raw, problem):
    with pytest.raises(DataError, match=problem):
        parse_idx(raw, "x.idx", "images")


def test_read_idx_plain_file(tmp_path):
    labels = np.array([3, 1, 4, 1, 5])
    (tmp_path / "labels").write_bytes(idx_bytes(labels))
    assert read_idx(tmp_path / "labels", "labels").tolist() == labels.tolist()

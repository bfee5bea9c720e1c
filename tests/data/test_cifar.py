"""CIFAR-10/100: official-format folders and archives, safe unpickling, safe unpacking, broken files.

.venv/bin/python -m pytest tests/data/test_cifar.py -q
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cifar_files import CIFAR10_CLASSES, make_images, py2_pickle, write_cifar10, write_cifar100
from convtrain.base.errors import DataError
from convtrain.data.dataset_registry import DATASETS, DataWarning, load_dataset
from convtrain.data.formats import cifar
from convtrain.data.formats.cifar import load_pickle


def _same(data, files) -> None:
    assert torch.equal(data.train.images, torch.from_numpy(files.train_images))
    assert torch.equal(data.train.labels, torch.from_numpy(files.train_labels))
    assert torch.equal(data.test.images, torch.from_numpy(files.test_images))
    assert torch.equal(data.test.labels, torch.from_numpy(files.test_labels))


def _load_error(root: Path, name: str = "cifar10") -> str:
    with pytest.raises(DataError) as e:
        load_dataset(name, str(root), download=False)
    assert "\n" not in str(e.value)
    return str(e.value)


# ----- reading -----


def test_cifar10_folder(tmp_path):
    files = write_cifar10(tmp_path, per_batch=20)
    data = load_dataset("cifar10", str(tmp_path), download=False)
    _same(data, files)
    assert data.classes == list(CIFAR10_CLASSES) and (data.channels, data.image_size) == (3, 32)
    assert data.mean == DATASETS["cifar10"].mean
    assert data.source == str(tmp_path / "cifar-10-batches-py")
    # written here, so none is the official file: said once, and read all the same
    assert data.notes == [
        f"{tmp_path / 'cifar-10-batches-py'}: data_batch_1, data_batch_2, data_batch_3, data_batch_4, "
        "data_batch_5, test_batch differ from the official cifar10 files (md5): reading them since their "
        "format checks out"
    ]


def test_cifar10_archive_is_unpacked_once_and_kept(tmp_path):
    files = write_cifar10(tmp_path, per_batch=10, archive=True)
    with pytest.warns(DataWarning, match="md5"):  # a test archive is not the official one
        data = load_dataset("cifar10", str(tmp_path), download=False)
    _same(data, files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    again = load_dataset("cifar10", str(tmp_path), download=False)  # now from the folder: its batches' md5
    _same(again, files)
    assert again.source == str(tmp_path / "cifar-10-batches-py")
    assert (
        len(again.notes) == 1 and "test_batch differ from the official cifar10 files (md5)" in again.notes[0]
    )


@pytest.mark.parametrize("archive", [False, True])
def test_cifar100_fine_labels(tmp_path, archive):
    files = write_cifar100(tmp_path, per_batch=40, archive=archive)
    with pytest.warns(DataWarning, match="md5") if archive else contextlib.nullcontext():
        data = load_dataset("cifar100", str(tmp_path), download=False)
    _same(data, files)
    assert data.num_classes == 100 and data.classes[:2] == ["apple", "aquarium_fish"]
    assert (tmp_path / "cifar-100-python" / "train").is_file()


def test_converted_cifar_recomputes_mean_std(tmp_path):
    files = write_cifar10(tmp_path, per_batch=10)
    data = load_dataset("cifar10", str(tmp_path), image_size=16, channels=1)
    assert data.train.images.shape == (50, 1, 16, 16) and (data.channels, data.image_size) == (1, 16)
    pixels = data.train.images.double().numpy() / 255
    assert data.mean[0] == pytest.approx(pixels.mean(), abs=1e-6)
    assert data.std[0] == pytest.approx(pixels.std(), abs=1e-6)
    gray = np.round(
        np.tensordot([0.299, 0.587, 0.114], files.test_images.astype(np.float64), axes=([0], [1]))
    )
    assert abs(load_dataset("cifar10", str(tmp_path), channels=1).test.images[:, 0].numpy() - gray).max() <= 1


def test_read_only_root_reads_archive_without_keeping_it(tmp_path, monkeypatch):
    files = write_cifar10(tmp_path, per_batch=5, archive=True)
    real_mkdtemp = cifar.tempfile.mkdtemp

    def refuse_in_root(*args, **kwargs):
        if kwargs.get("dir") is not None:
            raise PermissionError(13, "Permission denied", str(kwargs["dir"]))
        return real_mkdtemp(*args, **kwargs)

    monkeypatch.setattr(cifar.tempfile, "mkdtemp", refuse_in_root)
    with pytest.warns(DataWarning) as record:
        data = load_dataset("cifar10", str(tmp_path))
    _same(data, files)
    assert any("is not writable" in str(w.message) for w in record)
    assert [p.name for p in tmp_path.iterdir()] == ["cifar-10-python.tar.gz"]


def test_python3_pickles_with_str_keys_still_load(tmp_path):
    # A user's re-saved copy: Python 3 pickles, str keys, numpy ints; protocols 2 and 4.
    files = write_cifar10(tmp_path, per_batch=6)
    folder = tmp_path / "cifar-10-batches-py"
    for i, protocol in ((1, 2), (2, 4)):
        batch = pickle.loads((folder / f"data_batch_{i}").read_bytes(), encoding="latin1")
        batch["labels"] = [np.int64(v) for v in batch["labels"]]
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=protocol))
    _same(load_dataset("cifar10", str(tmp_path)), files)


def test_missing_files_without_download(tmp_path):
    message = _load_error(tmp_path)
    assert (
        "cifar-10-python.tar.gz" in message and "cifar-10-batches-py" in message and str(tmp_path) in message
    )


# ----- pickles that try to run code -----


class _RunsCode:
    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("payload", ["system", "eval", "codecs"])
def test_pickle_that_runs_code_is_refused(tmp_path, payload):
    write_cifar10(tmp_path, per_batch=4)
    marker = tmp_path / "ran"
    evil = {
        "system": _RunsCode(os.system, f"touch {marker}"),
        "eval": _RunsCode(eval, f"open({str(marker)!r}, 'w')"),
        "codecs": _RunsCode(__import__("codecs").encode, "eJw=", "base64"),
    }[payload]
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps({b"data": evil}, protocol=2))
    message = _load_error(tmp_path)
    assert "refusing" in message and "data_batch_2" in message
    assert not marker.exists()


def test_load_pickle_refuses_any_other_class():
    raw = pickle.dumps(torch.nn.Linear(1, 1), protocol=2)
    with pytest.raises(DataError, match="refusing to load torch"):
        load_pickle(raw, "x")


# ----- broken batches -----


def _batch(**overrides) -> dict:
    images, labels = make_images(8, 10, seed=5)
    batch = {
        b"batch_label": b"b",
        b"labels": labels.tolist(),
        b"data": images.reshape(8, 3072),
        b"filenames": [],
    }
    batch.update({k.encode(): v for k, v in overrides.items()})
    return batch


@pytest.mark.parametrize(
    "raw, problem",
    [
        (lambda good: good[: len(good) // 2], "not a readable CIFAR pickle"),
        (lambda good: b"not a pickle at all", "not a readable CIFAR pickle"),
        (lambda good: py2_pickle([1, 2, 3]), "expected a dict"),
        (lambda good: py2_pickle({b"data": _batch()[b"data"]}), "no 'labels' entry"),
        (lambda good: py2_pickle(_batch(data=np.zeros((8, 3000), np.uint8))), r"expected \(N, 3072\) uint8"),
        (
            lambda good: pickle.dumps(_batch(data=np.zeros((8, 3072), np.float32)), 2),
            r"expected \(N, 3072\) uint8",
        ),
        (lambda good: py2_pickle(_batch(labels=[0] * 7)), "8 integers"),
        (lambda good: py2_pickle(_batch(labels=[10] * 8)), "outside 0..9"),
    ],
)
def test_broken_batch_is_refused(tmp_path, raw, problem):
    write_cifar10(tmp_path, per_batch=8)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(raw(path.read_bytes()))
    message = _load_error(tmp_path)
    assert "test_batch" in message
    assert re.search(problem, message)


def test_missing_batch_is_named(tmp_path):
    write_cifar10(tmp_path, per_batch=4)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    assert "lacks data_batch_3" in _load_error(tmp_path)


@pytest.mark.parametrize(
    "names",
    [[b"a", b"b"], [b"a"] * 10, [[1]] * 10, b"airplane"],
    ids=["two", "repeated", "lists", "not-a-list"],
)
def test_meta_with_bad_class_names(tmp_path, names):
    write_cifar10(tmp_path, per_batch=4)
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(py2_pickle({b"label_names": names}))
    assert "10 distinct class names" in _load_error(tmp_path)


def test_meta_names_are_used(tmp_path):
    write_cifar10(tmp_path, per_batch=4)
    names = [f"thing{i}".encode() for i in range(10)]
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(py2_pickle({b"label_names": names}))
    assert load_dataset("cifar10", str(tmp_path)).classes == [f"thing{i}" for i in range(10)]


# ----- archives -----


def _archive(root: Path, extra: tarfile.TarInfo, payload: bytes = b"x", first: bool = False) -> None:
    """The official-format archive with one extra member, written after (or before) the real ones."""
    write_cifar10(root / "src", per_batch=4)
    root.mkdir(exist_ok=True)
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        if first:
            tar.addfile(extra, io.BytesIO(payload) if extra.isfile() else None)
        tar.add(root / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        if not first:
            tar.addfile(extra, io.BytesIO(payload) if extra.isfile() else None)
    for path in sorted((root / "src").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (root / "src").rmdir()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("/tmp/convtrain-test-absolute-member"),
        _member("cifar-10-batches-py/../../escaped"),
        _member("../escaped"),
        _member("cifar-10-batches-py/link", tarfile.SYMTYPE, "../../escaped"),
        _member("cifar-10-batches-py/hard", tarfile.LNKTYPE, "/etc/passwd"),
        _member("cifar-10-batches-py/fifo", tarfile.FIFOTYPE),
    ],
    ids=["absolute", "dotdot-nested", "dotdot", "symlink", "hardlink", "fifo"],
)
@pytest.mark.parametrize("first", [True, False])
def test_unsafe_archive_members_are_refused(tmp_path, member, first):
    root = tmp_path / "data"
    _archive(root, member, first=first)
    assert member.name in {m.name for m in tarfile.open(root / "cifar-10-python.tar.gz").getmembers()}
    message = _load_error(root)
    assert "refusing member" in message and repr(member.name) in message
    assert [p.name for p in root.iterdir()] == [
        "cifar-10-python.tar.gz"
    ]  # no temp folder, no half-unpacked data
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/convtrain-test-absolute-member").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_archive(tmp_path, damage):
    write_cifar10(tmp_path, per_batch=4, archive=True)
    path = tmp_path / "cifar-10-python.tar.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if damage == "truncated" else b"\x1f\x8b" + os.urandom(2000))
    message = _load_error(tmp_path)
    assert "cannot unpack" in message and str(path) in message
    assert [p.name for p in tmp_path.iterdir()] == ["cifar-10-python.tar.gz"]


def test_archive_with_bad_batch_leaves_nothing_unpacked(tmp_path):
    write_cifar10(tmp_path / "src", per_batch=4)
    (tmp_path / "src" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"broken")
    root = tmp_path / "data"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    message = _load_error(root)
    assert "data_batch_1" in message and "cifar-10-python.tar.gz" in message
    assert [p.name for p in root.iterdir()] == ["cifar-10-python.tar.gz"]


def test_archive_without_the_folder(tmp_path):
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.addfile(_member("data_batch_1"), io.BytesIO(b"x"))
    assert "has no cifar-10-batches-py/" in _load_error(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["cifar-10-python.tar.gz"]

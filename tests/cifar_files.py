"""Write small CIFAR-10/100 datasets in the exact format of the official python files, for tests.

The official files were written by Python 2's cPickle with protocol 2: dicts with byte-string keys,
numpy uint8 arrays pickled through numpy.core.multiarray._reconstruct, labels as lists of ints.
Python 3's pickle cannot write byte strings that way (it routes them through _codecs.encode), so
py2_pickle below emits the opcodes itself. The archives hold the same member layout as the official ones.

    from cifar_files import write_cifar10   # tests/ is on sys.path under pytest
    files = write_cifar10(tmp_path, per_batch=20, archive=True)   # tmp_path/cifar-10-python.tar.gz
    python -m pytest tests/data/test_cifar.py -q
"""

from __future__ import annotations

import io
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_COARSE = 20
_BATCH_SIZE = 1000  # cPickle writes lists and dicts in runs of 1000 items


@dataclass
class CifarFiles:
    """What a writer produced: the archive or folder, and the images and labels inside it."""

    path: Path
    train_images: np.ndarray  # (N, 3, 32, 32) uint8
    train_labels: np.ndarray  # (N,) int64
    test_images: np.ndarray
    test_labels: np.ndarray


# ----- a protocol-2 pickle writer that writes byte strings as Python 2 did -----


def py2_pickle(obj: object) -> bytes:
    """Pickle dicts, lists, ints, bytes, None and uint8 numpy arrays exactly as Python 2's cPickle did."""
    out = io.BytesIO()
    out.write(b"\x80\x02")
    _write(out, obj, [0])
    out.write(b".")
    return out.getvalue()


def _put(out: io.BytesIO, memo: list[int]) -> None:
    n = memo[0]
    out.write(b"q" + bytes([n]) if n < 256 else b"r" + struct.pack("<I", n))
    memo[0] += 1


def _write(out: io.BytesIO, obj: object, memo: list[int]) -> None:
    if obj is None:
        out.write(b"N")
    elif isinstance(obj, bool):
        out.write(b"\x88" if obj else b"\x89")
    elif isinstance(obj, int):
        if 0 <= obj < 256:
            out.write(b"K" + bytes([obj]))
        elif 0 <= obj < 65536:
            out.write(b"M" + struct.pack("<H", obj))
        else:
            out.write(b"J" + struct.pack("<i", obj))
    elif isinstance(obj, bytes):
        out.write(b"U" + bytes([len(obj)]) if len(obj) < 256 else b"T" + struct.pack("<I", len(obj)))
        out.write(obj)
        _put(out, memo)
    elif isinstance(obj, list):
        out.write(b"]")
        _put(out, memo)
        for start in range(0, len(obj), _BATCH_SIZE):
            out.write(b"(")
            for item in obj[start : start + _BATCH_SIZE]:
                _write(out, item, memo)
            out.write(b"e")
    elif isinstance(obj, dict):
        out.write(b"}")
        _put(out, memo)
        items = list(obj.items())
        for start in range(0, len(items), _BATCH_SIZE):
            out.write(b"(")
            for key, value in items[start : start + _BATCH_SIZE]:
                _write(out, key, memo)
                _write(out, value, memo)
            out.write(b"u")
    elif isinstance(obj, np.ndarray) and obj.dtype == np.uint8:
        _write_array(out, obj, memo)
    else:
        raise TypeError(f"py2_pickle cannot write {type(obj).__name__}")


def _write_array(out: io.BytesIO, array: np.ndarray, memo: list[int]) -> None:
    # _reconstruct(ndarray, (0,), 'b') makes an empty array; BUILD then sets
    # (version 1, shape, dtype('u1', 0, 1), fortran=False, raw bytes) as its state.
    out.write(b"cnumpy.core.multiarray\n_reconstruct\n")
    _put(out, memo)
    out.write(b"cnumpy\nndarray\n")
    _put(out, memo)
    out.write(b"K\x00\x85")
    _write(out, b"b", memo)
    out.write(b"\x87R")
    _put(out, memo)
    out.write(b"(K\x01")
    for dim in array.shape:
        _write(out, dim, memo)
    out.write({1: b"\x85", 2: b"\x86", 3: b"\x87"}[array.ndim])
    out.write(b"cnumpy\ndtype\n")
    _put(out, memo)
    _write(out, b"u1", memo)
    out.write(b"K\x00K\x01\x87R")
    _put(out, memo)
    out.write(b"(K\x03")
    _write(out, b"|", memo)
    out.write(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89")
    _write(out, np.ascontiguousarray(array).tobytes(), memo)
    out.write(b"tb")


# ----- learnable images: each class has its own colour layout -----


def make_images(count: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 3, 32, 32) uint8 images and int64 labels; every class appears, each with its own 4x4 colour template."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    rng.shuffle(labels)
    templates = rng.integers(0, 200, size=(classes, 3, 4, 4)).repeat(8, axis=2).repeat(8, axis=3)
    images = templates[labels] + rng.integers(0, 56, size=(count, 3, 32, 32))
    return images.astype(np.uint8), labels.astype(np.int64)


def _batch(images: np.ndarray, labels: np.ndarray, label_keys: dict[bytes, list[int]], name: bytes) -> dict:
    return {
        b"batch_label": name,
        **label_keys,
        b"data": images.reshape(len(images), 3072),
        b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(images))],
    }


def _write_tree(root: Path, folder: str, files: dict[str, bytes], archive: str | None) -> Path:
    if archive is None:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, payload in files.items():
            (root / folder / name).write_bytes(payload)
        return root / folder
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / archive, "w:gz") as tar:
        info = tarfile.TarInfo(folder)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        for name, payload in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mode = len(payload), 0o644
            tar.addfile(info, io.BytesIO(payload))
    return root / archive


def write_cifar10(root: Path, per_batch: int = 20, archive: bool = False, seed: int = 0) -> CifarFiles:
    """cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta, readme.html) or its .tar.gz under root."""
    train_x, train_y = make_images(5 * per_batch, 10, seed)
    test_x, test_y = make_images(per_batch, 10, seed + 1)
    files = {
        "batches.meta": py2_pickle(
            {
                b"num_cases_per_batch": per_batch,
                b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                b"num_vis": 3072,
            }
        )
    }
    for i in range(5):
        part = slice(i * per_batch, (i + 1) * per_batch)
        name = f"training batch {i + 1} of 5".encode()
        files[f"data_batch_{i + 1}"] = py2_pickle(
            _batch(train_x[part], train_y[part], {b"labels": train_y[part].tolist()}, name)
        )
    files["test_batch"] = py2_pickle(
        _batch(test_x, test_y, {b"labels": test_y.tolist()}, b"testing batch 1 of 1")
    )
    files["readme.html"] = b"<meta HTTP-EQUIV='REFRESH' content='0; url=index.html'>\n"
    path = _write_tree(
        Path(root), "cifar-10-batches-py", files, "cifar-10-python.tar.gz" if archive else None
    )
    return CifarFiles(path, train_x, train_y, test_x, test_y)


def write_cifar100(root: Path, per_batch: int = 20, archive: bool = False, seed: int = 0) -> CifarFiles:
    """cifar-100-python/ (train with 5 * per_batch images, test with per_batch, meta) or its .tar.gz under root."""
    from convtrain.data.dataset_registry import DATASETS

    fine_names = DATASETS["cifar100"].classes
    train_x, train_y = make_images(5 * per_batch, 100, seed)
    test_x, test_y = make_images(per_batch, 100, seed + 1)

    def labels(y: np.ndarray) -> dict[bytes, list[int]]:
        return {b"fine_labels": y.tolist(), b"coarse_labels": (y % CIFAR100_COARSE).tolist()}

    files = {
        "meta": py2_pickle(
            {
                b"fine_label_names": [c.encode() for c in fine_names],
                b"coarse_label_names": [f"superclass_{i}".encode() for i in range(CIFAR100_COARSE)],
            }
        ),
        "train": py2_pickle(_batch(train_x, train_y, labels(train_y), b"training batch 1 of 1")),
        "test": py2_pickle(_batch(test_x, test_y, labels(test_y), b"testing batch 1 of 1")),
    }
    path = _write_tree(Path(root), "cifar-100-python", files, "cifar-100-python.tar.gz" if archive else None)
    return CifarFiles(path, train_x, train_y, test_x, test_y)

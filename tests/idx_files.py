"""Write small IDX datasets (the MNIST file format) for tests, independently of convtrain's reader.

from idx_files import write_idx_set   # tests/ is on sys.path under pytest
write_idx_set(tmp_path / "FashionMNIST" / "raw")
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file for a uint8 array, written independently of the reader: magic, big-endian dims, data."""
    magic = magic if magic is not None else 0x0800 + array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, n_train: int = 12, n_test: int = 6, gz: bool = True, seed: int = 0) -> dict:
    """The four files of an MNIST-style dataset in folder; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        NAMES[0]: rng.integers(0, 256, (n_train, 28, 28)),
        NAMES[1]: np.arange(n_train) % 10,
        NAMES[2]: rng.integers(0, 256, (n_test, 28, 28)),
        NAMES[3]: np.arange(n_test)[::-1] % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return arrays

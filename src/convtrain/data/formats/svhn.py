"""SVHN (house-number digits) from the official `train_32x32.mat` and `test_32x32.mat`.

Each .mat (MATLAB 5 format) holds X, uint8 of shape (32, 32, 3, N), and y, (N, 1) labels 1..10
where 10 stands for the digit 0; they become (N, 3, 32, 32) images and labels 0..9. Read with
scipy.io.loadmat, which only decodes arrays (nothing in the file is run); needs the `svhn` extra:
pip install 'convtrain[svhn]'.

    python -c "from convtrain.data.dataset_registry import load_dataset; print(load_dataset('svhn', download=False))"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from convtrain.base.errors import DataError, reason
from convtrain.data.dataset import ImageData, Split
from convtrain.data.download import download_file, md5_matches
from convtrain.data.spec import DatasetSpec


def _loadmat(path: Path) -> dict:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError("reading SVHN's .mat files needs scipy: pip install 'convtrain[svhn]'") from None
    try:
        return loadmat(path, variable_names=("X", "y"))
    except Exception as e:  # scipy raises many kinds (MatReadError, ValueError, NotImplementedError for v7.3)
        raise DataError(f"cannot read {path} as a MATLAB 5 .mat file ({reason(e)}); replace it") from None


def read_mat(path: Path) -> Split:
    """One official SVHN .mat file as a Split: (N, 3, 32, 32) uint8 images, labels 0..9."""
    mat = _loadmat(path)
    lacking = [k for k in ("X", "y") if k not in mat]
    if lacking:
        raise DataError(
            f"{path} lacks {' and '.join(lacking)}: an SVHN .mat file holds X (32, 32, 3, N) and y (N, 1)"
        )
    x, y = mat["X"], mat["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(
            f"{path}: X is {x.shape} {x.dtype}, expected (32, 32, 3, N) uint8 as in the official files"
        )
    if y.dtype.kind not in "iuf" or y.shape not in ((x.shape[3], 1), (x.shape[3],)):
        raise DataError(f"{path}: y is {y.shape} {y.dtype}, expected ({x.shape[3]}, 1) labels, one per image")
    y = y.reshape(-1)
    if len(y) == 0 or not np.isin(y, np.arange(1, 11)).all():
        raise DataError(f"{path}: y must hold labels 1..10 (10 for the digit 0), one per image")
    labels = torch.from_numpy(y.astype(np.int64) % 10)  # 10 -> 0, 1..9 stay
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))  # (N, 3, 32, 32)
    return Split(labels=labels, images=images)


def load_svhn(spec: DatasetSpec, root: Path, download: bool) -> ImageData:
    """SVHN's train and test splits from `<root>/<spec.folder>/`, downloaded (md5-checked) if missing and allowed."""
    folder = root / spec.folder
    notes, splits = [], []
    for f in spec.files:
        path = folder / f.name
        if not path.is_file():
            if not download:
                raise DataError(
                    f"{spec.name} not found: place {f.name} in {folder}, or allow downloads (drop --no-download)"
                )
            download_file(spec.url_base + f.name, path, f.md5, f.name)
        elif not md5_matches(path, f.md5):
            notes.append(
                f"{path} differs from the official file (md5): reading it since its format checks out"
            )
        splits.append(read_mat(path))
    return ImageData(
        name=spec.name,
        classes=list(spec.classes),
        channels=3,
        image_size=32,
        mean=spec.mean,
        std=spec.std,
        train=splits[0],
        test=splits[1],
        source=str(folder),
        notes=notes,
    )

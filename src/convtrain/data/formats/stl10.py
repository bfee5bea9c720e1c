"""STL-10 from the official binary files: 96x96 RGB photos, 10 classes, the labelled splits only.

`stl10_binary/` holds train_X.bin and test_X.bin (uint8, each image 3 x 96 x 96 stored column by
column), train_y.bin and test_y.bin (one uint8 label 1..10 per image) and class_names.txt. The
official stl10_binary.tar.gz is unpacked without its 100,000 unlabelled images (unlabeled_X.bin).

    python -c "from convtrain.data.dataset_registry import load_dataset; print(load_dataset('stl10', download=False))"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from convtrain.base.errors import DataError, reason
from convtrain.data.dataset import ImageData, Split
from convtrain.data.formats.cifar import read_folder_or_archive
from convtrain.data.spec import DatasetSpec

SIDE = 96
PIXELS = 3 * SIDE * SIDE
UNLABELLED = ("unlabeled_X.bin",)


def _read(path: Path, shown: str) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {shown} ({reason(e)}); replace it") from None


def read_split(folder: Path, name: str, num_classes: int, shown: str) -> Split:
    """One labelled split (`train` or `test`): (N, 3, 96, 96) uint8 images and labels 0..9."""
    x_path, y_path = folder / f"{name}_X.bin", folder / f"{name}_y.bin"
    lacking = [p.name for p in (x_path, y_path) if not p.is_file()]
    if lacking:
        raise DataError(f"{shown} lacks {', '.join(lacking)}: it must hold the official STL-10 binary files")
    x, y = _read(x_path, f"{shown}/{x_path.name}"), _read(y_path, f"{shown}/{y_path.name}")
    if len(x) == 0 or len(x) % PIXELS:
        raise DataError(
            f"{shown}/{x_path.name} is {len(x)} bytes, not a whole number of 3x96x96 images; replace it"
        )
    if len(y) != len(x) // PIXELS:
        raise DataError(
            f"{shown}: {len(x) // PIXELS} images in {x_path.name} but {len(y)} labels in {y_path.name}"
        )
    if y.min() < 1 or y.max() > num_classes:
        raise DataError(f"{shown}/{y_path.name}: labels span {y.min()}..{y.max()}, outside 1..{num_classes}")
    images = x.reshape(-1, 3, SIDE, SIDE).transpose(0, 1, 3, 2)  # stored column by column: (N, 3, H, W)
    return Split(labels=torch.from_numpy(y.astype(np.int64) - 1), images=torch.from_numpy(images.copy()))


def _class_names(folder: Path, spec: DatasetSpec, shown: str) -> list[str]:
    path = folder / "class_names.txt"
    if not path.is_file():
        return list(spec.classes)
    try:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {shown}/class_names.txt ({reason(e)}); replace or delete it") from None
    if len(names) != len(spec.classes) or len(set(names)) != len(names):
        raise DataError(f"{shown}/class_names.txt must list {len(spec.classes)} distinct names, one per line")
    return names


def read_binary(folder: Path, spec: DatasetSpec, shown: str) -> tuple[Split, Split, list[str]]:
    """Train and test splits and class names from an stl10_binary folder."""
    classes = _class_names(folder, spec, shown)
    return (
        read_split(folder, "train", len(classes), shown),
        read_split(folder, "test", len(classes), shown),
        classes,
    )


def load_stl10(spec: DatasetSpec, root: Path, download: bool) -> ImageData:
    """STL-10 from `<root>/stl10_binary/`, else from stl10_binary.tar.gz in root (downloaded if allowed)."""
    notes: list[str] = []
    (train, test, classes), source = read_folder_or_archive(
        spec, root, download, notes, read_binary, UNLABELLED
    )
    return ImageData(
        name=spec.name,
        classes=classes,
        channels=3,
        image_size=SIDE,
        mean=spec.mean,
        std=spec.std,
        train=train,
        test=test,
        source=source,
        notes=notes,
    )

"""Datasets saved as a NumPy .npz (`npz:PATH`): training arrays, optional validation and test arrays, class names.

Keys match case-insensitively, in either layout:
- x_train, y_train [, x_val, y_val] [, x_test, y_test]  (Keras, the tutorials; x_valid/x_validation too)
- train_images, train_labels [, val_images, val_labels] [, test_images, test_labels]  (MedMNIST)
A `classes` or `label_names` array of strings names the classes, else they are '0'..'K-1'. The
file's own validation arrays become the validation split, as a folder's val/ does.

Images may be (N, H, W, C), (N, C, H, W) or (N, H, W), with C 1 or 3; uint8, other integers in
0..255, or floats in 0..1 (scaled by 255) or 0..255. Labels are integers from 0, as (N,) or (N, 1),
or one-hot (N, K) rows (turned into indices, with a note). Nothing is unpickled (allow_pickle=False).

    python -c "import numpy as np; np.savez('d.npz', X_train=np.zeros((8, 28, 28), 'u1'), y_train=np.arange(8)[:, None] % 2)"
    python -c "from convtrain.data.formats.npz import read_npz; print(read_npz('d.npz'))"
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from convtrain.base.errors import DataError, reason
from convtrain.data.dataset import ImageData, Split
from convtrain.data.formats.image_folder import first_few
from convtrain.data.info import channel_stats

SPLIT_KEYS = {  # (images, labels) per split, in every layout accepted; compared in lower case
    "train": (("x_train", "y_train"), ("train_images", "train_labels")),
    "val": (
        ("x_val", "y_val"),
        ("x_valid", "y_valid"),
        ("x_validation", "y_validation"),
        ("val_images", "val_labels"),
    ),
    "test": (("x_test", "y_test"), ("test_images", "test_labels")),
}
NAME_KEYS = ("classes", "label_names")
LAYOUTS = (
    "x_train, y_train [x_val, y_val, x_test, y_test] (any case), or MedMNIST's train_images, train_labels "
    "[val_images, val_labels, test_images, test_labels]; optionally classes or label_names"
)


def _pick(files: list[str], path: Path) -> dict[str, str]:
    """{'x_train': key in the file, 'y_train': ..., 'names': ...} for the keys the file has, in any case."""
    lower = {key.lower(): key for key in files}
    picked = {}
    for split, pairs in SPLIT_KEYS.items():
        for x, y in pairs:
            if x in lower and y in lower:
                picked[f"x_{split}"], picked[f"y_{split}"] = lower[x], lower[y]
                break
            if x in lower or y in lower:
                have, lack = (lower[x], y) if x in lower else (lower[y], x)
                raise DataError(f"{path} has {have} but lacks {lack}: save both or neither ({LAYOUTS})")
    if "x_train" not in picked:
        keys = ", ".join(files) or "no arrays"
        raise DataError(f"{path} holds {keys}: none is a training set; the layouts accepted are {LAYOUTS}")
    names = [lower[k] for k in NAME_KEYS if k in lower]
    if names:
        picked["names"] = names[0]
    return picked


def _load_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays the file has, under the names x_train, y_train, x_val, ..., names, and their keys in the file."""
    if not path.is_file():
        raise DataError(f"npz dataset {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(
                f"{path} holds a single array, not an .npz with x_train and y_train; save it with np.savez"
            )
        with loaded:
            keys = _pick(loaded.files, path)
            return {name: loaded[key] for name, key in keys.items()}, keys
    except (
        OSError,
        ValueError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        MemoryError,
        zipfile.BadZipFile,
        zlib.error,
    ) as e:  # not a zip, cut off, object arrays, a damaged zip header (encrypted, unknown compression)
        raise DataError(
            f"cannot read {path} as an .npz of plain arrays ({reason(e)}); save it with np.savez"
        ) from None


def _images(x: np.ndarray, key: str, path: Path) -> torch.Tensor:
    """(N, C, H, W) uint8 from any accepted layout and dtype."""
    if x.ndim == 3:
        x = x[:, None]  # (N, 1, H, W)
    elif x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
        pass  # already (N, C, H, W)
    elif x.ndim == 4 and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    else:
        raise DataError(
            f"{path}: {key} has shape {x.shape}; expected (N, H, W, C), (N, C, H, W) or (N, H, W), C 1 or 3"
        )
    if len(x) == 0 or x.shape[2] != x.shape[3]:
        raise DataError(f"{path}: {key} has shape {x.shape}; expected at least one square image")
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x))
    if x.dtype.kind not in "iuf":
        raise DataError(f"{path}: {key} has dtype {x.dtype}; expected uint8, integers 0..255, or floats")
    low, high = float(x.min()), float(x.max())  # NaN makes both comparisons below fail
    if not (low >= 0 and high <= 255):
        raise DataError(f"{path}: {key} values span {low}..{high}; expected 0..255 (or 0..1 for floats)")
    if x.dtype.kind == "f":
        x = x * 255 if high <= 1 else x  # a float array within 0..1 is on the 0-1 scale
        x = np.round(x)
    return torch.from_numpy(np.ascontiguousarray(x.astype(np.uint8)))


def _labels(y: np.ndarray, key: str, count: int, path: Path, one_hot: list[str]) -> torch.Tensor:
    """(N,) int64 from (N,), (N, 1) or one-hot (N, K) labels; keys read as one-hot are added to one_hot."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # Keras' load_data() and MedMNIST keep labels as (N, 1)
    elif y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "biuf" and np.isin(y, (0, 1)).all():
        if not (y.sum(axis=1) == 1).all():
            raise DataError(
                f"{path}: {key} has rows with no 1 or several 1s: multi-label data, but convtrain trains "
                "single-label classifiers; save one class index per image"
            )
        one_hot.append(key)
        y = y.argmax(axis=1)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(
            f"{path}: {key} has shape {y.shape} and dtype {y.dtype}; expected (N,) or (N, 1) integers, or one-hot (N, K)"
        )
    if len(y) != count:
        raise DataError(f"{path}: {key} has {len(y)} labels but the images number {count}")
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: {key} has label {y.min()}; labels count from 0")
    return torch.from_numpy(y.astype(np.int64))


def _class_names(arrays: dict[str, np.ndarray], num_labels: int, key: str, path: Path) -> list[str]:
    if "names" not in arrays:
        return [str(i) for i in range(num_labels)]
    names = arrays["names"]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(
            f"{path}: {key} must be a 1-D array of strings, got shape {names.shape} dtype {names.dtype}"
        )
    try:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    except UnicodeDecodeError:
        raise DataError(f"{path}: {key} holds bytes that are not UTF-8 text; save the names as str") from None
    if len(set(names)) != len(names):
        raise DataError(f"{path}: {key} has repeated names; each class needs its own")
    if num_labels > len(names):
        raise DataError(f"{path}: labels go up to {num_labels - 1} but {key} names only {len(names)}")
    return names


def read_npz(path: Path) -> ImageData:
    """An .npz dataset as ImageData, checked for keys, shapes, lengths and label range."""
    path = Path(path)
    arrays, keys = _load_arrays(path)
    splits, one_hot, num_labels = {}, [], 0
    for name in ("train", "val", "test"):
        if f"x_{name}" in arrays:
            images = _images(arrays[f"x_{name}"], keys[f"x_{name}"], path)
            y = arrays[f"y_{name}"]
            labels = _labels(y, keys[f"y_{name}"], len(images), path, one_hot)
            splits[name] = Split(labels=labels, images=images)
            width = y.shape[1] if keys[f"y_{name}"] in one_hot else 0  # one-hot: K columns = K classes
            num_labels = max(num_labels, width, int(labels.max()) + 1 if len(labels) else 0)
    train = splits["train"]
    for name in ("val", "test"):
        if name in splits and splits[name].images.shape[1:] != train.images.shape[1:]:
            raise DataError(
                f"{path}: {keys[f'x_{name}']} images are {tuple(splits[name].images.shape[1:])}, "
                f"{keys['x_train']}'s {tuple(train.images.shape[1:])}; save them at one size"
            )
    classes = _class_names(arrays, num_labels, keys.get("names", "classes"), path)
    if len(classes) < 2:
        raise DataError(f"{path}: only one class; a classifier needs two or more")
    notes = []
    if one_hot:
        notes.append(
            f"{path}: {', '.join(one_hot)} one-hot: read as class indices (the column of each row's 1)"
        )
    counts = torch.bincount(train.labels, minlength=len(classes)).tolist()
    empty = [repr(c) for c, n in zip(classes, counts, strict=True) if n == 0]
    if empty:
        notes.append(
            f"{path}: {len(empty)} of {len(classes)} classes have no training images: {first_few(empty)}"
        )
    mean, std = channel_stats(train.images)
    return ImageData(
        name=path.stem,
        classes=classes,
        channels=train.images.shape[1],
        image_size=train.images.shape[2],
        mean=mean,
        std=std,
        train=train,
        test=splits.get("test"),
        val=splits.get("val"),
        source=f"npz:{path.resolve()}",
        notes=notes,
    )

"""Datasets saved as a NumPy .npz (`npz:PATH`): arrays x_train, y_train and optionally x_test, y_test, classes.

Images may be (N, H, W, C), (N, C, H, W) or (N, H, W), with C 1 or 3; uint8, other integers in
0..255, or floats in 0..1 (scaled by 255) or 0..255. Labels are integers from 0; class names come from
a `classes` array of strings, else '0'..'K-1'. Nothing is unpickled (allow_pickle=False).

    python -c "import numpy as np; np.savez('d.npz', x_train=np.zeros((8, 28, 28), 'u1'), y_train=np.arange(8) % 2)"
    python -c "from convtrain.data.npz import read_npz; print(read_npz('d.npz'))"
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from convtrain.data.dataset import ImageData, Split
from convtrain.data.folder import first_few
from convtrain.data.info import channel_stats
from convtrain.errors import DataError, reason

KNOWN_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes")


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"npz dataset {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(
                f"{path} holds a single array, not an .npz with x_train and y_train; save it with np.savez"
            )
        with loaded:
            return {key: loaded[key] for key in loaded.files if key in KNOWN_KEYS}
    except (
        OSError,
        ValueError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
    ) as e:  # not a zip, cut off, object arrays
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


def _labels(y: np.ndarray, key: str, count: int, path: Path) -> torch.Tensor:
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"{path}: {key} has shape {y.shape} and dtype {y.dtype}; expected (N,) integers")
    if len(y) != count:
        raise DataError(f"{path}: {key} has {len(y)} labels but the images number {count}")
    if y.min() < 0:
        raise DataError(f"{path}: {key} has label {y.min()}; labels count from 0")
    return torch.from_numpy(y.astype(np.int64))


def _class_names(arrays: dict[str, np.ndarray], num_labels: int, path: Path) -> list[str]:
    if "classes" not in arrays:
        return [str(i) for i in range(num_labels)]
    names = arrays["classes"]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(
            f"{path}: classes must be a 1-D array of strings, got shape {names.shape} dtype {names.dtype}"
        )
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: classes has repeated names; each class needs its own")
    if num_labels > len(names):
        raise DataError(f"{path}: labels go up to {num_labels - 1} but classes names only {len(names)}")
    return names


def read_npz(path: Path) -> ImageData:
    """An .npz dataset as ImageData, checked for keys, shapes, lengths and label range."""
    path = Path(path)
    arrays = _load_arrays(path)
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise DataError(
            f"{path} lacks {', '.join(missing)}: it needs x_train and y_train (x_test, y_test, classes optional)"
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path} has only one of x_test and y_test; save both or neither")
    splits = {}
    for name in ("train", "test"):
        if f"x_{name}" in arrays:
            images = _images(arrays[f"x_{name}"], f"x_{name}", path)
            splits[name] = Split(
                labels=_labels(arrays[f"y_{name}"], f"y_{name}", len(images), path), images=images
            )
    if "test" in splits and splits["test"].images.shape[1:] != splits["train"].images.shape[1:]:
        raise DataError(
            f"{path}: x_test images are {tuple(splits['test'].images.shape[1:])}, x_train's {tuple(splits['train'].images.shape[1:])}"
        )
    num_labels = max(int(s.labels.max()) for s in splits.values()) + 1
    classes = _class_names(arrays, num_labels, path)
    if len(classes) < 2:
        raise DataError(f"{path}: only one class; a classifier needs two or more")
    counts = torch.bincount(splits["train"].labels, minlength=len(classes)).tolist()
    empty = [repr(c) for c, n in zip(classes, counts, strict=True) if n == 0]
    notes = (
        [f"{path}: {len(empty)} of {len(classes)} classes have no training images: {first_few(empty)}"]
        if empty
        else []
    )
    mean, std = channel_stats(splits["train"].images)
    return ImageData(
        name=path.stem,
        classes=classes,
        channels=splits["train"].images.shape[1],
        image_size=splits["train"].images.shape[2],
        mean=mean,
        std=std,
        train=splits["train"],
        test=splits.get("test"),
        source=f"npz:{path.resolve()}",
        notes=notes,
    )

"""A part of a split to score on its own, read from a .npy file: a boolean mask as long as the split,
or the indices of the images to keep. CIFAR-10's bit-exact test images are such a part:

    convtrain evaluate runs/cifar10-fastnet --subset ../shared/datasets/cifar10-exact/exact_mask_test.npy
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convtrain.base.errors import ConfigError

FIX = "give a .npy file of booleans, one per image of the split, or of image indices"


def read_subset_file(path: str | Path) -> np.ndarray:
    """The .npy file's 1-d array of booleans or integers, checked before any dataset is read: a
    missing or malformed file is one line at once, not after minutes of loading."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"subset file {path} does not exist; {FIX}")
    try:
        picked = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ConfigError(f"subset file {path} is not a readable .npy array ({error}); {FIX}") from None
    if picked.ndim != 1:
        raise ConfigError(f"subset file {path} holds a {picked.ndim}-d array of shape {picked.shape}; {FIX}")
    if picked.dtype != np.bool_ and not np.issubdtype(picked.dtype, np.integer):
        raise ConfigError(f"subset file {path} holds {picked.dtype} values; {FIX}")
    return picked


def subset_indices(picked: np.ndarray, count: int, path: str | Path) -> np.ndarray:
    """The sorted indices (int64) that `picked` (read_subset_file's array) selects from `count` images."""
    if picked.dtype == np.bool_:
        if len(picked) != count:
            raise ConfigError(
                f"subset file {path} is a mask of {len(picked)} values, but the split has {count} images; {FIX}"
            )
        indices = np.flatnonzero(picked)
    else:
        indices = np.unique(picked.astype(np.int64))
        if len(indices) and (indices[0] < 0 or indices[-1] >= count):
            raise ConfigError(
                f"subset file {path} indexes image {int(indices[0] if indices[0] < 0 else indices[-1])}, outside the split's 0..{count - 1}; {FIX}"
            )
    if len(indices) == 0:
        raise ConfigError(f"subset file {path} picks no image of the split; {FIX}")
    return indices.astype(np.int64)

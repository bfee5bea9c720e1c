"""A part of a split to score on its own, read from a .npy file: a boolean mask as long as the split,
or the indices of the images to keep. CIFAR-10's bit-exact test images are such a part:

    convtrain evaluate runs/cifar10-fastnet --subset ../shared/datasets/cifar10-exact/exact_mask_test.npy
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convtrain.base.errors import ConfigError

FIX = "give a .npy file of booleans, one per image of the split, or of image indices"


def read_subset(path: str | Path, count: int) -> np.ndarray:
    """The sorted image indices (int64) a .npy file picks from a split of `count` images."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"subset file {path} does not exist; {FIX}")
    try:
        picked = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ConfigError(f"subset file {path} is not a readable .npy array ({error}); {FIX}") from None
    if picked.ndim != 1:
        raise ConfigError(f"subset file {path} holds a {picked.ndim}-d array of shape {picked.shape}; {FIX}")
    if picked.dtype == np.bool_:
        if len(picked) != count:
            raise ConfigError(
                f"subset file {path} is a mask of {len(picked)} values, but the split has {count} images; {FIX}"
            )
        indices = np.flatnonzero(picked)
    elif np.issubdtype(picked.dtype, np.integer):
        indices = np.unique(picked.astype(np.int64))
        if len(indices) and (indices[0] < 0 or indices[-1] >= count):
            raise ConfigError(
                f"subset file {path} indexes image {int(indices[0] if indices[0] < 0 else indices[-1])}, outside the split's 0..{count - 1}; {FIX}"
            )
    else:
        raise ConfigError(f"subset file {path} holds {picked.dtype} values; {FIX}")
    if len(indices) == 0:
        raise ConfigError(f"subset file {path} picks no image of the split; {FIX}")
    return indices.astype(np.int64)

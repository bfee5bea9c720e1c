"""The images a data check looks at: each split of a dataset in memory, with file paths for folders.

Every kind of dataset goes through convtrain's own reader (`load_dataset`), so the check sees the
images training sees. A folder is listed by the reader (header checks, class folders) and then
decoded here one file at a time, to keep each image's path and to hash its pixels at their native
size before they are resized: two files are exact duplicates only if they decode to the same pixels.

    python -c "from convtrain.datacheck.source import load_splits; print(load_splits('mnist', ['test']))"
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from convtrain.base.errors import ConfigError, DataError, ImageError
from convtrain.data.dataset import ImageData
from convtrain.data.dataset_registry import load_dataset
from convtrain.data.decode import decode_image
from convtrain.data.formats.image_folder import resize_images
from convtrain.datacheck.file_health import FileIssue

SPLITS = ("train", "val", "test")


@dataclass
class SplitImages:
    """One split as the check sees it."""

    name: str  # train, val or test
    images: torch.Tensor  # (N, C, S, S) uint8: the size and channels training uses
    labels: torch.Tensor  # (N,) int64
    hashes: list[str]  # per image: a hash of its decoded pixels (native size) and shape
    paths: list[str] | None = None  # folder datasets: the file of each image

    def __len__(self) -> int:
        return len(self.labels)

    def where(self, index: int) -> str:
        """The image's path for folders, else 'split[index]'."""
        return self.paths[index] if self.paths is not None else f"{self.name}[{index}]"


def pixel_hash(pixels: torch.Tensor) -> str:
    """A hash of uint8 pixels and their shape: equal for images that decode identically."""
    digest = hashlib.blake2b(str(tuple(pixels.shape)).encode(), digest_size=16)
    digest.update(pixels.contiguous().numpy().tobytes())
    return digest.hexdigest()


def resolve_splits(split: str) -> list[str]:
    """The split names a `--split` value stands for ('all' -> every split)."""
    if split == "all":
        return list(SPLITS)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose train, val, test or all")
    return [split]


def load_splits(
    dataset: str, wanted: list[str], data_dir: str | None = None
) -> tuple[ImageData, dict[str, SplitImages], list[FileIssue]]:
    """(the dataset's description, its wanted splits that exist plus train, images that failed to decode)."""
    is_folder = dataset.startswith("folder:")
    data = load_dataset(dataset, data_dir, in_memory=not is_folder)
    present = {name: getattr(data, name) for name in SPLITS if getattr(data, name) is not None}
    missing = [name for name in wanted if name not in present]
    if missing and len(wanted) == 1:
        raise DataError(
            f"{data.name} has no {missing[0]} split; it has {', '.join(present)}: pick one of those"
        )
    if data.num_classes < 2:
        raise DataError(
            f"{data.name} has {data.num_classes} class; a classifier (and this check) needs two or more"
        )
    names = [name for name in SPLITS if name in present and (name in wanted or name == "train")]
    splits, failed = {}, []
    for name in names:
        split = present[name]
        if split.images is not None:
            hashes = [pixel_hash(image) for image in split.images]
            splits[name] = SplitImages(name, split.images, split.labels, hashes)
        else:
            splits[name] = _decode_files(name, split.files, split.labels, data, failed)
    if not len(splits["train"]):
        raise DataError(f"{dataset}: no readable image in the train split; fix or add image files")
    return data, splits, failed


def _decode_files(
    name: str, files: list[Path], labels: torch.Tensor, data: ImageData, failed: list[FileIssue]
) -> SplitImages:
    """Decode each file (keeping its native-size hash), resized to the dataset's common size."""
    images = torch.empty((len(files), data.channels, data.image_size, data.image_size), dtype=torch.uint8)
    kept, hashes, paths = [], [], []
    for path, label in zip(files, labels.tolist(), strict=True):
        try:
            pixels = decode_image(path, data.channels)  # (C, H, W) native size
        except ImageError as error:  # a valid header over broken data
            failed.append(FileIssue(name, "undecodable", str(error).split(": ", 1)[-1], str(path)))
            continue
        images[len(kept)] = resize_images(pixels[None], data.image_size)[0]
        kept.append(label)
        hashes.append(pixel_hash(pixels))
        paths.append(str(path))
    return SplitImages(
        name, images[: len(kept)].clone(), torch.tensor(kept, dtype=torch.int64), hashes, paths
    )

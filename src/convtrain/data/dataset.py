"""ImageData: a dataset as the rest of convtrain sees it, whatever format it was read from.

Images are kept as uint8 (N, C, H, W) tensors: four times smaller than float32, so whole splits
fit on the training device, where batches are normalised and augmented (see loader.py).
A folder read with the streaming loader keeps file paths instead and decodes them in workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class Split:
    """One split of a dataset: images in memory, or the files to stream them from."""

    labels: torch.Tensor  # (N,) int64
    images: torch.Tensor | None = None  # (N, C, H, W) uint8, when held in memory
    files: list[Path] | None = None  # when streamed from disk instead

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> Split:
        images = self.images[indices] if self.images is not None else None
        files = [self.files[i] for i in indices.tolist()] if self.files is not None else None
        return Split(labels=self.labels[indices], images=images, files=files)


@dataclass
class ImageData:
    """A named dataset: its classes, image geometry, normalisation and splits."""

    name: str
    classes: list[str]
    channels: int
    image_size: int  # images are square: (channels, image_size, image_size)
    mean: tuple[float, ...]  # per channel, on the 0-1 pixel scale
    std: tuple[float, ...]
    train: Split
    test: Split | None = None
    val: Split | None = None  # a validation split shipped with the data (folder val/)
    source: str = ""  # where it was read from, for messages and the model card
    notes: list[str] = field(default_factory=list)  # warnings worth repeating (skipped files...)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

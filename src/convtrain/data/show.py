"""A picture of one training batch exactly as the model sees it, augmentation included.

Worth a look before a long run: a crop that cuts digits in half or a rotation that turns a 6 into
a 9 shows up here at once.

    convtrain data show cifar10 --augment flip,crop:4,cutout:8 --out batch.png
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from convtrain.base.errors import ConfigError
from convtrain.base.figures import new_figure, save_figure
from convtrain.data.augment import parse_augment
from convtrain.data.dataset import ImageData
from convtrain.data.loader import make_loader
from convtrain.data.pixels import denormalize


def save_batch_grid(
    data: ImageData, path: str | Path, augment_spec: str = "none", count: int = 32, seed: int = 0
) -> Path:
    """Draw `count` training images (augmented by augment_spec) in a grid with class names; write a PNG."""
    if count < 1:
        raise ConfigError(f"count must be at least 1 image, got {count}")
    augment = parse_augment(augment_spec)
    loader = make_loader(data.train, data, count, "cpu", train=True, augment=augment, seed=seed, workers=0)
    x, y = next(iter(loader))  # (B, C, H, W) normalised
    pixels = denormalize(x, data.mean, data.std).permute(0, 2, 3, 1).float() / 255  # (B, H, W, C) on 0-1

    cols = math.ceil(math.sqrt(len(x)))
    rows = math.ceil(len(x) / cols)
    fig = new_figure(1.5 * cols, 1.7 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(x):
            continue
        image = pixels[i].numpy()
        if image.shape[2] == 1:
            ax.imshow(image[:, :, 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(image)
        ax.text(
            0.5,
            -0.04,
            _caption(y[i], data.classes),
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=7,
        )
    fig.suptitle(f"{data.name}: augment {augment_spec}", fontsize=9)
    return save_figure(fig, path)


def _caption(target: torch.Tensor, classes: list[str]) -> str:
    if target.dim() == 0:
        return classes[int(target)]
    # Soft targets (mixup/cutmix): the two classes blended, with their weights.
    weights, top = target.topk(min(2, len(classes)))
    parts = [f"{classes[int(k)]} {float(w):.2f}" for w, k in zip(weights, top, strict=True) if w > 0.005]
    return "\n".join(parts)

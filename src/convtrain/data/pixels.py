"""Pixel normalisation and its inverse, written once: uint8 pixels <-> the float input a model takes.

Training, evaluation, prediction, export checks and every picture use these functions, so the
network always sees exactly the preprocessing it was trained with (`preprocess`: any uint8 images,
resized and converted to a run's input, then normalised).

    x = normalize(images, data.mean, data.std)        # uint8 (N, C, H, W) -> float (N, C, H, W)
    pixels = denormalize(x, data.mean, data.std)      # and back to uint8, for pictures
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from convtrain.base.errors import ImageError
from convtrain.data.formats.image_folder import resize_images, to_channels


def scale_and_shift(
    mean: Sequence[float], std: Sequence[float], device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x / 255 - mean) / std == x * scale + shift: (1, C, 1, 1) tensors, one fused op per batch."""
    std_t = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)  # (1, C, 1, 1)
    mean_t = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
    return (1 / (255 * std_t)).to(device), (-mean_t / std_t).to(device)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (or 0-255 float) images (N, C, H, W) -> float32 (x / 255 - mean) / std on the same device."""
    scale, shift = scale_and_shift(mean, std, images.device)
    return images.float() * scale + shift  # (N, C, H, W)


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The inverse of normalize, rounded and clamped back to uint8 pixels (N, C, H, W)."""
    scale, shift = scale_and_shift(mean, std, x.device)
    return ((x.float() - shift) / scale).round().clamp(0, 255).to(torch.uint8)


def preprocess(
    card: dict[str, Any], images: torch.Tensor, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """uint8 images (N, C, H, W) or one (C, H, W) -> the float batch the model of `card` takes."""
    if images.dtype != torch.uint8:
        raise ImageError(f"images must be uint8 pixels 0-255, got {images.dtype}")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ImageError(f"images must be (N, C, H, W) with C 1 or 3, got shape {tuple(images.shape)}")
    images = resize_images(to_channels(images.cpu(), card["in_channels"]), card["image_size"])  # (N, C, S, S)
    return normalize(
        images.to(device), card["mean"], card["std"]
    )  # (N, C, S, S), as the training loader does

"""Pixel normalisation and its inverse, written once: uint8 pixels <-> the float input a model takes.

Training, evaluation, prediction, export checks and every picture use these two functions, so the
network always sees exactly the preprocessing it was trained with.

    x = normalize(images, data.mean, data.std)        # uint8 (N, C, H, W) -> float (N, C, H, W)
    pixels = denormalize(x, data.mean, data.std)      # and back to uint8, for pictures
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


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

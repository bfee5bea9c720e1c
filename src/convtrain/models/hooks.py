"""The optional hooks a network may declare, as typed protocols.

A model that needs the data before training (a frozen whitening layer fitted to image patches) or its
own optimizer groups (a higher lr for some parameters) implements these; training/setup.py and training/optim.py check
with isinstance and pass plain numbers, never the whole TrainConfig.

    if isinstance(model, FitsToData): model.fit_to_data(images)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class FitsToData(Protocol):
    def fit_to_data(self, images: torch.Tensor) -> None:
        """Set layers from training images (N, C, H, W), normalised as the loader gives them."""


@runtime_checkable
class HasParameterGroups(Protocol):
    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups, each with its own lr and weight_decay."""

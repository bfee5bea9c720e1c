"""Evaluation: run a model over a loader and measure it.

`evaluation_sums` returns sums (loss, correct, count, confusion) that can be added across
processes; `metrics_from_sums` turns them into loss and accuracy. `collect_logits` keeps every
output for the detailed report of `convtrain evaluate`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convtrain.runtime import autocast


def tta_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The image, its mirror, and the two shifted by one pixel (test-time augmentation)."""
    shifted_right = F.pad(x, (1, 0, 0, 0), mode="replicate")[..., :, :-1]  # (B, C, H, W)
    shifted_down = F.pad(x, (0, 0, 1, 0), mode="replicate")[..., :-1, :]
    return [x, torch.flip(x, dims=[3]), shifted_right, shifted_down]


def forward_logits(model: nn.Module, x: torch.Tensor, precision: str, tta: bool = False) -> torch.Tensor:
    with autocast(precision, x.device):
        if not tta:
            return model(x).float()  # (B, K)
        views = tta_views(x)
        logits = model(torch.cat(views)).float()  # (V*B, K)
        return logits.view(len(views), len(x), -1).log_softmax(-1).mean(0)


@torch.inference_mode()
def evaluation_sums(
    model: nn.Module, loader, num_classes: int, precision: str = "fp32", tta: bool = False
) -> dict[str, torch.Tensor]:
    """Summed loss, correct predictions, image count and the confusion matrix (true x predicted)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    confusion = torch.zeros(num_classes * num_classes, device=device, dtype=torch.int64)
    for x, y in loader:
        logits = forward_logits(model, x, precision, tta)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        confusion += torch.bincount(y * num_classes + logits.argmax(1), minlength=num_classes**2)
    model.train(was_training)
    confusion = confusion.view(num_classes, num_classes)
    return {"loss_sum": loss_sum, "confusion": confusion}


def metrics_from_sums(sums: dict[str, torch.Tensor]) -> dict[str, float]:
    confusion = sums["confusion"]
    count = int(confusion.sum())
    if count == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "count": 0}
    return {
        "loss": float(sums["loss_sum"]) / count,
        "accuracy": float(confusion.diag().sum()) / count,
        "count": count,
    }


@torch.inference_mode()
def collect_logits(
    model: nn.Module, loader, precision: str = "fp32", tta: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every logit and label of a loader, in loader order, on the CPU: (N, K) and (N,)."""
    model.eval()
    outputs, labels = [], []
    for x, y in loader:
        outputs.append(forward_logits(model, x, precision, tta).cpu())
        labels.append(y.cpu())
    return torch.cat(outputs), torch.cat(labels)

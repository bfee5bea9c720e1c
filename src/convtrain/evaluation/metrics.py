"""Metrics: numbers computed from logits, labels and summed counts, and nothing else.

`metrics_from_sums` turns summed loss and a confusion matrix (added across processes) into loss and
accuracy; `metrics_from_logits` gives the full picture of `convtrain evaluate`: top-1/top-5,
per-class precision/recall/F1, the confusion matrix, the most confused pairs and the top losses.

    metrics_from_logits(logits, labels, ["cat", "dog"])["top1"]
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


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


def metrics_from_logits(
    logits: torch.Tensor, labels: torch.Tensor, classes: list[str], top_losses: int = 16, pairs: int = 10
) -> dict[str, Any]:
    """Loss, top-1/top-5, per-class precision/recall/F1, confusion, most-confused pairs, top-loss images.

    Per-class accuracy is the share of that class's images predicted right (the same number as recall).
    Macro averages are over the classes present in the split.
    """
    num_classes = len(classes)
    logits, labels = logits.float().cpu(), labels.long().cpu()
    losses = F.cross_entropy(logits, labels, reduction="none")  # (N,)
    probs = logits.softmax(1)  # (N, K)
    predicted = probs.argmax(1)  # (N,)
    k = min(5, num_classes)
    in_top5 = (logits.topk(k, dim=1).indices == labels[:, None]).any(1)  # (N,)

    confusion = torch.bincount(labels * num_classes + predicted, minlength=num_classes**2).view(
        num_classes, -1
    )
    support = confusion.sum(1)  # (K,) images of each true class
    predicted_count = confusion.sum(0)  # (K,) images predicted as each class
    correct = confusion.diag()
    precision = correct / predicted_count.clamp(min=1)  # 0 for a class never predicted
    recall = correct / support.clamp(min=1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros(()))
    present = support > 0
    row_normalised = confusion / support.clamp(min=1)[:, None]

    per_class = [
        {
            "class": name,
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "accuracy": float(recall[c]),
            "support": int(support[c]),
            "predicted": int(predicted_count[c]),
        }
        for c, name in enumerate(classes)
    ]
    return {
        "images": len(labels),
        "loss": float(losses.mean()),
        "top1": float((predicted == labels).double().mean()),
        "top5": float(in_top5.double().mean()),
        "top5_k": k,
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "confusion_normalized": row_normalised.tolist(),
        "most_confused": _most_confused(confusion, support, classes, pairs),
        "top_losses": _top_losses(losses, probs, predicted, labels, classes, top_losses),
    }


def _most_confused(
    confusion: torch.Tensor, support: torch.Tensor, classes: list[str], count: int
) -> list[dict]:
    off = confusion.clone()
    off.fill_diagonal_(0)
    counts, order = off.flatten().sort(descending=True, stable=True)  # ties: lower class pair first
    out = []
    for n, i in zip(counts[:count].tolist(), order[:count].tolist(), strict=True):
        if n == 0:
            break
        true, pred = divmod(i, len(classes))
        out.append(
            {"true": classes[true], "predicted": classes[pred], "count": n, "share": n / int(support[true])}
        )
    return out


def _top_losses(losses, probs, predicted, labels, classes: list[str], count: int) -> list[dict]:
    order = losses.argsort(descending=True, stable=True)[:count]
    return [
        {
            "index": int(i),
            "true": classes[int(labels[i])],
            "predicted": classes[int(predicted[i])],
            "probability": float(probs[i, predicted[i]]),
            "true_probability": float(probs[i, labels[i]]),
            "loss": float(losses[i]),
        }
        for i in order
    ]

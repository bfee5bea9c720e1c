"""The pictures of a run: curves, confusion matrix, per-class accuracy and image grids, as PNG files.

Each function draws one figure from plain numbers or uint8 images and writes it whole (temporary
file, then rename), through base/figures.py's one figure saver.

    convtrain plot runs/mnist-lenet5      # (re)makes every picture and report.html of a run
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from convtrain.base.figures import RIGHT, TRAIN, VAL, WRONG, new_figure, plot_tiles, save_figure, to_tiles


def plot_curves(history: list[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train against validation (validation left out when the run had none)."""
    fig = new_figure(10, 3.8)
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    marker = "o" if len(epochs) <= 30 else None  # a lone epoch is still visible as a dot
    for ax, key, label in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy (%)")):
        scale = 100 if key == "acc" else 1
        ax.plot(
            epochs,
            [scale * row[f"train_{key}"] for row in history],
            marker=marker,
            color=TRAIN,
            label="train",
        )
        val = [scale * row.get(f"val_{key}", math.nan) for row in history]
        if any(v == v for v in val):
            ax.plot(epochs, val, marker=marker, color=VAL, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) < 12:
            ax.set_xticks(epochs)
    loss_ax.set_title("loss")
    acc_ax.set_title("accuracy")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_confusion(
    confusion: list[list[int]] | torch.Tensor, classes: list[str], path: str | Path, title: str = ""
) -> Path:
    """The confusion matrix coloured by row share (recall), with the counts written in when they fit."""
    counts = torch.as_tensor(confusion, dtype=torch.float64)  # (K, K) true x predicted
    shares = counts / counts.sum(1, keepdim=True).clamp(min=1)
    k = len(classes)
    side = min(16.0, max(4.5, 0.55 * k + 2))
    fig = new_figure(side + 1.2, side)
    ax = fig.subplots()
    shown = ax.imshow(shares.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if k <= 40:
        font = 9 if k <= 12 else 6
        ax.set_xticks(
            range(k), classes, rotation=45 if max(map(len, classes)) > 2 else 0, ha="right", fontsize=font
        )
        ax.set_yticks(range(k), classes, fontsize=font)
    if k <= 20:
        for t in range(k):
            for p in range(k):
                if counts[t, p] > 0:
                    color = "white" if shares[t, p] > 0.5 else "black"
                    ax.text(p, t, f"{int(counts[t, p])}", ha="center", va="center", fontsize=8, color=color)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    return save_figure(fig, path)


def plot_per_class(
    per_class: list[dict[str, Any]], path: str | Path, overall: float | None = None, title: str = ""
) -> Path:
    """Horizontal bars: the share of each class's images predicted right, with the overall accuracy as a line."""
    names = [row["class"] for row in per_class]
    values = [100 * row["accuracy"] for row in per_class]
    fig = new_figure(5.5, max(2.5, 0.28 * len(names) + 1.2))
    ax = fig.subplots()
    positions = range(len(names))
    bars = ax.barh(positions, values, color=[RIGHT if v >= 50 else WRONG for v in values])
    ax.set_yticks(positions, names, fontsize=9 if len(names) <= 30 else 6)
    ax.invert_yaxis()  # first class on top, as in the tables
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], padding=2, fontsize=8)
    if overall is not None:
        ax.axvline(
            100 * overall, color="black", linestyle="--", linewidth=1, label=f"overall {100 * overall:.1f}%"
        )
        ax.legend(loc="lower right")
    ax.set_xlim(0, 112)
    ax.set_xlabel("accuracy (%)")
    ax.set_title(title or "accuracy per class")
    return save_figure(fig, path)


def plot_image_grid(
    images: torch.Tensor,
    captions: list[str],
    path: str | Path,
    colors: list[str] | None = None,
    title: str = "",
) -> Path:
    """uint8 images (N, C, H, W) in a square-ish grid, each with a caption (coloured if colors is given)."""
    n = len(images)
    cols = 8 if n > 16 else max(1, math.ceil(math.sqrt(n)))
    size = max(images.shape[-1], 48)  # small images are enlarged so the captions fit above them
    return plot_tiles(to_tiles(images, size), captions, path, cols, colors, title)


def plot_predictions(
    images: torch.Tensor,
    labels: torch.Tensor,
    probs: torch.Tensor,
    classes: list[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """A grid of images captioned 'predicted (probability)' over 'true', green when right and red when wrong."""
    predicted = probs.argmax(1)
    captions, colors = [], []
    for true, pred, p in zip(labels.tolist(), predicted.tolist(), probs.max(1).values.tolist(), strict=True):
        captions.append(f"{_clip(classes[pred])} {p:.2f}\ntrue: {_clip(classes[true])}")
        colors.append(RIGHT if pred == true else WRONG)
    return plot_image_grid(images, captions, path, colors, title)


def _clip(name: str, width: int = 14) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"

"""Heat maps for a trained run: per-image pictures for predict, galleries for evaluate and the report.

Each function takes the run's model and card, uint8 pixels and what the model predicted, computes
the maps (attribution.py) and draws them (overlay.py). Run-folder file names come from RunDir.

    convtrain predict runs/mnist-fastnet-tiny digits/ --explain gradcam --out why/
    convtrain evaluate runs/mnist-fastnet-tiny --explain            # plots/explain_{mistakes,correct}_test.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from convtrain.data.decode import decode_image
from convtrain.data.pixels import preprocess
from convtrain.evaluation.explain.attribution import explain
from convtrain.evaluation.explain.overlay import plot_explanation, plot_explanation_grid, prediction_colors

CORRECT_PER_CLASS = 2  # right predictions shown per class in the evaluate gallery
GALLERY_LIMIT = 32  # images in one gallery at most


def heat_maps(
    model: torch.nn.Module,
    card: dict[str, Any],
    images: torch.Tensor,
    target: torch.Tensor,
    method: str,
    layer: str | None = None,
) -> torch.Tensor:
    """Maps (N, S, S) in [0, 1] for uint8 images (N, C, S, S) of the card's size, for the classes in target (N,)."""

    x = preprocess(card, images, next(model.parameters()).device)  # (N, C, S, S) as in training
    return explain(model, x, method, target=target, layer=layer)


def write_prediction_pictures(
    model: torch.nn.Module,
    card: dict[str, Any],
    images: torch.Tensor,
    probs: torch.Tensor,
    names: list[str],
    folder: str | Path,
    method: str,
    layer: str | None = None,
    topk: int = 3,
    truths: list[str] | None = None,
    taken: set[str] | None = None,
) -> list[Path]:
    """One picture per image (image | heat map of the top class | top-k bars) in folder; their paths.

    images (N, C, S, S) uint8, probs (N, K); names become the titles and the file names, made
    unique within this call and against `taken` (file stems already written, updated here).
    """
    classes = card["classes"]
    heat = heat_maps(model, card, images, probs.argmax(1), method, layer)  # (N, S, S)
    top_p, top_i = probs.topk(min(topk, len(classes)), dim=1)
    paths, used = [], taken if taken is not None else set()
    for i, name in enumerate(names):
        stem = _unique(_file_stem(name), used)
        title = f"{name}: {method}" + (f", true {truths[i]}" if truths else "")
        labels = [(classes[c], p) for c, p in zip(top_i[i].tolist(), top_p[i].tolist(), strict=True)]
        paths.append(plot_explanation(images[i], heat[i], labels, Path(folder) / f"{stem}.png", title))
    return paths


def write_gallery(
    model: torch.nn.Module,
    card: dict[str, Any],
    images: torch.Tensor,
    probs: torch.Tensor,
    labels: torch.Tensor,
    path: str | Path,
    method: str,
    layer: str | None = None,
    title: str = "",
) -> Path:
    """Image and heat map of the predicted class side by side, captioned as the other galleries are:
    'predicted (probability)' over 'true', green when right and red when wrong."""
    classes = card["classes"]
    predicted = probs.argmax(1)  # (N,)
    heat = heat_maps(model, card, images, predicted, method, layer)  # (N, S, S)
    captions = [
        f"{_clip(classes[p])} {probs[i, p]:.2f}\ntrue: {_clip(classes[t])}"
        for i, (p, t) in enumerate(zip(predicted.tolist(), labels.tolist(), strict=True))
    ]
    colors = prediction_colors(labels.tolist(), predicted.tolist())
    return plot_explanation_grid(images, heat, captions, path, colors, title)


def write_evaluation_galleries(
    model: torch.nn.Module, scored, top_losses: list[dict[str, Any]], method: str, layer: str | None = None
) -> list[Path]:
    """The two galleries of `evaluate --explain` for a scored split (evaluation.Scored): its highest
    losses, in the order of top_losses, and a sample of right predictions of every class."""
    run, card, split = scored.run, scored.run.card, scored.split_name
    probs, labels = scored.logits.softmax(1), scored.labels  # (N, K), (N,)
    losses_path, correct_path = run.explanation_paths(split)
    written = []
    for indices, path, title in (
        ([t["index"] for t in top_losses][:GALLERY_LIMIT], losses_path, f"highest losses, {split} split"),
        (correct_sample(labels, probs.argmax(1)).tolist(), correct_path, f"right predictions, {split} split"),
    ):
        if indices:
            images = split_pixels(scored.split, indices, card)  # (n, C, S, S) uint8
            title = f"{title}: {method} heat map of the predicted class"
            written.append(
                write_gallery(
                    model, card, images, probs[indices], labels[indices], path, method, layer, title
                )
            )
    return written


def report_sample(
    labels: torch.Tensor, predicted: torch.Tensor, top_losses: list[dict[str, Any]], count: int = 16
) -> list[int]:
    """A fixed sample for the report: right predictions from a seeded shuffle, then up to count/2
    mistakes, highest loss first."""
    wrong = [t["index"] for t in top_losses if t["true"] != t["predicted"]][: count // 2]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    right = order[labels[order] == predicted[order]][: count - len(wrong)].tolist()
    return right + wrong


def correct_sample(
    labels: torch.Tensor, predicted: torch.Tensor, per_class: int = CORRECT_PER_CLASS
) -> torch.Tensor:
    """Indices of up to per_class right predictions of each class, from a seeded shuffle, at most GALLERY_LIMIT."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    right = order[(labels[order] == predicted[order])]
    chosen = [right[labels[right] == k][:per_class] for k in labels.unique().tolist()]
    return torch.cat(chosen)[:GALLERY_LIMIT] if chosen else torch.zeros(0, dtype=torch.long)


def split_pixels(split, indices: list[int], card: dict[str, Any]) -> torch.Tensor:
    """uint8 images (N, C, S, S) of a Split at indices, held in memory or decoded from its files."""

    if split.images is not None:
        return split.images[indices]
    return torch.stack(
        [decode_image(split.files[i], card["in_channels"], card["image_size"]) for i in indices]
    )


def _file_stem(name: str) -> str:
    """'shots/cat 1.jpg' -> 'cat 1'; 'test[7]' -> 'test-7'."""
    stem = Path(name).stem if "[" not in name else name.replace("[", "-").rstrip("]")
    return "".join(c if c.isalnum() or c in "-_ ." else "_" for c in stem) or "image"


def _unique(stem: str, used: set[str]) -> str:
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return name


def _clip(name: str, width: int = 14) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"

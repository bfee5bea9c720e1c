"""Pictures of heat maps: the image, the map over it, and what the network predicted.

They draw only what they are given (uint8 images, maps in [0, 1], labels), as evaluation/report/plots.py does: a bare
matplotlib Figure on the Agg canvas, written whole through a temporary file.

    plot_explanation(image, heat, [("7", 0.98), ("1", 0.01)], "why/digit.png", title="gradcam")
    plot_explanation_grid(images, heat, captions, "plots/explain.png", colors=colors)
"""

from __future__ import annotations

from pathlib import Path

import torch

from convtrain.base.figures import RIGHT, WRONG, new_figure, plot_tiles, save_figure, to_tiles
from convtrain.evaluation.explain.attribution import ExplainError

COLORMAP = "turbo"  # blue (cold) to red (hot), and unlike jet, even steps in lightness
ALPHA = 0.6  # the map's opacity at its hottest pixel; cold pixels show the image untouched
TOPK_REST = "#8c959f"  # gray bars for the runners-up


def overlay(images: torch.Tensor, heat: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 images (N, C, H, W), C 1 or 3, and maps (N, H, W) in [0, 1] -> RGB tiles (N, S, S, 3) in 0-1.

    The colour of the map is laid over the image with an opacity that grows with the map's value,
    so where the network looked nowhere the picture stays legible. Enlarged to `size` by nearest pixels.
    """
    from matplotlib import colormaps

    _check(images, heat)
    base = to_tiles(images, size)  # (N, S, S, 3)
    heat = heat.detach().float().cpu().clamp(0, 1)[:, None]  # (N, 1, H, W)
    if heat.shape[-2:] != base.shape[1:3]:
        heat = torch.nn.functional.interpolate(heat, size=tuple(base.shape[1:3]), mode="nearest")
    heat = heat[:, 0]  # (N, S, S)
    color = torch.from_numpy(colormaps[COLORMAP](heat.numpy())[..., :3]).float()  # (N, S, S, 3)
    weight = ALPHA * heat[..., None]  # (N, S, S, 1)
    return (1 - weight) * base + weight * color  # (N, S, S, 3)


def plot_explanation(
    image: torch.Tensor,
    heat: torch.Tensor,
    topk: list[tuple[str, float]],
    path: str | Path,
    title: str = "",
) -> Path:
    """One image (C, H, W) uint8 and its map (H, W): the image, the overlay and the top-k labels as bars."""
    side = max(image.shape[-1], 96)  # small images enlarged so the three panels read at one size
    tiles = torch.cat([to_tiles(image[None], side), overlay(image[None], heat[None], side)])  # (2, S, S, 3)
    fig = new_figure(8.4, 2.9)
    image_ax, heat_ax, bar_ax = fig.subplots(1, 3, width_ratios=[1, 1, 1.2])
    for ax, tile, name in ((image_ax, tiles[0], "image"), (heat_ax, tiles[1], "heat map")):
        ax.imshow(tile.numpy(), interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    labels = [_clip(label) for label, _ in topk]
    probs = [100 * p for _, p in topk]
    positions = range(len(topk))
    bars = bar_ax.barh(positions, probs, color=[RIGHT] + [TOPK_REST] * (len(topk) - 1))
    bar_ax.set_yticks(positions, labels, fontsize=9)
    bar_ax.invert_yaxis()  # the top prediction on top
    bar_ax.bar_label(bars, labels=[f"{p:.1f}%" for p in probs], padding=2, fontsize=8)
    bar_ax.set_xlim(0, 125)
    bar_ax.set_xlabel("probability (%)")
    bar_ax.set_title(f"top {len(topk)}", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def plot_explanation_grid(
    images: torch.Tensor,
    heat: torch.Tensor,
    captions: list[str],
    path: str | Path,
    colors: list[str] | None = None,
    title: str = "",
) -> Path:
    """Pairs of tiles, the image then its heat map, four pairs a row, each captioned above the image."""
    _check(images, heat)
    n = len(images)
    size = max(images.shape[-1], 48)  # as plot_image_grid: room for the captions
    pairs = torch.stack([to_tiles(images, size), overlay(images, heat, size)], 1).flatten(
        0, 1
    )  # (2N, S, S, 3)
    tile_captions = [text for caption in captions[:n] for text in (caption, "")]
    tile_colors = [c for color in colors[:n] for c in (color, color)] if colors else None
    cols = 2 * min(4, n)
    return plot_tiles(pairs, tile_captions, path, cols, tile_colors, title)


def prediction_colors(true: list[int], predicted: list[int]) -> list[str]:
    """Green for a right prediction, red for a wrong one: the colours of the other galleries."""
    return [RIGHT if t == p else WRONG for t, p in zip(true, predicted, strict=True)]


def _check(images: torch.Tensor, heat: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ExplainError(
            f"images must be uint8 (N, C, H, W) with C 1 or 3, got {images.dtype} {tuple(images.shape)}"
        )
    if heat.dim() != 3 or len(heat) != len(images):
        raise ExplainError(f"heat maps must be (N, H, W) for {len(images)} images, got {tuple(heat.shape)}")


def _clip(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"

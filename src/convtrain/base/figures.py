"""Figures, drawn and saved one way: a bare matplotlib Figure on the Agg canvas (no display, no global
pyplot state), written whole as a file (PNG unless its name says otherwise) or returned as PNG bytes
for a page or a notebook.

Every picture convtrain makes (report/, explain/, data show, the lr finder, the notebook card) goes
through new_figure and save_figure/png_bytes.

    fig = new_figure(6, 4); fig.subplots().plot([1, 2, 3]); save_figure(fig, "curve.png")
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch

from convtrain.base.atomic_files import atomic_write
from convtrain.base.errors import ConfigError

RIGHT, WRONG = "#1a7f37", "#cf222e"  # green, red
TRAIN, VAL = "#1f6feb", "#d97706"


def new_figure(width: float, height: float):
    """A matplotlib Figure of width x height inches that draws with Agg (no display, no pyplot)."""
    from matplotlib.figure import Figure  # matplotlib takes ~1 s to import: only runs that draw pay it

    # constrained layout leaves room for titles, colour bars and the suptitle without manual tuning
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save_figure(fig, path: str | Path) -> Path:
    """Write a figure in the format its name ends in (.png, .jpg, .svg, .pdf...; a name without one
    gets .png, as matplotlib does): to a temporary file, then renamed, so a picture is never
    half-written. Returns the path written."""
    path = picture_path(path)
    kind = path.suffix[1:].lower()
    return atomic_write(path, lambda file: fig.savefig(file, format=kind, dpi=fig.dpi, bbox_inches="tight"))


def picture_path(path: str | Path) -> Path:
    """The file a picture named `path` goes to: .png added to a name without a suffix; a suffix that
    is no picture format is refused in one line (checked before the work that makes the picture)."""
    from matplotlib.backend_bases import FigureCanvasBase  # deferred: matplotlib takes ~1 s to import

    path = Path(path)
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    if path.suffix[1:].lower() not in FigureCanvasBase.get_supported_filetypes():
        raise ConfigError(f"cannot write a picture named {path}: end the name in .png, .jpg, .svg or .pdf")
    return path


def png_bytes(fig, dpi: float | None = None) -> bytes:
    """A figure as PNG bytes, for embedding in a page or a notebook cell."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi or fig.dpi, bbox_inches="tight")
    return buffer.getvalue()


def to_tiles(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 images (N, C, H, W), C 1 or 3 -> float RGB tiles (N, S, S, 3) in 0-1, enlarged by nearest pixels to `size`."""
    x = images.float() / 255
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)  # (N, 3, H, W): gray shown as gray on the white page
    if size is not None and x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="nearest")
    return x.permute(0, 2, 3, 1).cpu()  # (N, S, S, 3)


def plot_tiles(
    tiles: torch.Tensor,
    captions: list[str],
    path: str | Path,
    cols: int,
    colors: list[str] | None = None,
    title: str = "",
    inches: float = 1.5,
) -> Path:
    """Equal tiles (N, S, S, 3) in 0-1 laid out in one image with a caption above each; one axes, so it draws fast."""
    n, side = len(tiles), tiles.shape[1]
    rows = max(1, math.ceil(n / cols))
    gap, band = max(1, side // 10), max(4, round(side * 0.42))  # band: room for two caption lines
    cell_h, cell_w = band + side + gap, side + gap
    mosaic = torch.ones(rows * cell_h + gap, cols * cell_w + gap, 3)  # white page
    for i in range(n):
        y, x = (i // cols) * cell_h + band, (i % cols) * cell_w + gap
        mosaic[y : y + side, x : x + side] = tiles[i]
    width = cols * inches
    height = width * mosaic.shape[0] / mosaic.shape[1]
    top = 0.45 if title else 0.0  # inches kept for the title
    fig = new_figure(width, height + top)
    fig.set_layout_engine("none")
    ax = fig.add_axes((0, 0, 1, height / (height + top)))
    ax.imshow(mosaic.numpy(), interpolation="nearest")
    ax.axis("off")
    font = 8 if inches >= 1.2 else 7
    for i, caption in enumerate(captions[:n]):
        y, x = (i // cols) * cell_h + band, (i % cols) * cell_w + gap
        color = colors[i] if colors else "black"
        ax.text(
            x + side / 2,
            y - 1,
            caption,
            ha="center",
            va="bottom",
            fontsize=font,
            color=color,
            fontweight="bold" if colors else "normal",
        )
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.12 / (height + top))
    return save_figure(fig, path)

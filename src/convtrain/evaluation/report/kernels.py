"""What a convolutional network sees: hand-made kernels and pooling on any image, and a run's own filters.

Part one applies named kernels (or a matrix you type) to a gray image and draws, one row per kernel,
input -> kernel -> output -> 2x2 max-pool -> 2x2 average-pool, so each step of a conv layer is visible.
Part two opens a run: its first-layer filters as little images, and the feature maps every conv
layer produces for one image. Like torch's conv2d, "convolution" here is cross-correlation (the
kernel is not flipped), so sobel-x responds positively where brightness rises to the right.

    convtrain kernels photo.png --kernel sobel-x --kernel '0,-1,0;-1,5,-1;0,-1,0'
    convtrain kernels digit.png --run runs/mnist-lenet5
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convtrain.base.errors import ConfigError, ConvtrainError
from convtrain.data.decode import decode_image
from convtrain.data.pixels import preprocess
from convtrain.evaluation.report.plots import new_figure, plot_tiles, save_figure, to_tiles
from convtrain.evaluation.scoring import load_run_data
from convtrain.runs.run_dir import RunDir

_GAUSS = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])  # binomial weights: a 5x5 Gaussian with sigma about 1
KERNELS: dict[str, torch.Tensor] = {
    "box-blur": torch.full((3, 3), 1 / 9),
    "gaussian-blur": torch.outer(_GAUSS, _GAUSS) / 256,
    "sharpen": torch.tensor([[0.0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "laplacian": torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    "sobel-x": torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel-y": torch.tensor([[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]]),
}
MAX_SIDE = 256  # larger images are shrunk first: the figure shows pixels, not megapixels
MAX_KERNEL = 15
MAPS_PER_LAYER = 8


# ----- kernels on an image -----


def parse_kernel(spec: str) -> tuple[str, torch.Tensor]:
    """A named kernel, or a matrix written as rows split by ';' and numbers by ',' (e.g. '1,0,-1;2,0,-2;1,0,-1')."""
    key = spec.strip().lower()
    if key in KERNELS:
        return key, KERNELS[key].clone()
    try:
        rows = [[float(v) for v in row.split(",")] for row in spec.strip().strip(";").split(";")]
    except ValueError:
        raise ConfigError(
            f"kernel {spec!r} is neither a name ({', '.join(KERNELS)}) nor a matrix like '1,0,-1;2,0,-2;1,0,-1'"
        ) from None
    if len({len(r) for r in rows}) != 1:
        raise ConfigError(f"kernel {spec!r}: every row needs the same number of values")
    matrix = torch.tensor(rows)  # (kh, kw)
    if max(matrix.shape) > MAX_KERNEL:
        raise ConfigError(
            f"kernel {spec!r} is {matrix.shape[0]}x{matrix.shape[1]}; use at most {MAX_KERNEL}x{MAX_KERNEL}"
        )
    if not torch.isfinite(matrix).all():
        raise ConfigError(f"kernel {spec!r} has a value that is not a finite number")
    return f"custom {matrix.shape[0]}x{matrix.shape[1]}", matrix


def apply_kernel(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Cross-correlate a (H, W) image with a (kh, kw) kernel; the output stays (H, W).

    The border is padded by repeating edge pixels rather than with zeros, so an edge kernel does not
    draw a frame around every bright image.
    """
    kh, kw = kernel.shape
    padded = F.pad(
        image[None, None].float(), ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2), mode="replicate"
    )
    return F.conv2d(padded, kernel[None, None].float())[0, 0]  # (H, W)


def pool2(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2x2 max-pool and average-pool of a (H, W) map, stride 2: each (H//2, W//2)."""
    x = image[None, None]  # (1, 1, H, W)
    return F.max_pool2d(x, 2)[0, 0], F.avg_pool2d(x, 2)[0, 0]


def load_gray(path: str | Path) -> torch.Tensor:
    """An image file as gray floats 0-1, (H, W), shrunk to at most MAX_SIDE pixels on its longer side."""

    x = decode_image(path, channels=1).float()[None] / 255  # (1, 1, H, W)
    scale = MAX_SIDE / max(x.shape[-2:])
    if scale < 1:
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
    return x[0, 0]


def kernel_figure(image_path: str | Path, specs: list[str] | None, out: str | Path) -> Path:
    """One row per kernel: input, kernel, output, 2x2 max-pool and 2x2 average-pool of the output."""
    image = load_gray(image_path)
    kernels = [parse_kernel(spec) for spec in (specs or list(KERNELS))]
    height = 2.5 * len(kernels) + 0.5
    fig = new_figure(12, height)
    fig.set_layout_engine(
        "none"
    )  # a fixed grid: much faster to draw than constrained layout, and enough here
    axes = fig.subplots(
        len(kernels),
        5,
        squeeze=False,
        gridspec_kw=dict(left=0.01, right=0.99, bottom=0.01, top=1 - 0.7 / height, wspace=0.08, hspace=0.25),
    )
    h, w = image.shape
    for row, (name, kernel) in zip(axes, kernels, strict=True):
        output = apply_kernel(image, kernel)
        max_pooled, avg_pooled = pool2(output)
        signed = (
            abs(float(kernel.sum())) < 1e-6
        )  # edge detectors: negative and positive responses both matter
        _show(row[0], image, f"input {h}x{w}", signed=False)
        _show_kernel(row[1], kernel, name)
        _show(row[2], output, f"output {h}x{w}", signed)
        _show(row[3], max_pooled, f"max-pool 2x2 -> {max_pooled.shape[0]}x{max_pooled.shape[1]}", signed)
        _show(row[4], avg_pooled, f"avg-pool 2x2 -> {avg_pooled.shape[0]}x{avg_pooled.shape[1]}", signed)
    fig.suptitle(
        f"{Path(image_path).name}: convolution, then pooling (red > 0 > blue for edge kernels)",
        fontsize=11,
        y=1 - 0.12 / height,
        va="top",
    )
    return save_figure(fig, out)


def _show(ax, image: torch.Tensor, title: str, signed: bool) -> None:
    if signed:
        limit = max(1e-6, float(image.abs().max()))
        ax.imshow(image.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    else:  # what the result would look like saved as an image: clipped to 0-1
        ax.imshow(image.clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _show_kernel(ax, kernel: torch.Tensor, name: str) -> None:
    limit = max(1e-6, float(kernel.abs().max()))
    ax.imshow(kernel.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    font = {3: 9, 4: 8, 5: 7}.get(max(kernel.shape), 5)
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            value = float(kernel[i, j])
            color = "white" if abs(value) > 0.6 * limit else "black"  # readable on dark cells
            ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=font, color=color)
    ax.set_title(f"kernel {name}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


# ----- a trained run -----


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every Conv2d of a model, in the order they are defined (for these networks, the forward order)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def filters_figure(model: nn.Module, out: str | Path, title: str = "") -> Path:
    """The first conv layer's filters as images: RGB when the input is RGB, gray otherwise."""

    layers = conv_layers(model)
    if not layers:
        raise ConfigError("this model has no conv layers, so there are no filters to show")
    name, conv = layers[0]
    weight = conv.weight.detach().float().cpu()[:64]  # (O, I, kh, kw)
    if weight.shape[1] != 3:
        weight = weight.mean(1, keepdim=True)  # gray, or the channel mean for an unusual input
    low = weight.amin(dim=(1, 2, 3), keepdim=True)
    high = weight.amax(dim=(1, 2, 3), keepdim=True)
    scaled = (weight - low) / (high - low).clamp(min=1e-8)  # (O, I, kh, kw), each filter to 0-1
    tiles = F.interpolate(scaled.expand(-1, 3, -1, -1), size=(40, 40), mode="nearest").permute(0, 2, 3, 1)
    kh, kw = conv.kernel_size
    title = (
        title
        or f"first-layer filters ({name}: {conv.out_channels} of {kh}x{kw}), each scaled to its own range"
    )
    return plot_tiles(
        tiles, [f"#{i}" for i in range(len(tiles))], out, cols=min(8, len(tiles)), title=title, inches=1.1
    )


@torch.inference_mode()
def feature_maps(model: nn.Module, x: torch.Tensor) -> tuple[list[tuple[str, torch.Tensor]], torch.Tensor]:
    """The output of every conv layer for one preprocessed image x (1, C, H, W), and the model's logits."""
    maps: list[tuple[str, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, y, n=name: maps.append((n, y[0].detach().float().cpu().clone()))
        )
        for name, m in conv_layers(model)
    ]
    try:
        logits = model.eval()(x)  # (1, K)
    finally:
        for hook in hooks:
            hook.remove()
    return maps, logits[0].float().cpu()


def feature_maps_figure(model: nn.Module, card: dict[str, Any], image: torch.Tensor, out: str | Path) -> Path:
    """One row per conv layer: the input, then its most active channels for that image."""
    from matplotlib import colormaps

    device = next(model.parameters()).device
    maps, logits = feature_maps(model, preprocess(card, image, device))
    if not maps:
        raise ConfigError("this model has no conv layers, so there are no feature maps to show")
    size = max(48, card["image_size"])
    shown = to_tiles(image if image.dim() == 4 else image[None], size)[0]  # (S, S, 3)
    tiles, captions = [], []
    for name, fmap in maps:  # fmap: (C, h, w)
        tiles.append(shown)
        captions.append(f"{name}\n{fmap.shape[0]}x{fmap.shape[1]}x{fmap.shape[2]}")
        strongest = fmap.abs().mean(dim=(1, 2)).argsort(descending=True)[:MAPS_PER_LAYER]
        chosen = fmap[strongest]  # (M, h, w)
        low = chosen.amin(dim=(1, 2), keepdim=True)
        high = chosen.amax(dim=(1, 2), keepdim=True)
        scaled = (chosen - low) / (high - low).clamp(min=1e-8)  # each map to 0-1
        scaled = F.interpolate(scaled[:, None], size=(size, size), mode="nearest")[:, 0]  # (M, S, S)
        coloured = torch.from_numpy(colormaps["viridis"](scaled.numpy())[..., :3]).float()  # (M, S, S, 3)
        for c, tile in zip(strongest.tolist(), coloured, strict=True):
            tiles.append(tile)
            captions.append(f"ch {c}")
        for _ in range(MAPS_PER_LAYER - len(strongest)):  # a layer with fewer channels: blank tiles
            tiles.append(torch.ones_like(shown))
            captions.append("")
    probs = logits.softmax(0)
    top = int(probs.argmax())
    title = (
        f"conv outputs (before activation), the {MAPS_PER_LAYER} most active channels per layer; "
        f"predicted {card['classes'][top]} ({float(probs[top]):.2f})"
    )
    return plot_tiles(torch.stack(tiles), captions, out, cols=1 + MAPS_PER_LAYER, title=title, inches=1.2)


def run_figures(
    run: str | Path | RunDir, image_path: str | Path | None = None, out_dir: str | Path | None = None
) -> list[Path]:
    """filters.png and feature-maps.png of a run; the image is the file given, else the run's first test image."""

    run = RunDir.of(run)
    model, card = run.load_model(None, "cpu")
    out_dir = Path(out_dir or run.path)
    written = [filters_figure(model, out_dir / "filters.png")]
    if image_path is not None:
        image = decode_image(image_path, card["in_channels"], card["image_size"])  # (C, S, S)
    else:
        image = _first_dataset_image(run)
        if image is None:
            return written
    written.append(feature_maps_figure(model, card, image, out_dir / "feature-maps.png"))
    return written


def _first_dataset_image(run: RunDir) -> torch.Tensor | None:

    try:
        data = load_run_data(run)
    except ConvtrainError as error:
        warnings.warn(f"no feature maps: {error}; pass an image file to see them", stacklevel=3)
        return None
    split = data.test if data.test is not None else data.train
    return split.images[0]  # (C, S, S) uint8

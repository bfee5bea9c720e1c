"""Sizes of a network: trainable parameters, FLOPs per image, and a layer-by-layer table.

    convtrain models                                   # every model: parameters, FLOPs, description
    convtrain models --summary lenet5 --channels 1 --image-size 28

FLOPs count the multiply-adds of conv and linear layers twice (one multiply, one add); norms,
activations, pools and biases are left out, as they are a rounding error next to the convs.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

from convtrain.models import build_model, model_description, model_min_size, model_names, own_training
from convtrain.models.model_registry import ADAM_TRAINING, GENERIC_TRAINING

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (each shared tensor once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@contextmanager
def _eval_mode(model: nn.Module):
    # Remember each module's own flag: a model may be partly in eval mode (e.g. frozen BN).
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


def _probe(model: nn.Module, input_shape: tuple[int, int, int], modules: list[nn.Module], hook) -> None:
    """Run one zero image through `model` with `hook(module, output)` on each of `modules`."""
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    handles = [m.register_forward_hook(lambda m, i, o: hook(m, o)) for m in modules]
    try:
        with torch.no_grad(), _eval_mode(model):
            model(torch.zeros(1, *input_shape, device=device, dtype=dtype))  # (1, C, H, W)
    finally:
        for handle in handles:
            handle.remove()


def _first_tensor(output) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def count_flops(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """FLOPs for one (C, H, W) image: 2 x multiply-adds of every conv and linear layer."""
    macs = 0

    def add(module: nn.Module, output) -> None:
        nonlocal macs
        out = _first_tensor(output)
        if isinstance(module, _CONVS):
            kernel = torch.Size(module.kernel_size).numel()
            macs += out.numel() * (module.in_channels // module.groups) * kernel
        else:
            macs += out.numel() * module.in_features

    _probe(model, input_shape, [m for m in model.modules() if isinstance(m, (*_CONVS, nn.Linear))], add)
    return 2 * macs


def _shape(output) -> str:
    out = _first_tensor(output)
    return "-" if out is None else "(B, " + ", ".join(str(s) for s in out.shape[1:]) + ")"


def _layer_rows(model: nn.Module, input_shape: tuple[int, int, int]) -> list[tuple[str, str, str, str]]:
    """(name, type, output shape, own parameters) for every layer, in the order the forward runs them."""
    names = {module: name for name, module in model.named_modules()}
    # Leaves, plus any module holding parameters of its own beside its children.
    layers = [m for m in model.modules() if not list(m.children()) or list(m.parameters(recurse=False))]
    rows, seen = [], set()

    def row(module: nn.Module, shape: str) -> tuple[str, str, str, str]:
        params = sum(p.numel() for p in module.parameters(recurse=False))
        return (names[module] or "(model)", type(module).__name__, shape, f"{params:,}")

    def record(module: nn.Module, output) -> None:
        seen.add(module)
        rows.append(row(module, _shape(output)))

    _probe(model, input_shape, layers, record)
    # Layers the forward pass never reached still hold parameters: list them too.
    rows += [row(module, "not called") for module in layers if module not in seen]
    return rows


def summarize(model: nn.Module, input_shape: tuple[int, int, int]) -> str:
    """A table of every layer (name, type, output shape, parameters) and the totals below it."""
    header = ("layer", "type", "output shape", "params")
    rows = [header, *_layer_rows(model, input_shape)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row[:3], widths[:3], strict=True)), row[3].rjust(widths[3])]
        )
        for row in rows
    ]
    rule = "-" * len(lines[0])
    total = sum(p.numel() for p in model.parameters())
    trainable = count_parameters(model)
    flops = count_flops(model, input_shape)
    c, h, w = input_shape
    return "\n".join(
        [
            f"{type(model).__name__}, input (B, {c}, {h}, {w})",
            rule,
            lines[0],
            rule,
            *lines[1:],
            rule,
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
            f"FLOPs per image: {flops:,} ({_human(flops)})",
        ]
    )


def model_table(in_channels: int = 3, image_size: int = 32, num_classes: int = 10) -> list[dict]:
    """One row per registered model: name, params, flops (None if the image is too small), description,
    and the training options it sets for itself."""
    rows = []
    for name in model_names():
        row = {
            "name": name,
            "params": None,
            "flops": None,
            "description": model_description(name),
            "training": own_training(name),
        }
        if image_size >= model_min_size(name):
            # Built for real on the CPU, one at a time: well under a second each at 32px, seconds
            # for the 200M-parameter tutorial heads at 224px. (The meta device would skip the work,
            # but some ops there pull in the compiler stack, a far larger one-off cost.)
            model = build_model(name, in_channels, num_classes, image_size)
            row["params"] = count_parameters(model)
            row["flops"] = count_flops(model, (in_channels, image_size, image_size))
        else:
            row["description"] += f" (needs images of at least {model_min_size(name)}px)"
        rows.append(row)
    return rows


def _human(count: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(count) < 1000:
            return f"{count:.3g}{unit}"
        count /= 1000
    return f"{count:.3g}P"


def format_model_table(rows: list[dict]) -> str:
    """The rows of model_table as aligned text columns."""
    table = [("model", "params", "FLOPs/image", "description")]
    for row in rows:
        params = "-" if row["params"] is None else f"{row['params']:,}"
        flops = "-" if row["flops"] is None else _human(row["flops"])
        table.append((row["name"], params, flops, row["description"]))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    lines = [
        f"{r[0].ljust(widths[0])}  {r[1].rjust(widths[1])}  {r[2].rjust(widths[2])}  {r[3]}" for r in table
    ]
    return "\n".join(lines + ["", *format_training(rows)])


def format_training(rows: list[dict]) -> list[str]:
    """Which options each model trains with unless a recipe, config file or flag sets them."""

    def options(own: dict) -> str:
        return ", ".join(f"{name} {value}" for name, value in {**GENERIC_TRAINING, **own}.items())

    groups: dict[str, list[str]] = {}
    for row in rows:
        if row["training"]:
            groups.setdefault(options(row["training"]), []).append(row["name"])
    lines = ["trained with, unless a recipe, --config or flag says otherwise:"]
    lines += [f"  {', '.join(names)}: {key}" for key, names in groups.items()]
    lines.append(f"  every other model: {options({})}")
    adam = ", ".join(f"{name} {value}" for name, value in ADAM_TRAINING.items())
    return [*lines, f"  (those are SGD's; with --optimizer adam or adamw, every model: {adam})"]

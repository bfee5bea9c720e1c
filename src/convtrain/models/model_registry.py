"""The registry of network builders by name, and the training options each network brings.

Each family file in this folder registers its builders with `@register_model`; every module here that
is not listed in _NOT_FAMILIES is imported the first time the registry is read, so a new family is
just a new file: no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from convtrain.base.errors import ConfigError
from convtrain.models.external import build_external, split_name

# The options a network may set for itself (`register_model(..., training=...)`, `convtrain models`
# lists them), and what a run takes for one that does not. TrainConfig leaves them unset (None), and
# `with_model_defaults` fills them when the job starts: `--model X` alone trains X with X's own numbers.
GENERIC_TRAINING: dict[str, Any] = {
    "batch_size": 128,
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "label_smoothing": 0.0,
}
# Those numbers are SGD's. Adam and AdamW scale each step by the gradient's own size, so their lr
# does not carry over from SGD; unset, they take the usual 1e-3 (beta1 0.9) whatever the model.
ADAM_TRAINING: dict[str, Any] = {"lr": 1e-3, "momentum": 0.9}

Builder = Callable[[int, int, int], nn.Module]  # (in_channels, num_classes, image_size) -> network

# Modules in this folder that hold no registered models.
_NOT_FAMILIES = {
    "model_registry",
    "init_schemes",
    "summary",
    "hooks",
    "external",
    "heads",
}  # external: timm/torchvision by name


@dataclass(frozen=True)
class ModelEntry:
    builder: Builder
    description: str
    min_size: int
    training: Mapping[str, Any] = field(default_factory=dict)
    cpu_bf16: bool = False  # measured to train faster in bf16 on a CPU with bf16 units, at fp32's accuracy


_REGISTRY: dict[str, ModelEntry] = {}
_families_loaded = False


def register_model(
    name: str,
    description: str,
    min_size: int = 16,
    training: Mapping[str, Any] | None = None,
    cpu_bf16: bool = False,
) -> Callable[[Builder], Builder]:
    """Decorator that registers `fn(in_channels, num_classes, image_size) -> nn.Module` under `name`.

    `description` is the one line shown by `convtrain models`; `min_size` is the smallest square
    image side (pixels) the architecture accepts, checked by build_model before building.
    `training` holds the network's own values for any of GENERIC_TRAINING's options. `cpu_bf16`:
    measured to train faster in bf16 than fp32 on a CPU with bf16 units, at fp32's accuracy, so
    `--precision auto` picks bf16 there (BENCHMARKS.md, "bf16 on the CPU").
    """
    unknown = sorted(set(training or {}) - set(GENERIC_TRAINING))
    if unknown:
        raise ValueError(
            f"model {name!r}: training options {unknown} are not among {sorted(GENERIC_TRAINING)}"
        )

    def add(fn: Builder) -> Builder:
        if name in _REGISTRY and _REGISTRY[name].builder is not fn:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(fn, description, min_size, dict(training or {}), cpu_bf16)
        return fn

    return add


@contextmanager
def registered_model(
    name: str,
    builder: Builder,
    description: str = "",
    min_size: int = 16,
    training: Mapping[str, Any] | None = None,
) -> Iterator[Builder]:
    """`builder` registered under `name` for the length of the block, and removed on leaving it, for a
    throwaway model in a test or a notebook. The same checks as register_model (a taken name is refused).

        with registered_model("toy-net", build_toy, "a linear probe", min_size=20):
            build_model("toy-net", 1, 4, 20)
    """
    _registry()  # the families first, so a name that one of them holds is refused here, not later
    register_model(name, description, min_size, training)(builder)
    try:
        yield builder
    finally:
        del _REGISTRY[name]


def _registry() -> dict[str, ModelEntry]:
    # Lazy, not at import time: the family files import register_model from this module,
    # so they can only be imported once this module has finished loading.
    global _families_loaded
    if not _families_loaded:
        _families_loaded = True
        for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if module.name not in _NOT_FAMILIES and not module.name.startswith("_"):
                importlib.import_module(f"convtrain.models.{module.name}")
    return _REGISTRY


def model_names() -> list[str]:
    """Every registered model name, sorted."""
    return sorted(_registry())


def _entry(name: str) -> ModelEntry:
    registry = _registry()
    if name not in registry:
        raise ConfigError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(registry))}, or timm:NAME / torchvision:NAME"
        )
    return registry[name]


def model_description(name: str) -> str:
    """The one-line description a model was registered with."""
    return _entry(name).description


def model_min_size(name: str) -> int:
    """The smallest square image side, in pixels, that the model accepts."""
    return _entry(name).min_size


def own_training(name: str) -> dict[str, Any]:
    """The training options a zoo model sets for itself ({} for timm:/torchvision: names and most models)."""
    return {} if split_name(name) is not None else dict(_entry(name).training)


def gains_from_cpu_bf16(name: str) -> bool:
    """Whether a zoo model was measured to gain from a CPU's bf16 units (False for library networks)."""
    return split_name(name) is None and _entry(name).cpu_bf16


def build_model(name: str, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    """Build a freshly initialised network for (in_channels, image_size, image_size) inputs.

    Names with a `timm:` or `torchvision:` prefix come from those libraries (see external.py).
    """
    external = split_name(name) is not None
    min_size = 1 if external else _entry(name).min_size
    if in_channels < 1:
        raise ConfigError(f"model {name}: in_channels must be at least 1, got {in_channels}")
    if num_classes < 2:
        raise ConfigError(f"model {name}: needs at least 2 classes, got {num_classes}")
    if image_size < min_size:
        raise ConfigError(
            f"model {name} needs images of at least {min_size}x{min_size} pixels, "
            f"got {image_size}; pass --image-size {min_size} or larger, or pick another model"
        )
    if external:
        return build_external(name, in_channels, num_classes, image_size)
    return _entry(name).builder(in_channels, num_classes, image_size)

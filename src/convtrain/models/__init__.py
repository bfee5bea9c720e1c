"""The model zoo: a registry of network builders by name, and weight initialisation.

Each family lives in its own file here (lenet.py, tutorial_cnns.py, mnist_cnn.py, resnet.py, ...)
and registers its builders with `@register_model`. Every module in this folder except summary.py
is imported the first time the registry is read, so a new family is just a new file: no list to edit.

    >>> from convtrain.models import build_model, model_names
    >>> model_names()
    >>> build_model("lenet5", in_channels=1, num_classes=10, image_size=28)

    convtrain models                       # the table: parameters, FLOPs per image, own training options
    convtrain models --summary resnet18    # one model's layers and output shapes
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from convtrain.config import GENERIC_TRAINING
from convtrain.errors import ConfigError

Builder = Callable[[int, int, int], nn.Module]  # (in_channels, num_classes, image_size) -> network

# Modules in this folder that hold no registered models.
_NOT_FAMILIES = {"summary", "hooks", "external", "heads"}  # external: timm/torchvision by name


@dataclass(frozen=True)
class ModelEntry:
    builder: Builder
    description: str
    min_size: int
    training: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}
_families_loaded = False


def register_model(
    name: str, description: str, min_size: int = 16, training: Mapping[str, Any] | None = None
) -> Callable[[Builder], Builder]:
    """Decorator that registers `fn(in_channels, num_classes, image_size) -> nn.Module` under `name`.

    `description` is the one line shown by `convtrain models`; `min_size` is the smallest square
    image side (pixels) the architecture accepts, checked by build_model before building.
    `training` holds the network's own values for any of GENERIC_TRAINING's options.
    """
    unknown = sorted(set(training or {}) - set(GENERIC_TRAINING))
    if unknown:
        raise ValueError(
            f"model {name!r}: training options {unknown} are not among {sorted(GENERIC_TRAINING)}"
        )

    def add(fn: Builder) -> Builder:
        if name in _REGISTRY and _REGISTRY[name].builder is not fn:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(fn, description, min_size, dict(training or {}))
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
        for module in pkgutil.iter_modules(__path__):
            if module.name not in _NOT_FAMILIES and not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")
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
    from convtrain.models.external import split_name

    return {} if split_name(name) is not None else dict(_entry(name).training)


def build_model(name: str, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    """Build a freshly initialised network for (in_channels, image_size, image_size) inputs.

    Names with a `timm:` or `torchvision:` prefix come from those libraries (see external.py).
    """
    from convtrain.models.external import build_external, split_name

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


# ----- weight initialisation -----

INIT_SCHEMES = ("default", "kaiming", "xavier", "normal")
NORMAL_STD = 0.02
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def init_weights(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv and linear layers in place; norm layers get weight 1, bias 0.

    default: keep PyTorch's own init (and any init the model does itself), touch nothing.
    kaiming: He normal, fan_in, ReLU gain. xavier: Glorot uniform. normal: N(0, 0.02).
    Biases of conv and linear layers are set to zero for every scheme but default.
    """
    if scheme not in INIT_SCHEMES:
        raise ConfigError(f"init must be one of {', '.join(INIT_SCHEMES)}; got {scheme!r}")
    if scheme == "default":
        return
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.normal_(module.weight, mean=0.0, std=NORMAL_STD)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORMS) and getattr(module, "weight", None) is not None:
            nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

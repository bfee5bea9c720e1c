"""Architectures from timm and torchvision by name: `timm:NAME` and `torchvision:NAME`.

build_model() hands every name with one of these prefixes to build_external(), so the run folder,
evaluate, predict, export and the report treat them like the zoo: the model card's architecture
('timm:resnet10t') and input shape rebuild the same network. Only the architecture is built here;
pretrained weights are training/warm_start.py's job. timm is the optional extra `convtrain[timm]`.

    convtrain models --source timm --filter 'resnet*'
    convtrain train --model timm:resnet10t --dataset npz:photos.npz
    convtrain train --model torchvision:resnet18 --dataset mnist      # first conv made 1-channel
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Any

from torch import nn

from convtrain.base.errors import ConfigError

SOURCES = ("timm", "torchvision")
TIMM_INSTALL = "pip install 'convtrain[timm]'"
LIBRARY_SIDE = 224  # the input side of a library model whose own size is not recorded


def split_name(name: str) -> tuple[str, str] | None:
    """('timm', 'resnet10t') for 'timm:resnet10t'; None for a zoo name."""
    source, sep, arch = name.partition(":")
    return (source, arch) if sep and source in SOURCES else None


def timm_module():
    """timm, or a one-line error naming the extra that installs it."""
    try:
        import timm
    except ImportError:
        raise ConfigError(f"timm models need the timm package: {TIMM_INSTALL}") from None
    return timm


def available(source: str, pattern: str = "*", pretrained: bool = False) -> list[str]:
    """The library's model names matching a shell pattern such as 'resnet*', sorted; with
    pretrained=True only those the library has weights for."""
    if source == "timm":
        timm = timm_module()
        if pretrained:  # timm lists these as name.tag, one per set of weights
            return sorted({n.split(".")[0] for n in timm.list_models(pattern, pretrained=True)})
        return sorted(timm.list_models(pattern))
    if source == "torchvision":
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)  # classification models only
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
        if pretrained:
            names = [n for n in names if torchvision.models.get_model_weights(n).DEFAULT is not None]
        return sorted(names)
    raise ConfigError(f"source must be one of zoo, {', '.join(SOURCES)}; got {source!r}")


def check_name(source: str, arch: str) -> None:
    """Refuse a name the library does not have, suggesting the closest ones."""
    if source == "timm" and timm_module().is_model(arch):  # also takes 'name.tag' (resnet10t.c3_in1k)
        return
    names = available(source)
    if arch in names:
        return
    close = difflib.get_close_matches(arch, names, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(f'{source}:{n}' for n in close)}? " if close else ""
    raise ConfigError(
        f"unknown {source} model {arch!r}; {hint}`convtrain models --source {source} --filter '*{arch[:4]}*'` lists them"
    )


def model_arguments(name: str, in_channels: int, num_classes: int, image_size: int) -> dict[str, Any]:
    """The keyword arguments the library's builder is called with (the model card records them)."""
    source, arch = split_name(name)
    check_name(source, arch)
    if source == "timm":
        args: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_channels}
        cfg = timm_module().models.get_pretrained_cfg(arch)
        if cfg is not None and cfg.fixed_input_size:  # ViT-like: position embeddings per input size
            args["img_size"] = image_size
        return args
    args = {"num_classes": num_classes}
    if arch.startswith("vit_"):  # torchvision's ViTs are built for one input size
        args["image_size"] = image_size
    if arch in ("googlenet", "inception_v3"):  # their auxiliary heads return tuples while training
        args["aux_logits"] = False
    return args


def build_external(name: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """A freshly initialised timm or torchvision network for (in_channels, image_size, image_size) inputs."""
    source, arch = split_name(name)
    args = model_arguments(name, in_channels, num_classes, image_size)
    if source == "timm":
        return timm_module().create_model(arch, pretrained=False, **args)
    import torchvision

    model = torchvision.models.get_model(arch, weights=None, **args)  # head sized for num_classes
    if in_channels != 3:
        _replace_first_conv(model, in_channels)
    return model


def first_conv_name(model: nn.Module) -> str:
    """The module name of the first Conv2d (the stem), '' when there is none."""
    return next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), "")


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    # torchvision builds every classifier for RGB; a gray stem is the same conv with one input channel
    name = first_conv_name(model)
    conv = model.get_submodule(name)
    parent, _, attr = name.rpartition(".")
    stem = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    setattr(model.get_submodule(parent), attr, stem)


def default_input_size(name: str) -> tuple[int, int]:
    """(side the library trains the model at, smallest side it takes) for timm:/torchvision: names:
    timm's pretrained config, torchvision's default weights' crop; 224 and 1 when the library says nothing."""
    source, arch = split_name(name)
    check_name(source, arch)
    if source == "timm":
        cfg = timm_module().models.get_pretrained_cfg(arch)
        side = cfg.input_size[-1] if cfg is not None and cfg.input_size else LIBRARY_SIDE
        return side, side if cfg is not None and cfg.fixed_input_size else 1
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    if weights is None:
        return LIBRARY_SIDE, 1
    crop = getattr(weights.transforms(), "crop_size", [LIBRARY_SIDE])
    return crop[0], weights.meta.get("min_size", (1, 1))[0]

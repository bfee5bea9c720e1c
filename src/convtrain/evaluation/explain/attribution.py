"""Heat maps of what a network looks at: Grad-CAM, saliency and integrated gradients, through Captum.

    heat = explain(model, batch, "gradcam")               # batch normalised as in training: (N, C, H, W)
    heat = explain(model, batch, "ig", layer=None)        # (N, H, W) in [0, 1], 1 = what mattered most
    convtrain predict runs/mnist-fastnet-tiny digit.png --explain gradcam --out why/

- gradcam (Selvaraju et al. 2017): the feature maps of one conv layer or block, weighted by the
  spatially averaged gradient of the class score, summed over channels, ReLU; then upsampled
  bilinearly to the input. Coarse (the layer's resolution) but class-specific.
- saliency (Simonyan et al. 2014): |d score / d pixel|, the largest over the colour channels.
- ig (Sundararajan et al. 2017): integrated gradients from a baseline of zeros, which in the
  normalised space the model sees is the dataset's mean colour; |attribution| summed over channels.

Every map is divided by its own maximum, so 1 is the image's most important pixel and 0 means no
evidence for the class. Captum is the optional extra `convtrain[explain]`, imported only here.
"""

from __future__ import annotations

import torch
from torch import nn

from convtrain.base.errors import ConvtrainError, first_line

METHODS = ("gradcam", "saliency", "ig")
INSTALL = "pip install 'convtrain[explain]'"
# Riemann steps along the path. Captum's default is 50; on the tests' square images 32 steps gave maps
# within 0.007 (rank correlation 0.9999) of 200 steps, for 0.64x the cost of 50.
IG_STEPS = 32


class ExplainError(ConvtrainError):
    """A method, layer or model that cannot be explained, or Captum not installed."""


def explain(
    model: nn.Module,
    images: torch.Tensor,
    method: str,
    target: int | torch.Tensor | None = None,
    layer: str | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Heat maps (N, H, W) in [0, 1] on the CPU for normalised images (N, C, H, W).

    target: the class to explain, one for all images or one per image (N,); by default each
    image's predicted class. layer (Grad-CAM only): a module name from `model.named_modules()`;
    by default the last convolutional layer or block (see `default_layer`).
    """
    captum = check_method(method, layer)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ExplainError(f"explain needs normalised float images (N, C, H, W), got {shape}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # BatchNorm must use its running statistics: one image's map may not depend on the others
    # Callers may sit in inference_mode (predict does); attributions need gradients.
    with torch.inference_mode(False), torch.enable_grad():
        # an ordinary tensor even if made in inference mode; requiring grad spares a Captum warning
        images = images.detach().clone().to(device).requires_grad_()
        try:
            targets = _targets(model, images, target)  # (N,)
            module = _pick_layer(model, images[:1], layer) if method == "gradcam" else None
            maps = [
                _attribute(captum, model, method, part, t, module)
                for part, t in zip(images.split(batch_size), targets.split(batch_size), strict=True)
            ]
            return _scale_to_unit(torch.cat(maps))  # (N, H, W)
        finally:
            model.train(was_training)


def check_method(method: str, layer: str | None = None):
    """Fail before any work on an unknown method, a layer for a method that takes none, or no Captum.

    Returns the `captum.attr` module.
    """
    if method not in METHODS:
        raise ExplainError(f"unknown explanation method {method!r}; choose one of: {', '.join(METHODS)}")
    if method != "gradcam" and layer is not None:
        raise ExplainError(f"--layer applies to gradcam only, not to {method}; leave it out")
    try:
        import captum.attr
    except ImportError:
        raise ExplainError(f"heat maps need Captum, which is not installed: {INSTALL}") from None
    return captum.attr


def _targets(model: nn.Module, images: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    n = len(images)
    if target is None:
        with torch.no_grad():
            return _forward(model, images).argmax(1)  # (N,) the predicted classes
    targets = torch.as_tensor(target, device=images.device).long().flatten()
    if targets.numel() == 1:
        targets = targets.expand(n)
    if targets.numel() != n:
        raise ExplainError(f"target has {targets.numel()} classes for {n} images; give one, or one per image")
    return targets  # (N,)


def _forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    try:
        return model(images)  # (N, K)
    except RuntimeError as error:
        raise ExplainError(
            f"the model cannot take images of shape {tuple(images.shape)}: {first_line(error)}"
        ) from None


def _attribute(captum, model, method: str, images, targets, module) -> torch.Tensor:
    """Raw, non-negative maps (B, H, W) of one batch."""
    if method == "gradcam":
        cam = captum.LayerGradCam(model, module).attribute(images, target=targets, relu_attributions=True)
        # (B, 1, h, w) at the layer's resolution -> the input's
        cam = captum.LayerAttribution.interpolate(cam, tuple(images.shape[-2:]), interpolate_mode="bilinear")
        return cam[:, 0].detach().float().cpu()  # (B, H, W)
    if method == "saliency":
        grads = captum.Saliency(model).attribute(images, target=targets, abs=True)  # (B, C, H, W)
        return grads.amax(1).detach().float().cpu()  # (B, H, W)
    ig = captum.IntegratedGradients(model).attribute(
        images, baselines=torch.zeros_like(images), target=targets, n_steps=IG_STEPS, internal_batch_size=64
    )  # (B, C, H, W)
    return ig.abs().sum(1).detach().float().cpu()  # (B, H, W)


def _scale_to_unit(maps: torch.Tensor) -> torch.Tensor:
    peak = maps.flatten(1).amax(1).view(-1, 1, 1)  # (N, 1, 1)
    return torch.where(peak > 0, maps / peak.clamp_min(1e-30), torch.zeros_like(maps))  # (N, H, W)


# ----- which layer Grad-CAM looks at -----


def conv_layer_names(model: nn.Module) -> list[str]:
    """Every conv layer and every block holding one, by module name: the names `--layer` suggests."""
    return [
        name
        for name, module in model.named_modules()
        if name and any(isinstance(m, nn.Conv2d) for m in module.modules())
    ]


def default_layer(model: nn.Module, example: torch.Tensor) -> str:
    """The module whose output is the last conv layer's activation map, taken as large as it goes.

    Traced on `example` (1, C, H, W): after the last nn.Conv2d to run, the modules that finish next
    at the same resolution (its BatchNorm and activation, then the blocks and stages that end with
    it) are followed up to the first pooling layer or change of size. For the zoo that is
    `features` (mnist-cnn, resnets, fastnets: the map the head pools) or, where `features` ends
    in a max pool (lenet, the tutorial CNNs), the ReLU after the last conv.
    """
    finished = _trace(model, example)
    last_conv = max((i for i, (_, m, _) in enumerate(finished) if isinstance(m, nn.Conv2d)), default=None)
    if last_conv is None:
        raise _no_conv(model)
    conv = finished[last_conv][1]
    chosen, size = finished[last_conv][0], finished[last_conv][2][-2:]
    for name, module, shape in finished[last_conv + 1 :]:
        holds_conv = any(m is conv for m in module.modules())
        pools = type(module).__module__ == "torch.nn.modules.pooling"
        if len(shape) != 4 or shape[-2:] != size or (pools and not holds_conv):
            break
        chosen = name
    return chosen


def _pick_layer(model: nn.Module, example: torch.Tensor, layer: str | None) -> nn.Module:
    modules = dict(model.named_modules())
    if layer is None:
        return modules[default_layer(model, example)]
    names = conv_layer_names(model)
    if not names:
        raise _no_conv(model)
    if not layer or layer not in modules:
        raise ExplainError(
            f"no layer {layer!r} in {type(model).__name__}; conv layers and blocks: {', '.join(names)}"
        )
    shape = dict((name, shape) for name, _, shape in _trace(model, example)).get(layer)
    if shape is None or len(shape) != 4:
        got = "no output" if shape is None else f"output {shape}"
        raise ExplainError(
            f"layer {layer!r} gives {got}, not a feature map (N, C, h, w); pick a conv layer or block: "
            + ", ".join(names)
        )
    return modules[layer]


def _no_conv(model: nn.Module) -> ExplainError:
    return ExplainError(
        f"{type(model).__name__} has no convolutional layer for Grad-CAM; use --explain saliency or ig"
    )


def _trace(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(name, module, output shape) of every submodule, in the order their forward calls finish."""
    finished: list[tuple[str, nn.Module, tuple[int, ...]]] = []

    def record(name: str):
        def hook(module, inputs, output):
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
            finished.append((name, module, shape))

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n]
    was_training = model.training
    model.eval()  # one image through BatchNorm in training mode is an error, and would move its statistics
    try:
        with torch.no_grad():
            _forward(model, example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return finished

"""Fine-tuning: which parameters are the head, discriminative learning rates, and freezing the backbone.

The head is the layer that makes the logits: timm's get_classifier(), else the last Linear or Conv2d
of the network (torchvision's fc/classifier[-1], the zoo's last layer). Everything else is the
backbone. --backbone-lr-mult splits every optimizer group in two, the backbone part at lr x mult;
--freeze-epochs N trains only the head for the first N epochs, and its frozen BatchNorm layers stay
in eval mode (their running statistics kept, as fastai does) unless --train-bn.

    convtrain train --model timm:resnet10t --pretrained --freeze-epochs 1 --backbone-lr-mult 0.1
"""

from __future__ import annotations

from typing import Any

from torch import nn

from convtrain.base.errors import ConfigError


def head_name(model: nn.Module) -> str:
    """The module name of the classifier head, e.g. 'fc' or 'classifier.3'."""
    if hasattr(model, "get_classifier"):  # timm's models name their own head
        head = model.get_classifier()
        name = next((n for n, m in model.named_modules() if m is head), None)
        if name and any(True for _ in head.parameters()):
            return name
    name = ""
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            name = module_name
    if not name:
        raise ConfigError(f"{type(model).__name__} has no Linear or Conv2d layer to use as its head")
    return name


def head_keys(model: nn.Module) -> set[str]:
    """state_dict keys of the head (its weight and bias)."""
    name = head_name(model)
    return {f"{name}.{key}" for key in model.get_submodule(name).state_dict()}


def split_head_groups(
    model: nn.Module, groups: list[dict[str, Any]], backbone_lr_mult: float
) -> list[dict[str, Any]]:
    """Each optimizer group split into its head part and its backbone part (lr x backbone_lr_mult)."""
    head = {id(p) for p in model.get_submodule(head_name(model)).parameters()}
    split = []
    for group in groups:
        params = list(group["params"])
        for part, mult in (
            ([p for p in params if id(p) in head], 1.0),
            ([p for p in params if id(p) not in head], backbone_lr_mult),
        ):
            if part:
                split.append({**group, "params": part, "lr": group["lr"] * mult})
    return split


class Freezer:
    """Freezes the backbone for the first `epochs` epochs: a function of the epoch only, so a resumed
    run freezes exactly what the uninterrupted one did."""

    def __init__(self, model: nn.Module, epochs: int, train_bn: bool) -> None:
        self.epochs = epochs
        head = model.get_submodule(head_name(model)) if epochs else None
        norms = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
        held = {id(p) for p in head.parameters()} if head is not None else set()
        if train_bn:  # fastai's train_bn: norm layers keep learning while the rest is frozen
            held |= {id(p) for m in model.modules() if isinstance(m, norms) for p in m.parameters()}
        self.backbone = [p for p in model.parameters() if id(p) not in held] if epochs else []
        self.frozen_norms = (
            [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            if epochs and not train_bn
            else []
        )

    def frozen(self, epoch: int) -> bool:
        return epoch < self.epochs

    def train_mode(self, net: nn.Module, epoch: int) -> None:
        """net.train() for `epoch` (from 0), with the backbone frozen while epoch < epochs."""
        frozen = self.frozen(epoch)
        for p in self.backbone:
            p.requires_grad_(not frozen)  # no gradient: optimizers skip a parameter whose grad is None
        net.train()
        if frozen:
            for norm in self.frozen_norms:
                norm.eval()  # keep the pretrained running statistics

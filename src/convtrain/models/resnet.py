"""Residual networks sized for small images: the fast CIFAR ResNet-9 and the CIFAR ResNet-18.

Both keep full resolution in the stem (a 3x3 stride-1 conv, no max pool), because a 32px image
has no pixels to spare; ImageNet-style stems would shrink it to 8px before the first block.

    convtrain train --model resnet9 --dataset cifar10 --augment flip,crop:4 --epochs 20
    convtrain models --summary resnet18
"""

from __future__ import annotations

import torch
import torch.nn as nn

from convtrain.models.model_registry import register_model

# ----- building blocks -----


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 'same' conv (no bias: the BatchNorm shift replaces it), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """x + body(x), with no activation after the sum (ResNet-9's residual unit)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(channels, channels), conv_bn_relu(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return x + self.body(x)  # (B, C, H, W)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut, then ReLU. The shortcut is a 1x1 conv + BN when the
    block changes resolution or width, otherwise the identity."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C_in, H, W)
        out = self.relu1(self.bn1(self.conv1(x)))  # (B, C_out, H/stride, W/stride)
        out = self.bn2(self.conv2(out))  # (B, C_out, H/stride, W/stride)
        return self.relu2(out + self.shortcut(x))  # (B, C_out, H/stride, W/stride)


# ----- networks -----


class ResNet9(nn.Module):
    """The fast CIFAR-10 ResNet-9 of the training-speed benchmarks.

    prep: conv64 -> layer1: conv128, maxpool 2, residual(conv128, conv128)
    -> layer2: conv256, maxpool 2 -> layer3: conv512, maxpool 2, residual(conv512, conv512)
    -> global max pool -> fc num_classes. Every conv is 3x3 + BatchNorm + ReLU. The fixed logit
    scaling of the original is left out: the learning rate plays that role here.
    3x32x32, 10 classes: 6.57M parameters.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, 64),  # prep
            nn.Sequential(conv_bn_relu(64, 128), nn.MaxPool2d(2), Residual(128)),  # layer1
            nn.Sequential(conv_bn_relu(128, 256), nn.MaxPool2d(2)),  # layer2
            nn.Sequential(conv_bn_relu(256, 512), nn.MaxPool2d(2), Residual(512)),  # layer3
        )
        self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, S, S)
        x = self.features(x)  # (B, 512, S/8, S/8)
        return self.head(x)  # (B, num_classes)


class ResNet18(nn.Module):
    """ResNet-18 in its CIFAR form: 3x3 stride-1 stem conv64 (BN, ReLU), no max pool, then four
    stages of two BasicBlocks each, 64-128-256-512 channels (stride 2 entering stages 2-4),
    global average pool, fc num_classes. 3x32x32, 10 classes: 11,173,962 parameters.
    """

    def __init__(self, in_channels: int, num_classes: int, blocks: tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__()
        stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        stages, width = [], 64
        for index, count in enumerate(blocks):
            out_width = 64 * 2**index
            stride = 1 if index == 0 else 2
            layers = [BasicBlock(width, out_width, stride)]
            layers += [BasicBlock(out_width, out_width, 1) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            width = out_width
        self.features = nn.Sequential(stem, *stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, S, S)
        x = self.features(x)  # (B, 512, S/8, S/8)
        return self.head(x)  # (B, num_classes)


# ----- registered names -----


# Three halvings (pools or stride-2 convs) must leave at least one pixel: 8 -> 4 -> 2 -> 1.
@register_model("resnet9", "fast CIFAR ResNet-9: 4 conv stages 64-512 with 2 residual units, BN", min_size=8)
def resnet9(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return ResNet9(in_channels, num_classes)


@register_model("resnet18", "CIFAR ResNet-18: 3x3 stem, 8 basic blocks 64-512, global avg pool", min_size=8)
def resnet18(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return ResNet18(in_channels, num_classes)

"""Plain CNNs from the classic CIFAR-10 tutorials: stacks of 3x3 convs and max pools, then fc layers.

No normalisation layers: these are the baselines people first write, kept faithful so their
numbers can be compared. Their fc input grows with the image side squared (see each docstring).

    convtrain train --model twoconv-cnn --dataset cifar10 --epochs 10
    convtrain models --summary sixconv-cnn
"""

from __future__ import annotations

import torch
import torch.nn as nn

from convtrain.models.model_registry import register_model

# fourconv-cnn's own init: weights ~ N(0, 0.02), one fixed std for every layer, tutorial style.
# Unlike a fan-in scaled init it shrinks the signal at every layer (logits start near 1e-3), so
# plain SGD sits at loss ln(num_classes) for the first ~50 steps before it takes off (measured on
# MNIST at lr 0.05, batch 128; PyTorch's default init starts falling within ~30 steps).
FOURCONV_WEIGHT_STD = 0.02


def conv_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """A 3x3 'same' conv and its ReLU: the repeated unit of every net in this file."""
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]


class TwoConvCNN(nn.Module):
    """The two-conv CIFAR-10 tutorial baseline.

    conv32 3x3 -> ReLU -> dropout 0.3 -> conv32 3x3 -> ReLU -> maxpool 2
    -> flatten (32 * (S/2)^2: 8192 for 32px) -> fc512 -> ReLU -> dropout 0.5 -> fc num_classes.
    Almost all of its 4.2M parameters (3x32x32, 10 classes) sit in the 8192 -> 512 layer.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        side = image_size // 2
        self.features = nn.Sequential(
            *conv_relu(in_channels, 32),
            nn.Dropout(0.3),
            *conv_relu(32, 32),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * side * side, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, S, S)
        x = self.features(x)  # (B, 32, S/2, S/2)
        return self.head(x)  # (B, num_classes)


class SixConvCNN(nn.Module):
    """The six-conv CIFAR-10 tutorial network: three conv-conv-pool stages, then three fc layers.

    [conv32, conv64, pool] -> [conv128, conv128, pool] -> [conv256, conv256, pool], all 3x3 pad 1
    with ReLU -> flatten (256 * (S/8)^2: 4096 for 32px) -> fc1024 -> ReLU -> fc512 -> ReLU
    -> fc num_classes.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        side = image_size // 2 // 2 // 2
        self.features = nn.Sequential(
            *conv_relu(in_channels, 32),
            *conv_relu(32, 64),
            nn.MaxPool2d(2),
            *conv_relu(64, 128),
            *conv_relu(128, 128),
            nn.MaxPool2d(2),
            *conv_relu(128, 256),
            *conv_relu(256, 256),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * side * side, 1024),
            nn.ReLU(inplace=True),
            nn.Linear(1024, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, S, S)
        x = self.features(x)  # (B, 256, S/8, S/8)
        return self.head(x)  # (B, num_classes)


class FourConvCNN(nn.Module):
    """The four-conv 16-32-64-128 tutorial CNN with 25% dropout, and its own normal init.

    [conv16, conv32, pool, dropout 0.25] -> [conv64, conv128, pool, dropout 0.25], all 3x3 pad 1
    with ReLU -> flatten (128 * (S/4)^2: 8192 for 32px) -> fc512 -> ReLU -> dropout 0.25
    -> fc num_classes.

    Init (done here, so it holds under `--init default`): conv and linear weights drawn from
    N(0, 0.02), biases zero; see FOURCONV_WEIGHT_STD for what that costs at the start.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        side = image_size // 2 // 2
        self.features = nn.Sequential(
            *conv_relu(in_channels, 16),
            *conv_relu(16, 32),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            *conv_relu(32, 64),
            *conv_relu(64, 128),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * side * side, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.25),
            nn.Linear(512, num_classes),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=FOURCONV_WEIGHT_STD)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, S, S)
        x = self.features(x)  # (B, 128, S/4, S/4)
        return self.head(x)  # (B, num_classes)


@register_model("twoconv-cnn", "tutorial CIFAR baseline: 2 convs (32), pool, fc512, dropout", min_size=2)
def twoconv_cnn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return TwoConvCNN(in_channels, num_classes, image_size)


@register_model(
    "sixconv-cnn", "tutorial CIFAR net: 3 stages of conv-conv-pool (32-256), fc1024-512", min_size=8
)
def sixconv_cnn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return SixConvCNN(in_channels, num_classes, image_size)


@register_model(
    "fourconv-cnn", "tutorial CNN: convs 16-32-64-128, 2 pools, 25% dropout, N(0, 0.02) init", min_size=4
)
def fourconv_cnn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return FourConvCNN(in_channels, num_classes, image_size)

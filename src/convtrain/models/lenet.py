"""LeNet-5, the first convolutional digit classifier, in its modern ReLU + max-pool form.

convtrain train --model lenet5 --dataset mnist --epochs 5
convtrain models --summary lenet5-bn --channels 1 --image-size 28
"""

from __future__ import annotations

import torch
import torch.nn as nn

from convtrain.models.model_registry import register_model


def lenet_padding(image_size: int) -> int:
    """Padding of the first conv: 2 below 32 pixels, else 0.

    LeNet-5 was designed for 32x32 inputs (28x28 digits centred in a 32x32 field). Padding a 28px
    image by 2 gives the first conv that same 32px field, so 28px and 32px inputs both end in
    16 maps of 5x5 = 400 features before the classifier. Larger images need no padding.
    """
    return 2 if image_size < 32 else 0


class LeNet5(nn.Module):
    """LeNet-5 as taught in most first deep-learning tutorials, with ReLU and max pooling.

    conv6 5x5 -> ReLU -> maxpool 2 -> conv16 5x5 -> [BatchNorm] -> ReLU -> maxpool 2
    -> fc120 -> ReLU -> fc84 -> ReLU -> fc num_classes.

    The first conv pads by 2 below 32px (see lenet_padding). With `batch_norm` (lenet5-bn) a
    BatchNorm2d follows the second conv, which then has no bias: the norm's shift replaces it.
    1x28x28 input, 10 classes: 61,706 parameters (lenet5), 61,722 (lenet5-bn).
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, batch_norm: bool = False) -> None:
        super().__init__()
        padding = lenet_padding(image_size)
        side = (image_size + 2 * padding - 4) // 2  # conv 5x5, then pool 2
        side = (side - 4) // 2  # conv 5x5, then pool 2
        norm = [nn.BatchNorm2d(16)] if batch_norm else []
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, bias=not batch_norm),
            *norm,
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        x = self.features(x)  # (B, 16, side, side)
        return self.head(x)  # (B, num_classes)


# The smallest side that leaves a 1x1 map after the second pool: (12 + 4 - 4) // 2 = 6, (6 - 4) // 2 = 1.
@register_model("lenet5", "LeNet-5: two 5x5 convs + three fc layers, ReLU and max pooling", min_size=12)
def lenet5(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return LeNet5(in_channels, num_classes, image_size)


@register_model("lenet5-bn", "LeNet-5 with BatchNorm after the second conv", min_size=12)
def lenet5_bn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return LeNet5(in_channels, num_classes, image_size, batch_norm=True)

"""fastnet: a fast CIFAR-10 network, written from the public descriptions of the CIFAR-10 speed records.

    convtrain train --recipe cifar10-fast                               # on a GPU
    convtrain train --recipe mnist-fast                     # fastnet-tiny: 99% in one CPU epoch
    convtrain models --summary fastnet

The ideas, in the order the network uses them:
1. A frozen 2x2 patch-whitening first layer: its filters are the eigenvectors of the covariance of
   the training images' 2x2 patches, each scaled by 1/sqrt(eigenvalue), so that its outputs are
   decorrelated with unit variance. Each filter appears twice, with opposite signs, so the GELU
   after it keeps both halves of every whitened direction. Set from the data by `fit_to_data`,
   which convtrain's job calls once with up to 5000 normalised training images. Its bias trains in
   fastnet and fastnet-small; fastnet-tiny keeps it as fitted, which spares the backward pass the
   first block's input gradient (BENCHMARKS.md, "fastnet-tiny against the CPU's peak").
2. Three blocks of conv3x3 -> maxpool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU. Every 3x3 conv
   starts as the identity on its first in_channels outputs (Dirac init), so the untrained network
   passes the whitened image through, and the rest of each filter bank starts random.
3. BatchNorm with its scale frozen at 1 (a buffer, not a parameter) and only its shift learned,
   at a larger learning rate than the weights (see `parameter_groups`).
4. A head of global max pooling and a bias-free linear layer whose output is scaled down by
   `logit_scale`, which keeps the first steps' softmax soft at the high learning rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convtrain.models.model_registry import register_model

# ----- building blocks -----


class PatchWhitening(nn.Module):
    """A frozen `patch` x `patch` conv (no padding) that whitens the image's patches.

    Before `fit` it is the identity on each patch pixel (and its negative), so an unfitted network
    still trains. The filters are buffers: they sit in the state_dict but never in the optimizer.
    The bias is set by `fit` too. With `train_bias` it trains throughout (the published recipe
    freezes it after 3 epochs; convtrain keeps one rule for the whole run); without, it is a buffer
    like the filters, and then nothing before the first block needs a gradient: the backward pass
    skips the first conv's input gradient, the largest input gradient in the network (its input
    has the full image side): fastnet-tiny's step is 1.16x faster on the CPU without it.
    """

    def __init__(self, in_channels: int, patch: int = 2, eps: float = 5e-4, train_bias: bool = True) -> None:
        super().__init__()
        self.patch, self.eps = patch, eps
        dim = in_channels * patch * patch  # values in one patch
        eye = torch.eye(dim).view(dim, in_channels, patch, patch)
        self.register_buffer("weight", torch.cat([eye, -eye]))  # (2*dim, C, p, p)
        if train_bias:
            self.bias = nn.Parameter(torch.zeros(2 * dim))
        else:  # the same state_dict key, never trained
            self.register_buffer("bias", torch.zeros(2 * dim))
        self.out_channels = 2 * dim

    @torch.no_grad()
    def fit(self, images: torch.Tensor, chunk: int = 500) -> None:
        """Set the filters from images (N, C, H, W): whitened patches get zero mean, identity covariance."""
        # Sums over chunks of images: 5000 CIFAR images hold 4.8M patches, 460 MB as one float64 matrix.
        count, total, outer = 0, 0.0, 0.0
        for part in images.split(chunk):
            patches = patch_matrix(part.double(), self.patch)  # (M, C*p*p)
            count, total, outer = count + len(patches), total + patches.sum(0), outer + patches.T @ patches
        mean = total / count  # (D,)
        covariance = outer / count - torch.outer(mean, mean)  # (D, D)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending; columns are vectors
        # eps keeps directions with almost no variance (flat background) from being blown up.
        filters = eigenvectors.T / (eigenvalues.clamp_min(0) + self.eps).sqrt()[:, None]  # (D, D) rows
        bias = -filters @ mean  # so the whitened patches have zero mean
        dim = filters.shape[0]
        weight = torch.cat([filters, -filters]).view(2 * dim, -1, self.patch, self.patch)
        self.weight.copy_(weight.to(self.weight))
        self.bias.copy_(torch.cat([bias, -bias]).to(self.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        return F.conv2d(x, self.weight, self.bias)  # (B, 2*D, H-p+1, W-p+1)


def patch_matrix(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Every patch x patch window of images (N, C, H, W), one row each, flattened as a conv filter is."""
    channels = images.shape[1]
    windows = images.unfold(2, patch, 1).unfold(3, patch, 1)  # (N, C, H-p+1, W-p+1, p, p)
    return windows.permute(0, 2, 3, 1, 4, 5).reshape(-1, channels * patch * patch)  # (M, C*p*p)


class FrozenScaleBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose scale is fixed at 1: `weight` is a buffer, only the shift `bias` is learned.

    momentum 0.4 lets the running statistics follow the fast-changing early network closely.

    eps 1e-3 keeps a channel that is almost constant over a batch almost constant. On MNIST the
    brightness channel, max-pooled over the last block's large windows, is the same in nearly every
    image (spread 0.0007 at the first step). At eps 1e-12 BatchNorm scaled it up ~1,500x, to unit
    variance, and its gradient back along the Dirac identity paths with it: one step at lr 0.018
    took the first block's conv from rms 0.1 to 96. fp32 carried on. In bf16, whose 8-bit mantissa
    cannot hold such a channel's variations (nor the large offsets the blown-up conv put on the first
    blocks' channels), the amplified channel was rounding noise: the default run validated at 77% after
    epoch 1 against 99% in fp32; on 10,000 images one seed of three trained to 90.8% against 98.3%, and
    at eps 1e-5 a 5,000-image run to 19% against 57%. At 1e-3 bf16 follows fp32 (BENCHMARKS.md, "bf16
    on the CPU").
    """

    def __init__(self, channels: int, momentum: float = 0.4, eps: float = 1e-3) -> None:
        super().__init__(channels, eps=eps, momentum=momentum)
        del self.weight  # a buffer instead: kept in the state_dict, never trained
        self.register_buffer("weight", torch.ones(channels))


def dirac_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A bias-free 3x3 'same' conv that starts as the identity on its first in_channels outputs."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(in_channels, out_channels)])
    return conv


class Block(nn.Module):
    """conv -> maxpool 2 -> BN -> GELU -> conv -> BN -> GELU: halves the side, changes the width."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = dirac_conv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = FrozenScaleBatchNorm(out_channels)
        self.conv2 = dirac_conv(out_channels, out_channels)
        self.norm2 = FrozenScaleBatchNorm(out_channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C_in, S, S)
        x = self.act(self.norm1(self.pool(self.conv1(x))))  # (B, C_out, S/2, S/2)
        return self.act(self.norm2(self.conv2(x)))


# ----- the network -----


class FastNet(nn.Module):
    """Whitening -> GELU -> three Blocks -> global max pool -> scaled linear head."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, int, int] = (64, 256, 256),
        logit_scale: float = 1 / 9,
        bias_lr_scale: float = 64.0,
        train_whiten_bias: bool = True,
    ) -> None:
        super().__init__()
        whiten = PatchWhitening(in_channels, train_bias=train_whiten_bias)
        blocks, width = [], whiten.out_channels
        for out in widths:
            blocks.append(Block(width, out))
            width = out
        self.features = nn.Sequential(whiten, nn.GELU(), *blocks)
        self.head = nn.Sequential(
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(width, num_classes, bias=False)
        )
        self.logit_scale = logit_scale
        self.bias_lr_scale = bias_lr_scale

    @property
    def whiten(self) -> PatchWhitening:
        return self.features[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, S, S)
        x = self.features(x)  # (B, widths[-1], (S-1)/8, (S-1)/8)
        return self.head(x) * self.logit_scale  # (B, num_classes)

    def fit_to_data(self, images: torch.Tensor) -> None:
        """Whiten from training images (N, C, H, W), normalised as the loader gives them."""
        self.whiten.fit(images)

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Two optimizer groups: BN shifts at bias_lr_scale x the lr, the rest at the lr.

        The shifts' weight decay is divided by the same factor, so lr x decay, the fraction a
        parameter shrinks by each step under SGD, is the same in both groups (decay decoupled from lr).
        """
        norm_biases = [
            p for m in self.modules() if isinstance(m, FrozenScaleBatchNorm) for p in m.parameters()
        ]
        ids = {id(p) for p in norm_biases}
        others = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        scale = self.bias_lr_scale
        return [
            {"params": others, "lr": lr, "weight_decay": weight_decay},
            {"params": norm_biases, "lr": lr * scale, "weight_decay": weight_decay / scale},
        ]


# ----- registered names -----


# The training rules of the CIFAR-10 speed records at batch 256, which every fastnet trains with unless a
# recipe or flag says otherwise: lr 1.5 per 1024 images for the mean loss (the BatchNorm shifts get
# bias_lr_scale x that), lr x decay = 5e-4 shrink per step at the peak, label smoothing 0.2.
FASTNET_TRAINING = {
    "batch_size": 256,
    "lr": 0.375,
    "momentum": 0.85,
    "weight_decay": 0.00133,
    "label_smoothing": 0.2,
}


def _min_side() -> int:
    # The 2x2 whitening takes one pixel off, then three max pools must leave one pixel: 9 -> 8 -> 4 -> 2 -> 1.
    return 1 + 2**3


@register_model(
    "fastnet",
    "fast CIFAR net: frozen 2x2 whitening, 3 conv-BN-GELU blocks 64-256-256",
    min_size=_min_side(),
    training=FASTNET_TRAINING,
    cpu_bf16=True,
)
def fastnet(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return FastNet(in_channels, num_classes)


@register_model(
    "fastnet-small",
    "fastnet at widths 32-64-128: Fashion-MNIST, or MNIST to 99.5%",
    min_size=_min_side(),
    training=FASTNET_TRAINING,
    cpu_bf16=True,
)
def fastnet_small(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return FastNet(in_channels, num_classes, widths=(32, 64, 128))


@register_model(
    "fastnet-tiny",
    "fastnet at widths 16-32-64, whitening bias frozen: the default; MNIST to 99% in one CPU epoch",
    min_size=_min_side(),
    training=FASTNET_TRAINING,
    cpu_bf16=True,
)
def fastnet_tiny(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    # The whitening bias stays as fitted: the default run validated the same with it frozen (99.35 +-
    # 0.05% against 99.33 +- 0.04%, 3 seeds) and trains 1.16x faster (BENCHMARKS.md, "fastnet-tiny against the CPU's peak").
    return FastNet(in_channels, num_classes, widths=(16, 32, 64), train_whiten_bias=False)

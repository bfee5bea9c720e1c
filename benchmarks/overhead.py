"""Benchmark 1, engine overhead: images/s of convtrain's training loop vs a bare PyTorch loop.

Both train the same network from the same uint8 images held in memory, with the same batch size,
optimizer (SGD, momentum 0.9), constant learning rate, normalisation ((x / 255 - mean) / std) and
memory format (NCHW: convtrain's CPU default, channels_last, is measured by the formats benchmark).
convtrain runs through `convtrain.train` with its device loader; its figure is the images/s of
the training epoch that it records (the time of train_one_epoch, without validation or checkpoints).
The bare loop is what one writes by hand: permute, index, normalise, forward, backward, step.

    python -m benchmarks.run --only overhead [--quick]
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.common import (
    cifar_shaped,
    convtrain_epoch_rate,
    interleave,
    median,
    mnist_arrays,
    ratio_median,
    scratch_dir,
    spread,
    table,
    write_npz,
)
from convtrain.models import build_model

LR, MOMENTUM, BATCH = 0.01, 0.9, 128


def convtrain_rate(npz: Path, model: str, out: Path) -> float:
    """Images/s of one convtrain training epoch over the whole training split of the npz file."""
    return convtrain_epoch_rate(
        out,
        BATCH,
        LR,
        MOMENTUM,
        dataset=f"npz:{npz}",
        model=model,
        channels_last="off",  # the bare loop's NCHW; the formats table measures channels_last
    )


def bare_rate(images: torch.Tensor, labels: torch.Tensor, model_name: str, seed: int = 0) -> float:
    """Images/s of one epoch of a hand-written loop over uint8 images (N, C, H, W) in memory."""
    torch.manual_seed(seed)
    n, channels, size, _ = images.shape
    model = build_model(model_name, channels, int(labels.max()) + 1, size).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)  # as convtrain's constant
    loss_fn = nn.CrossEntropyLoss()
    pixels = images.float() / 255
    mean = pixels.mean((0, 2, 3)).view(1, -1, 1, 1)  # (1, C, 1, 1)
    std = pixels.std((0, 2, 3)).view(1, -1, 1, 1)
    del pixels
    order = torch.randperm(n)
    steps = n // BATCH  # drop the last short batch, as convtrain does
    started = time.perf_counter()
    for i in range(steps):
        idx = order[i * BATCH : (i + 1) * BATCH]
        x = (images[idx].float() / 255 - mean) / std  # (B, C, H, W)
        loss = loss_fn(model(x), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return steps * BATCH / (time.perf_counter() - started)


def cases(quick: bool) -> list[tuple[str, str, int]]:
    """(model, data, training images): small models show the per-step overhead most."""
    if quick:
        return [("lenet5", "MNIST", 3840), ("twoconv-cnn", "CIFAR-shaped", 1280)]
    return [
        ("lenet5", "MNIST", 12800),
        ("mnist-cnn", "MNIST", 6400),
        ("fastnet-tiny", "MNIST", 3840),
        ("twoconv-cnn", "CIFAR-shaped", 3840),
    ]


def run(quick: bool = False) -> str:
    rounds = 3 if quick else 5
    mnist_x, mnist_y, _, _ = mnist_arrays()
    cifar_x, cifar_y = cifar_shaped(12800, seed=0)
    rows = []
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        for model, data, count in cases(quick):
            x, y = (mnist_x, mnist_y) if data == "MNIST" else (cifar_x, cifar_y)
            x, y = x[:count], y[:count]
            npz = write_npz(tmp / f"{model}.npz", x, y, x[:BATCH], y[:BATCH])  # tiny test split
            images, labels = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
            contenders = {
                "convtrain": partial(convtrain_rate, npz, model, tmp),
                "bare": partial(bare_rate, images, labels, model),
            }
            figures = interleave(contenders, rounds)
            ratio = ratio_median(figures["convtrain"], figures["bare"])
            rows.append(
                [
                    model,
                    f"{data}, {count} images",
                    BATCH,
                    f"{median(figures['bare']):.0f} ({spread(figures['bare'])})",
                    f"{median(figures['convtrain']):.0f} ({spread(figures['convtrain'])})",
                    f"{ratio:.3f}",
                    f"{100 * (1 / ratio - 1):+.1f}%",
                ]
            )
            print(f"  overhead: {model} done", flush=True)
    header = [
        "model",
        "data",
        "batch",
        "bare loop img/s (min-max)",
        "convtrain img/s (min-max)",
        "convtrain / bare",
        "overhead",
    ]
    return (
        f"### Engine overhead (CPU, fp32, {rounds} interleaved rounds, medians)\n\n"
        + table(header, rows)
        + "\n\noverhead = bare time per image / convtrain time per image - 1, from the median per-round ratio."
    )

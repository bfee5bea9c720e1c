"""Benchmark 2, against the classic tutorial loop: per-epoch time of convtrain vs the usual first script.

The tutorial side is the loop most PyTorch introductions teach: a torchvision dataset that decodes
each image to PIL and applies transforms.ToTensor() + Normalize per sample, a DataLoader with
shuffle (num_workers 0 as in the MNIST example on CPU, and 2 as in the CIFAR-10 tutorial), `.to(device)` on
every batch, and `running_loss += loss.item()`. convtrain trains the same network from the same
files with the same batch size and optimizer through `convtrain.train` (device loader).

- LeNet-5 on MNIST: torchvision.datasets.MNIST over the bundled IDX files (decompressed to a temp folder).
- twoconv-cnn on CIFAR-shaped data: torchvision.datasets.CIFAR10 over official-format files
  holding synthetic pixels (written by tests/cifar_files.py; md5 checks off, since the pixels are not CIFAR's).

    python -m benchmarks.run --only tutorial [--quick]
"""

from __future__ import annotations

import gzip
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torchvision import transforms

from benchmarks.common import (
    REPO,
    SIZES,
    convtrain_epoch_rate,
    devices,
    interleave,
    median,
    no_device_line,
    ratio_median,
    scratch_dir,
    spread,
    table,
)
from convtrain.models import build_model

LR, MOMENTUM, BATCH = 0.01, 0.9, 128
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class SyntheticCIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10 reader unchanged, but without the md5 checks that synthetic pixels fail."""

    train_list = [[name, None] for name, _ in torchvision.datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in torchvision.datasets.CIFAR10.test_list]
    meta = {**torchvision.datasets.CIFAR10.meta, "md5": None}


def mnist_root(tmp: Path) -> Path:
    """tmp/MNIST/raw/ with the bundled IDX files decompressed, as torchvision.datasets.MNIST reads them."""
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    bundled = REPO / "src" / "convtrain" / "data" / "bundled"
    for gz in bundled.glob("*.gz"):
        (raw / gz.name[:-3]).write_bytes(gzip.decompress(gz.read_bytes()))
    return tmp


def cifar_root(tmp: Path, count: int) -> Path:
    """tmp/cifar-10-batches-py/ with count training images (synthetic pixels, official format)."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from cifar_files import write_cifar10
    finally:
        sys.path.remove(str(REPO / "tests"))
    write_cifar10(tmp, per_batch=count // 5)
    return tmp


def tutorial_rate(
    dataset, model_name: str, workers: int, device: torch.device, shape: tuple[int, int, int]
) -> float:
    """Images/s of one epoch of the classic loop."""
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers)
    model = build_model(model_name, shape[0], 10, shape[1]).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    running_loss, seen = 0.0, 0
    started = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()  # the tutorials' running loss: a sync per step on a GPU
        seen += len(x)
    return seen / (time.perf_counter() - started)


def convtrain_rate(dataset: str, data_dir: Path, model: str, count: int, device: str, out: Path) -> float:
    return convtrain_epoch_rate(
        out,
        BATCH,
        LR,
        MOMENTUM,
        dataset=dataset,
        data_dir=str(data_dir),
        model=model,
        limit_train=count,
        device=device,
    )


def run(quick: bool = False) -> str:
    rounds = 1 if SIZES["tiny"] else 2 if quick else 3
    title = f"### Against the tutorial loop (fp32, batch {BATCH}, SGD momentum {MOMENTUM}, {rounds} interleaved rounds, medians)\n\n"
    if not devices():
        return title + no_device_line()
    mnist_count = 640 if SIZES["tiny"] else 6400 if quick else 60000
    cifar_count = 256 if SIZES["tiny"] else 1280 if quick else 5120
    rows = []
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        mnist = torchvision.datasets.MNIST(
            mnist_root(tmp),
            train=True,
            transform=transforms.Compose(
                [transforms.ToTensor(), transforms.Normalize(MNIST_MEAN, MNIST_STD)]
            ),
        )
        mnist = torch.utils.data.Subset(mnist, range(mnist_count))
        cifar = SyntheticCIFAR10(
            cifar_root(tmp, cifar_count),
            train=True,
            transform=transforms.Compose(
                [transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)]
            ),
        )
        cases = [
            ("lenet5", "MNIST", mnist, "mnist", mnist_count, (1, 28)),
            ("twoconv-cnn", "CIFAR-shaped", cifar, "cifar10", cifar_count, (3, 32)),
        ]
        for device in map(torch.device, devices()):
            for model, data_name, dataset, registered, count, shape in cases:
                contenders = {
                    "convtrain": partial(convtrain_rate, registered, tmp, model, count, device.type, tmp),
                    "tutorial, 0 workers": partial(tutorial_rate, dataset, model, 0, device, shape),
                    "tutorial, 2 workers": partial(tutorial_rate, dataset, model, 2, device, shape),
                }
                figures = interleave(contenders, rounds)
                ours = figures["convtrain"]
                for name in ("tutorial, 0 workers", "tutorial, 2 workers"):
                    theirs = figures[name]
                    rows.append(
                        [
                            device.type,
                            model,
                            f"{data_name}, {count} images",
                            name,
                            f"{count / median(theirs):.2f} ({spread([count / r for r in theirs])})",
                            f"{count / median(ours):.2f} ({spread([count / r for r in ours])})",
                            f"{ratio_median(ours, theirs):.2f}x",
                        ]
                    )
                print(f"  tutorial: {device.type} {model} done", flush=True)
    header = [
        "device",
        "model",
        "data (one epoch)",
        "tutorial loop",
        "tutorial s/epoch",
        "convtrain s/epoch",
        "speed-up",
    ]
    return (
        title
        + table(header, rows)
        + "\n\ns/epoch = images / median images/s (min-max over rounds); speed-up = median per-round ratio of images/s."
    )

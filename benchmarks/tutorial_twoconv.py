"""The reference for `twoconv-cifar10`: the tutorial's own loop, written plainly in PyTorch.

The 2-conv CIFAR-10 tutorial: torchvision's CIFAR10 with ToTensor only, all 50,000 training images
shuffled at batch 32 (the last short batch kept), its network written out here (conv32, dropout
0.3, conv32, max pool, fc 8192 -> 512, dropout 0.5, fc10; PyTorch's default init), SGD lr 0.001
momentum 0.9, cross-entropy, the test split measured after every epoch. The loader runs in the main
process, as tutorial_sixconv.py's does, and reads the JPEG round-trip copy without md5 checks.
The tutorial printed 41% after epoch 1 and 57% after epoch 10.

    python -m benchmarks.tutorial_twoconv --data-dir ../shared/datasets --seed 0 --epochs 1
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms

from benchmarks.tutorial_sixconv import CIFAR10Copy, tutorial_arguments


def network() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Dropout(0.3),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 16 * 16, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10),
    )  # fmt: skip


@torch.no_grad()
def test_accuracy(model: nn.Module, loader) -> float:
    model.eval()
    right = seen = 0
    for images, labels in loader:
        right += int((model(images).argmax(1) == labels).sum())
        seen += len(labels)
    return right / seen


def main() -> None:
    args = tutorial_arguments(__doc__)
    train = CIFAR10Copy(args.data_dir, train=True, transform=transforms.ToTensor())
    test = CIFAR10Copy(args.data_dir, train=False, transform=transforms.ToTensor())
    train_dl = torch.utils.data.DataLoader(train, 32, shuffle=True)
    test_dl = torch.utils.data.DataLoader(test, 256)
    model = network()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    for epoch in range(args.epochs):
        started = time.perf_counter()
        model.train()
        for images, labels in train_dl:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - started
        print(
            f"epoch {epoch + 1}: test accuracy {100 * test_accuracy(model, test_dl):.2f}%  {seconds:.0f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()

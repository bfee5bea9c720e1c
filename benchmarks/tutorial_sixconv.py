"""The reference for `sixconv-cifar10`: the tutorial's own loop, written plainly in PyTorch.

The "CIFAR-10 on the GPU, above 75%" tutorial: torchvision's CIFAR10 with ToTensor only, a seeded
random 45,000/5,000 train/validation split, batch 128 (validation 256), its 6-conv Sequential network
written out here (not convtrain's), Adam lr 0.001 for 10 epochs, validation loss and accuracy after
each epoch (the mean of the batches' accuracies, as the tutorial's `evaluate` takes it), then the
test split once. The data loader runs in the main process (the tutorial used 4 workers on a GPU
machine; on 2 cores they would take the cores the training needs). md5 checks are off, since the
shared copy's batches are JPEG round-tripped (../shared/datasets/README).

    python -m benchmarks.tutorial_sixconv --data-dir ../shared/datasets --seed 0
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision import transforms


class CIFAR10Copy(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10 reader unchanged, without the md5 checks the JPEG round-trip copy fails."""

    train_list = [[name, None] for name, _ in torchvision.datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in torchvision.datasets.CIFAR10.test_list]
    meta = {**torchvision.datasets.CIFAR10.meta, "md5": None}


def network() -> nn.Module:
    def conv(a: int, b: int) -> list[nn.Module]:
        return [nn.Conv2d(a, b, kernel_size=3, padding=1), nn.ReLU()]

    return nn.Sequential(
        *conv(3, 32), *conv(32, 64), nn.MaxPool2d(2, 2),
        *conv(64, 128), *conv(128, 128), nn.MaxPool2d(2, 2),
        *conv(128, 256), *conv(256, 256), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(256 * 4 * 4, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 10),
    )  # fmt: skip


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> tuple[float, float, float]:
    """(mean batch loss, mean batch accuracy, as the tutorial reports them; accuracy over all images)."""
    model.eval()
    losses, accuracies, right, seen = [], [], 0, 0
    for images, labels in loader:
        out = model(images)
        losses.append(F.cross_entropy(out, labels))
        hits = out.argmax(1) == labels
        accuracies.append(hits.float().mean())
        right, seen = right + int(hits.sum()), seen + len(labels)
    return torch.stack(losses).mean().item(), torch.stack(accuracies).mean().item(), right / seen


def tutorial_arguments(doc: str) -> argparse.Namespace:
    """A tutorial loop's --data-dir, --seed and --epochs, with torch seeded by --seed."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    return args


def main() -> None:
    args = tutorial_arguments(__doc__)
    dataset = CIFAR10Copy(args.data_dir, train=True, transform=transforms.ToTensor())
    test = CIFAR10Copy(args.data_dir, train=False, transform=transforms.ToTensor())
    train_ds, val_ds = torch.utils.data.random_split(
        dataset, [45000, 5000], generator=torch.Generator().manual_seed(42)
    )
    train_dl = torch.utils.data.DataLoader(train_ds, 128, shuffle=True)
    val_dl = torch.utils.data.DataLoader(val_ds, 256)
    model = network()
    optimizer = torch.optim.Adam(model.parameters(), 0.001)
    before_loss, before_acc, _ = evaluate(model, val_dl)
    print(f"before training: val loss {before_loss:.4f} acc {100 * before_acc:.2f}%")
    for epoch in range(args.epochs):
        started = time.perf_counter()
        model.train()
        train_losses = []
        for images, labels in train_dl:
            loss = F.cross_entropy(model(images), labels)
            train_losses.append(loss.detach())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        seconds = time.perf_counter() - started
        val_loss, val_acc, _ = evaluate(model, val_dl)
        print(
            f"epoch {epoch + 1}: train loss {torch.stack(train_losses).mean():.4f}  val loss {val_loss:.4f}  "
            f"val acc {100 * val_acc:.2f}%  {seconds:.0f}s",
            flush=True,
        )
    test_loss, test_batches, test_acc = evaluate(model, torch.utils.data.DataLoader(test, 256))
    print(
        f"test: loss {test_loss:.4f}  accuracy {100 * test_acc:.2f}% ({100 * test_batches:.2f}% as the mean of batches)"
    )


if __name__ == "__main__":
    main()

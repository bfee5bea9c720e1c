"""Fine-tuning vs training from scratch on 50 labelled images per class, offline.

1. Pre-train a timm network on Fashion-MNIST (../shared/datasets; its split there is rebuilt, not the
   official one) and export it with `convtrain export --format safetensors`: the file the fine-tuning
   arm starts from with --pretrained PATH (its card brings Fashion-MNIST's mean/std).
2. For each seed, draw 50 MNIST training images per class (500 in all) and train three times on
   exactly those images with the same budget (epochs, batch, AdamW, lr and cosine schedule of the
   `finetune` recipe): from a random initialisation; from the file with every layer at the same lr
   (only the starting weights differ); and from the file with the whole `finetune` recipe (the head
   alone for an epoch, then everything with the backbone at lr x0.1). Each is tested on all 10,000
   MNIST test images.

    python -m benchmarks.finetune                              # timm:test_resnet, 3 seeds (minutes on a CPU)
    python -m benchmarks.finetune --model timm:resnet10t --pretrain-images 20000
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import convtrain
from benchmarks.common import SHARED_DATASETS, describe_machine, mnist_arrays, quiet, scratch_dir, write_npz
from convtrain.config.recipes import load_recipe
from convtrain.evaluation.export import export_run

PER_CLASS = 50


def pretrain(model: str, images: int, epochs: int, out: Path) -> tuple[Path, float]:
    """A Fashion-MNIST run exported as .safetensors; returns the file and its test accuracy."""
    with quiet():
        run = convtrain.train(
            dataset="fashion-mnist", data_dir=str(SHARED_DATASETS), download=False, model=model,
            limit_train=images, val_split=0, epochs=epochs, batch_size=128, test_weights="last",
            out=str(out / "fashion"), plots=False, quiet=True, device="cpu",
        )  # fmt: skip
        exported = export_run(
            run, "safetensors", out=out / "fashion.safetensors", data_dir=str(SHARED_DATASETS)
        )
    return Path(exported["path"]), run.results["test_acc"]


def subset(seed: int, out: Path) -> Path:
    """50 MNIST training images per class, drawn with `seed`, and the whole test split, as an npz."""
    x_train, y_train, x_test, y_test = mnist_arrays()
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.choice(np.flatnonzero(y_train == c), PER_CLASS, replace=False) for c in range(10)]
    )
    return write_npz(
        out / f"mnist-{PER_CLASS}x10-seed{seed}.npz", x_train[keep], y_train[keep], x_test, y_test
    )


ARMS = {  # name -> (start from the pre-trained file, keep the recipe's frozen epoch and backbone lr x0.1)
    "from scratch": (False, False),
    "pre-trained, every layer at the same lr": (True, False),
    "pre-trained, the whole `finetune` recipe": (True, True),
}


def fine_tune(
    data: Path, model: str, seed: int, weights: Path | None, schedule: bool, epochs: int, out: Path
) -> float:
    """Test accuracy after `epochs` on the subset, from `weights` (None: random) with the finetune
    recipe's optimizer and lr schedule; `schedule` keeps its frozen epoch and backbone multiplier."""
    options = load_recipe("finetune") | dict(
        dataset=f"npz:{data}", model=model, seed=seed, epochs=epochs, batch_size=50, val_split=0,
        test_weights="last", out=str(out / f"run-{time.perf_counter_ns()}"),
        pretrained=str(weights) if weights else None, plots=False, quiet=True, device="cpu",
    )  # fmt: skip
    if not schedule:
        options |= dict(freeze_epochs=0, backbone_lr_mult=1.0)
    with quiet():
        return convtrain.train(**options).results["test_acc"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.finetune", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", default="timm:test_resnet", help="a timm:/torchvision: model")
    parser.add_argument("--pretrain-images", type=int, default=10000, help="Fashion-MNIST training images")
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (both arms)")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    if not (SHARED_DATASETS / "FashionMNIST" / "raw").is_dir():
        print(f"needs Fashion-MNIST in {SHARED_DATASETS}")
        return 1
    started = time.perf_counter()
    with scratch_dir() as tmp:
        out = Path(tmp)
        weights, fashion_acc = pretrain(args.model, args.pretrain_images, args.pretrain_epochs, out)
        print(
            f"pre-trained {args.model} on {args.pretrain_images} Fashion-MNIST images x {args.pretrain_epochs} epochs: "
            f"{100 * fashion_acc:.2f}% on its test split (rebuilt split) [{time.perf_counter() - started:.0f}s]",
            flush=True,
        )
        results: dict[str, list[float]] = {name: [] for name in ARMS}
        for seed in range(args.seeds):
            data = subset(seed, out)
            for name, (pretrained, schedule) in ARMS.items():
                start = weights if pretrained else None
                results[name].append(fine_tune(data, args.model, seed, start, schedule, args.epochs, out))
            line = "  ".join(f"{100 * values[-1]:.2f}%" for values in results.values())
            print(f"seed {seed}: {line}  [{time.perf_counter() - started:.0f}s]", flush=True)
    print(f"\n{describe_machine()}\n")
    print(
        f"| {args.model}, {PER_CLASS} MNIST images per class, {args.epochs} epochs | MNIST test accuracy (10,000 images) |"
    )
    print("|---|---|")
    for name, values in results.items():
        print(
            f"| {name} | {100 * statistics.mean(values):.2f}% ± {100 * statistics.stdev(values):.2f} ({args.seeds} seeds) |"
        )
    print(f"\ntotal {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

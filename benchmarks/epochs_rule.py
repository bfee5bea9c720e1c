"""How many epochs a small dataset needs: validation accuracy against epochs (and optimizer steps).

The evidence for training/epochs_and_size.py's rule (at least 40 steps, 2 to 40 epochs): fastnet-tiny with its own
settings (batch 256, one-cycle SGD), trained for 2, 5, 10, 20 and 40 epochs on the CIFAR-10 sample
(200 real PNGs, 25% held out) and on the first 200, 1,000 and 3,000 MNIST training images (10%
held out), 2 seeds each, the test split never read. Epochs are given, so the rule itself is not used.

    python -m benchmarks.run --only epochs_rule [--quick]
"""

from __future__ import annotations

import tempfile

import convtrain
from benchmarks.common import SHARED_DATASETS, quiet, table
from convtrain.data.memory_cache import keep_datasets

CASES = (  # (dataset, --limit-train, --val-split)
    (f"folder:{SHARED_DATASETS / 'cifar10-sample'}", 0, 0.25),
    ("mnist", 200, 0.1),
    ("mnist", 1000, 0.1),
    ("mnist", 3000, 0.1),
)
EPOCHS = (2, 5, 10, 20, 40)
SEEDS = (0, 1)


def best_val_acc(dataset: str, limit: int, val_split: float, epochs: int, seed: int) -> tuple[float, int]:
    """(best validation accuracy, training images) of one run."""
    with tempfile.TemporaryDirectory() as tmp, quiet():
        run = convtrain.train(
            dataset=dataset,
            data_dir=str(SHARED_DATASETS),
            limit_train=limit,
            val_split=val_split,
            epochs=epochs,
            seed=seed,
            test=False,
            plots=False,
            quiet=True,
            out=f"{tmp}/run",
            cache=False,
            download=False,
        )
        return max(row["val_acc"] for row in run.history), len(run.read_split()[0])


def run(quick: bool = False) -> str:
    cases, epochs_list = (CASES[1:2], EPOCHS[:2]) if quick else (CASES, EPOCHS)
    rows = []
    with keep_datasets():
        for dataset, limit, val_split in cases:
            for epochs in epochs_list:
                figures = [best_val_acc(dataset, limit, val_split, epochs, seed) for seed in SEEDS]
                images = figures[0][1]
                steps_per_epoch = max(1, images // 256) if images >= 256 else 1
                name = dataset.rsplit("/", 1)[-1] + (f" --limit-train {limit}" if limit else "")
                accs = " / ".join(f"{100 * acc:.1f}" for acc, _ in figures)
                rows.append([name, images, epochs, epochs * steps_per_epoch, accs])
                print(f"  epochs_rule: {name} {epochs} epochs: {accs}", flush=True)
    header = [
        "data",
        "train images",
        "epochs",
        "steps",
        f"best val acc % (seeds {', '.join(map(str, SEEDS))})",
    ]
    rule = "min(40, max(2, ceil(40 / steps per epoch)))"
    return f"### Epochs for a small dataset (fastnet-tiny, batch 256; the rule chosen: {rule})\n\n" + table(
        header, rows
    )

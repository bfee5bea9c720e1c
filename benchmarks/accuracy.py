"""Benchmark 3, time to accuracy: training seconds of the fast recipes to reach a test accuracy,
on the real MNIST, Fashion-MNIST and CIFAR-10 files in ../shared/datasets (CIFAR-10: the JPEG
round-trip copy).

Each run measures the test split after every epoch (`epoch_eval: test`), so the time to a target
is the training time summed up to the first epoch that reaches it (evaluation not counted); a
target met only by the final test-time-augmented evaluation counts the whole training time. Each
case runs over several seeds and reports the mean ± std of the final test accuracy.

    python -m benchmarks.run --only accuracy [--quick]
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import convtrain
from benchmarks.common import (
    CPU_PRECISION,
    SHARED_DATASETS,
    SIZES,
    devices,
    no_device_line,
    quiet,
    scratch_dir,
    table,
)
from convtrain.config.recipes import load_recipe

# (dataset folder, target accuracy, recipe, overrides, seeds in a full run)
CASES = [
    ("MNIST", 0.990, "mnist-fast", {}, 3),
    ("MNIST", 0.995, "mnist-99.5", {}, 3),
    ("FashionMNIST", 0.930, "fashion-mnist-fast", {"epochs": 5}, 3),
    ("cifar-10-batches-py", 0.760, "cifar10-cpu", {"epochs": 2}, 3),  # CIFAR-10, JPEG round-trip copy
    ("cifar-10-batches-py", 0.850, "cifar10-cpu", {}, 1),
]


def one_run(recipe: str, overrides: dict[str, Any], seed: int, device: str, out: Path) -> dict[str, Any]:
    options = load_recipe(recipe) | {
        "data_dir": str(SHARED_DATASETS),
        "download": False,
        "epoch_eval": "test",
        "seed": seed,
        "device": device,
        "plots": False,
        "quiet": True,
        "out": str(out / f"run-{time.perf_counter_ns()}"),
    }
    options |= overrides
    if SIZES["tiny"]:  # checking that the pass runs: one short epoch, no accuracy to speak of
        options |= {"epochs": 1, "limit_train": 2048}
    if device == "cpu":  # what the recipes' notes say to pass on a CPU (or auto: bf16 where it pays)
        options |= {"precision": CPU_PRECISION["which"], "compile": False}
    started = time.perf_counter()
    with quiet():
        run = convtrain.train(**options)
    return {
        "history": run.history,
        "test_acc": run.results["test_acc"],
        "training_seconds": run.results["training_seconds"],
        "wall_seconds": time.perf_counter() - started,
        "precision": run.config.precision,  # as resolved: auto becomes bf16 or fp32
    }


def seconds_to(result: dict[str, Any], target: float) -> float | None:
    elapsed = 0.0
    for row in result["history"]:
        elapsed += row["seconds"]
        if row["val_acc"] >= target:
            return elapsed
    return result["training_seconds"] if result["test_acc"] >= target else None


def run(quick: bool = False) -> str:
    title = "### Time to accuracy (real data, test split, fast recipes)\n\n"
    if not (SHARED_DATASETS / "MNIST" / "raw").is_dir():
        return title + f"skipped: the real datasets are not at {SHARED_DATASETS}."
    if not devices():
        return title + no_device_line()
    cases = CASES[:1] if quick else CASES
    rows = []
    with scratch_dir() as tmp:
        for device in devices():
            for folder, target, recipe, overrides, seeds in cases:
                if not (SHARED_DATASETS / folder).is_dir():
                    rows.append([device, folder, f"{100 * target:.1f}%", f"`--recipe {recipe}`", "not here"])
                    continue
                results = [
                    one_run(recipe, overrides, seed, device, Path(tmp))
                    for seed in range(1 if quick else seeds)
                ]
                accs = [100 * r["test_acc"] for r in results]
                times = [seconds_to(r, target) for r in results]
                reached = [t for t in times if t is not None]
                command = f"--recipe {recipe}" + "".join(f" --{k} {v}" for k, v in overrides.items())
                rows.append(
                    [
                        f"{device} ({', '.join(sorted({r['precision'] for r in results}))})",
                        folder,
                        f"{100 * target:.1f}%",
                        f"`{command}`",
                        f"{statistics.mean(accs):.2f} ± {statistics.stdev(accs) if len(accs) > 1 else 0:.2f}",
                        f"{len(reached)}/{len(results)}",
                        f"{statistics.median(reached):.1f}" if reached else "not reached",
                        f"{statistics.median(r['training_seconds'] for r in results):.1f}",
                        f"{statistics.median(r['wall_seconds'] for r in results):.1f}",
                    ]
                )
                print(f"  accuracy: {device} {folder} {target} done", flush=True)
    header = [
        "device (precision)",
        "data",
        "target",
        "command",
        "final test acc % (mean ± std)",
        "seeds reaching it",
        "s to target (median)",
        "training s",
        "wall s (whole run)",
    ]
    return (
        title
        + table(header, rows)
        + "\n\ns to target: training time summed to the first epoch at the target; wall s includes loading,"
        " the whitening fit and every evaluation."
    )

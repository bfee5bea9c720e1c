"""Benchmark 4, GPU only: the zoo's throughput with bf16 + channels_last (+ compile), and cifar10-fast
against the public airbench94 script, side by side on the same CIFAR-shaped tensors.

Without a CUDA device both print one line saying so and return. The comparison script is not part
of convtrain and never committed: fetch it into the git-ignored external/ folder first,

    mkdir -p external
    curl -L -o external/airbench94.py https://raw.githubusercontent.com/KellerJordan/cifar10-airbench/f1c599c4af24aca803e3e65a6a7e52a502e09d0e/legacy/airbench94.py
    python -m benchmarks.run --only zoo,airbench

The script reads cifar10/train.pt and cifar10/test.pt from its working folder (uint8 NHWC images,
labels, classes) and times its training with CUDA events; we write those two files from the same
synthetic tensors that convtrain reads as official-format CIFAR-10 files, run it in that folder,
and read its per-epoch cumulative training time from the table it prints.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import statistics
import sys
import time
from pathlib import Path

import torch

import convtrain
from benchmarks.common import DEVICE_CHOICE, REPO, SIZES, cifar_shaped, quiet, scratch_dir, table, write_npz
from convtrain.config.recipes import load_recipe
from convtrain.models import model_names

AIRBENCH = REPO / "external" / "airbench94.py"
NO_CUDA = (
    "skipped: no CUDA device on this machine (run `python -m benchmarks.run --only zoo,airbench` on a GPU)."
)


def epoch_rates(run: convtrain.train) -> list[float]:
    return [row["images_per_second"] for row in run.history]


ZOO_SUBSET = ("fastnet-tiny", "resnet9")  # the GPU pass measures these first
ZOO_CONVENTION = (
    "Convention: training images/s of epoch 2 of 2 (compile time and cuDNN autotuning fall in epoch 1"
    " and are excluded), from convtrain's per-epoch wall clock (time.perf_counter around the epoch, closed"
    " by the epoch's one read-back of its sums, which waits for the GPU; not CUDA events); data already"
    " on the GPU (the device loader, augmentation included); cudnn.benchmark on; not airbench's convention."
)


def zoo_device() -> str | None:
    """cuda where there is one; the CPU only when asked for (`--device cpu`: checking the pass runs)."""
    if DEVICE_CHOICE["which"] == "cpu":
        return "cpu"
    return "cuda" if torch.cuda.is_available() else None


def zoo_rate(
    npz: Path, model: str, precision: str, compile_: bool, out: Path, epochs: int, device: str = "cuda"
) -> float:
    """Images/s of the last of `epochs` training epochs (the first pays for compilation and autotuning)."""
    with quiet():
        run = convtrain.train(
            dataset=f"npz:{npz}",
            model=model,
            epochs=epochs,
            val_split=0,
            batch_size=512,
            precision=precision,
            channels_last="on" if precision != "fp32" else "off",
            compile=compile_,
            device=device,
            plots=False,
            quiet=True,
            out=str(out / f"run-{time.perf_counter_ns()}"),
        )
    return run.history[-1]["images_per_second"]


def zoo(quick: bool = False, models: tuple[str, ...] | None = None) -> str:
    title = "### Zoo throughput on the GPU (CIFAR-shaped 3x32x32, batch 512, training images/s)\n\n"
    device = zoo_device()
    if device is None:
        return title + NO_CUDA
    count = 1024 if SIZES["tiny"] else 10240 if quick else 25600
    x, y = cifar_shaped(count)
    rows = []
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        npz = write_npz(tmp / "cifar_shaped.npz", x, y, x[:512], y[:512])
        for name in models or model_names():
            fp32 = zoo_rate(npz, name, "fp32", False, tmp, 2, device)
            bf16 = zoo_rate(npz, name, "bf16", False, tmp, 2, device)
            compiled = zoo_rate(npz, name, "bf16", True, tmp, 2, device)
            rows.append([name, f"{fp32:.0f}", f"{bf16:.0f}", f"{compiled:.0f}", f"{compiled / fp32:.2f}x"])
            # each row as it is measured: a section stopped by its time limit keeps the finished ones
            print(
                f"  zoo: {name}: fp32 {fp32:.0f}, bf16 {bf16:.0f}, compiled {compiled:.0f} img/s", flush=True
            )
    header = ["model", "fp32", "bf16 + channels_last", "bf16 + channels_last + compile", "compiled / fp32"]
    return title + table(header, rows) + f"\n\nDevice {device}; {count} images per epoch. {ZOO_CONVENTION}"


def zoo_subset(quick: bool = False) -> str:
    """The zoo table for ZOO_SUBSET only: what the GPU pass measures before the whole zoo."""
    return zoo(quick, ZOO_SUBSET)


# ----- cifar10-fast vs airbench94 -----


def write_airbench_data(folder: Path, files) -> None:
    """cifar10/train.pt and test.pt as the script caches them: uint8 (N, 32, 32, 3), labels, classes."""
    from cifar_files import CIFAR10_CLASSES

    (folder / "cifar10").mkdir(parents=True, exist_ok=True)
    for name, images, labels in (
        ("train.pt", files.train_images, files.train_labels),
        ("test.pt", files.test_images, files.test_labels),
    ):
        torch.save(
            {
                "images": torch.from_numpy(images).permute(0, 2, 3, 1).contiguous(),  # (N, 32, 32, 3)
                "labels": torch.from_numpy(labels),
                "classes": list(CIFAR10_CLASSES),
            },
            folder / "cifar10" / name,
        )


def airbench_epoch_seconds(module, folder: Path, epochs: int) -> list[float]:
    """Per-epoch training seconds of one run of the script, from the cumulative times it prints."""
    module.hyp["opt"]["train_epochs"] = epochs
    printed = io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(folder)
        with contextlib.redirect_stdout(printed):
            module.main(0)
    finally:
        os.chdir(cwd)
    totals = []
    for line in printed.getvalue().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and re.fullmatch(r"\d+", cells[1]):
            totals.append(float(cells[-1]))
    return [b - a for a, b in zip([0.0] + totals, totals, strict=False)]


def convtrain_epoch_seconds(data_dir: Path, epochs: int, out: Path) -> list[float]:
    options = load_recipe("cifar10-fast") | {
        "dataset": "cifar10",
        "data_dir": str(data_dir),
        "epochs": epochs,
        "device": "cuda",
        "plots": False,
        "quiet": True,
        "out": str(out / f"run-{time.perf_counter_ns()}"),
    }
    with quiet():
        run = convtrain.train(**options)
    return [row["seconds"] for row in run.history]


AIRBENCH_CONVENTION = (
    "Convention: seconds per training epoch, epochs 2..N (compile time and cuDNN autotuning excluded)."
    " airbench94's from its own CUDA events (its printed cumulative training time, evaluation excluded);"
    " convtrain's from its per-epoch wall clock, closed by a read-back that waits for the GPU (not CUDA"
    " events; it includes convtrain's per-epoch bookkeeping but not validation). Both hold the data on"
    " the GPU and run with cudnn.benchmark on (airbench sets it on import, convtrain for every CUDA run)."
    " Not the same precision: airbench fp16, convtrain's recipe bf16."
)


def airbench(quick: bool = False) -> str:
    title = "### cifar10-fast vs airbench94 on the GPU (same synthetic CIFAR-shaped tensors, 50,000 train images)\n\n"
    if not torch.cuda.is_available():
        return title + NO_CUDA
    if not AIRBENCH.is_file():
        return (
            title
            + f"skipped: {AIRBENCH.relative_to(REPO)} is missing; see the docstring of benchmarks/gpu.py."
        )
    sys.path.insert(0, str(REPO / "tests"))
    from cifar_files import write_cifar10

    spec = importlib.util.spec_from_file_location("airbench94_external", AIRBENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    epochs, rounds = (3, 1) if SIZES["tiny"] else (4, 2) if quick else (10, 3)
    ours, theirs = [], []
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        files = write_cifar10(tmp, per_batch=10000)  # 50,000 train + 10,000 test, official format
        write_airbench_data(tmp, files)
        airbench_epoch_seconds(module, tmp, 2)  # warm-up: cuDNN autotuning, allocator
        convtrain_epoch_seconds(tmp, 2, tmp)
        for round_ in range(rounds):
            pair = [("ours", convtrain_epoch_seconds), ("theirs", airbench_epoch_seconds)]
            for who, fn in pair if round_ % 2 == 0 else pair[::-1]:
                seconds = fn(tmp, epochs, tmp) if who == "ours" else fn(module, tmp, epochs)
                (ours if who == "ours" else theirs).append(statistics.median(seconds[1:]))  # epoch 1 compiles
    ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    rows = [
        ["airbench94 (fp16, channels_last, not compiled)", f"{statistics.median(theirs):.3f}", "1.00"],
        [
            "convtrain --recipe cifar10-fast (bf16, channels_last, compiled)",
            f"{statistics.median(ours):.3f}",
            f"{ratio:.2f}",
        ],
    ]
    return (
        title
        + table(["run", "s/epoch (median of epochs 2..N)", "relative time"], rows)
        + f"\n\n{rounds} interleaved rounds of {epochs} epochs; per-round medians, then their median."
        + f"\n\n{AIRBENCH_CONVENTION}"
    )

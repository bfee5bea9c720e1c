"""What every benchmark shares: the machine's description, interleaved timing, tables, quiet runs.

Timings on a shared machine drift as other work comes and goes, so contenders are never timed in
separate blocks: each round runs every contender once, the order reverses every round (A B, B A,
...), a first round is thrown away as warm-up, and we report medians and the median of the
per-round ratios.

    python -c "from benchmarks.common import machine; print(machine())"
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def machine() -> dict[str, str]:
    """CPU model, cores, threads, GPU, torch version and today's date, for the table headers."""
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return {
        "cpu": cpu,
        "cores": str(cores),
        "torch_threads": str(torch.get_num_threads()),
        "gpu": gpu,
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }


DEVICE_CHOICE = {"which": "all"}  # set by run.py's --device: all, cpu or cuda
CPU_PRECISION = {
    "which": "fp32"
}  # run.py's --cpu-precision: the records' precision on a CPU (auto: bf16 where it pays)
SIZES = {"tiny": False}  # run.py's --tiny: the smallest sizes, to check that a pass runs (not to measure)


def devices() -> list[str]:
    """The devices the tutorial and accuracy benchmarks measure: the CPU and, if present, CUDA."""
    found = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    which = DEVICE_CHOICE["which"]
    return found if which == "all" else [d for d in found if d == which]


def no_device_line() -> str:
    return (
        f"skipped: no {DEVICE_CHOICE['which']} device on this machine (`--device {DEVICE_CHOICE['which']}`)."
    )


def describe_machine() -> str:
    m = machine()
    return (
        f"{m['date']} · CPU {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads) · "
        f"GPU {m['gpu']} · torch {m['torch']}"
    )


def interleave(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Call each contender once per round, reversing the order every round; a warm-up round first.

    Each callable returns its figure for that call (images/s, seconds). The warm-up round pays
    for first-use costs (kernel selection, allocator growth, page faults) and is discarded.
    """
    names = list(contenders)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds + 1):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            value = contenders[name]()
            if round_ > 0:
                figures[name].append(value)
    return figures


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratio_median(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of the per-round ratios: rounds are paired, so load drift cancels within each."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def spread(values: Sequence[float]) -> str:
    """'min-max' of a list, to show how noisy a median is."""

    def show(value: float) -> str:
        return f"{value:.0f}" if value >= 100 else f"{value:.3g}"

    return f"{show(min(values))}-{show(max(values))}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def convtrain_epoch_rate(out: Path, batch_size: int, lr: float, momentum: float, **options: Any) -> float:
    """Images/s of one convtrain training epoch with the plain loop both sides of a comparison run:
    SGD with momentum (no Nesterov, no decay) at a constant lr, no validation split, no pictures.
    `options` names the data, model and anything else (device, limit_train, channels_last)."""
    import convtrain

    with quiet():
        run = convtrain.train(
            epochs=1,
            val_split=0,
            batch_size=batch_size,
            optimizer="sgd",
            lr=lr,
            momentum=momentum,
            nesterov=False,
            weight_decay=0.0,
            schedule="constant",
            plots=False,
            quiet=True,
            out=str(Path(out) / f"run-{time.perf_counter_ns()}"),
            **options,
        )
    return run.history[0]["images_per_second"]


@contextlib.contextmanager
def quiet() -> Any:
    """Swallow what convtrain prints per run (device line, epoch lines), keeping the tables readable."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def scratch_dir() -> tempfile.TemporaryDirectory:
    """A temporary folder for run folders and dataset files, removed when the benchmark ends."""
    return tempfile.TemporaryDirectory(prefix="convtrain-bench-")


def write_npz(
    path: Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> Path:
    """An npz dataset (NCHW uint8 images) that convtrain reads as npz:PATH."""
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def mnist_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The bundled MNIST as NCHW uint8 arrays: (60000, 1, 28, 28), labels, (10000, 1, 28, 28), labels."""
    from convtrain.data.dataset_registry import load_dataset

    with quiet():
        data = load_dataset("mnist")
    return (
        data.train.images.numpy(),
        data.train.labels.numpy(),
        data.test.images.numpy(),
        data.test.labels.numpy(),
    )


MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # MNIST's published pixel mean and std (0-1 scale)


def mnist_tensors(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` bundled MNIST training images, normalised, (N, 1, 28, 28) float32, and labels."""
    from convtrain.data.dataset_registry import load_dataset

    with quiet():
        data = load_dataset("mnist")
    images = data.train.images[:count].float() / 255
    return (images - MNIST_MEAN) / MNIST_STD, data.train.labels[:count]


def cifar_shaped(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic CIFAR-shaped images (count, 3, 32, 32) uint8 and labels: 10 classes, each a colour
    layout plus noise, so a network can learn them (the speed would be the same for any pixels)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    templates = rng.integers(0, 200, (10, 3, 4, 4)).repeat(8, 2).repeat(8, 3)
    images = templates[labels] + rng.integers(0, 56, (count, 3, 32, 32))
    return images.astype(np.uint8), labels.astype(np.int64)

"""Benchmark 6, the decoded-image cache: loading a folder of PNG files decoded afresh vs from the cache.

MNIST's training images are written out as a folder of PNG files (one sub-folder per class), then
loaded with `load_dataset("folder:...")` three ways, in interleaved rounds: decoding every file
(`cache=False`), and from the cache that the first cached load wrote. The figure is the ratio of
the medians, and the pixels loaded both ways are compared bit for bit.

    python -m benchmarks.run --only cache [--quick]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import median, mnist_arrays, quiet, scratch_dir, spread, table
from convtrain.data.dataset_registry import load_dataset


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """root/<label>/<index>.png for (N, 1, 28, 28) uint8 images."""
    for label in range(10):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image[0]).save(root / str(label) / f"{index:05d}.png")
    return root


def timed_load(root: Path, data_dir: Path, cache: bool) -> tuple[float, torch.Tensor]:
    started = time.perf_counter()
    with quiet():
        data = load_dataset(f"folder:{root}", str(data_dir), cache=cache)
    return time.perf_counter() - started, data.train.images


def run(quick: bool = False) -> str:
    count = 6000 if quick else 60000
    rounds = 1 if quick else 2
    title = f"### Decoded-image cache (a folder of {count} MNIST PNG files, {rounds} interleaved rounds)\n\n"
    x_train, y_train, _, _ = mnist_arrays()
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        root = write_folder(tmp / "mnist-png", x_train[:count], y_train[:count])
        written = time.perf_counter() - started
        build, reference = timed_load(root, tmp / "data", cache=True)  # decodes and writes the cache
        decoded, cached = [], []
        for _ in range(rounds):
            seconds, images = timed_load(root, tmp / "data", cache=False)
            decoded.append(seconds)
            seconds, from_cache = timed_load(root, tmp / "data", cache=True)
            cached.append(seconds)
            if not torch.equal(from_cache, reference) or not torch.equal(images, reference):
                raise AssertionError("the cache did not give back the decoded pixels bit for bit")
    rows = [
        ["decode every file (`--no-cache`)", f"{median(decoded):.2f} ({spread(decoded)})", "1.00x"],
        ["first cached run: decode + write the cache", f"{build:.2f}", f"{median(decoded) / build:.2f}x"],
        [
            "later runs: load the cache",
            f"{median(cached):.2f} ({spread(cached)})",
            f"{median(decoded) / median(cached):.1f}x",
        ],
    ]
    return (
        title
        + table(["load", "seconds (min-max)", "speed-up"], rows)
        + f"\n\nWriting the PNG files took {written:.0f} s. The cached pixels equal the decoded ones bit for bit."
    )

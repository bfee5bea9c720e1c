"""What the JPEG round trip of the development copy of CIFAR-10 costs in accuracy.

50,915 of the copy's 60,000 images went through one JPEG round trip (quality 75, 4:2:0); 9,085 are
the official pixels (../shared/datasets/cifar10-exact marks them: 8,068 train, 1,017 test). Only
the exact images can be compared with and without JPEG, so this trains on the 8,068 exact training
images, as they are and after the same round trip made here, and tests every model on the 1,017
exact test images, as they are and round-tripped: four figures per seed, in one run.

    python -m benchmarks.run --only cifar10_jpeg [--quick]
"""

from __future__ import annotations

import io
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import convtrain
from benchmarks.common import SHARED_DATASETS, SIZES, quiet, scratch_dir, table, write_npz
from convtrain.data.dataset_registry import load_dataset
from convtrain.evaluation.prediction import predict_tensor

EXACT = SHARED_DATASETS / "cifar10-exact"
QUALITY = 75
# fastnet-small with the cifar10-fast recipe's rules at the fastnets' CPU batch: a few minutes a seed
TRAINING = {
    "recipe": "cifar10-fast",
    "model": "fastnet-small",
    "batch_size": 256,
    "lr": 0.375,
    "epochs": 16,
    "compile": False,
    "precision": "fp32",
}


def round_trip(images: np.ndarray, quality: int = QUALITY) -> np.ndarray:
    """uint8 (N, 3, H, W) images after one JPEG save and load at `quality` with 4:2:0 chroma."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image.transpose(1, 2, 0)).save(buffer, "JPEG", quality=quality, subsampling=2)
        out[i] = np.asarray(Image.open(buffer).convert("RGB")).transpose(2, 0, 1)
    return out


def exact_images() -> dict[str, np.ndarray]:
    """The bit-exact images of the copy: train and test images (N, 3, 32, 32) uint8 and labels."""
    with quiet():
        data = load_dataset("cifar10", str(SHARED_DATASETS), download=False)
    keep_train = np.load(EXACT / "exact_mask_train.npy")
    keep_test = np.load(EXACT / "exact_mask_test.npy")
    return {
        "x_train": data.train.images.numpy()[keep_train],
        "y_train": data.train.labels.numpy()[keep_train],
        "x_test": data.test.images.numpy()[keep_test],
        "y_test": data.test.labels.numpy()[keep_test],
    }


def accuracy(run, images: np.ndarray, labels: np.ndarray) -> float:
    model, card = run.load_model()
    probs = predict_tensor(model, card, torch.from_numpy(images))
    return float((probs.argmax(1).numpy() == labels).mean())


def run(quick: bool = False) -> str:
    title = "### The JPEG round trip's cost (CIFAR-10's 9,085 bit-exact images)\n\n"
    if not (EXACT / "exact_mask_test.npy").is_file():
        return title + f"skipped: the CIFAR-10 copy and its exact masks are not at {SHARED_DATASETS}."
    arrays = exact_images()
    jpeg = {"x_train": round_trip(arrays["x_train"]), "x_test": round_trip(arrays["x_test"])}
    change = float(np.abs(jpeg["x_test"].astype(int) - arrays["x_test"]).mean())
    seeds = 1 if quick else 2
    options = dict(TRAINING)
    if quick or SIZES["tiny"]:
        options["epochs"] = 2
    tests = {"exact": arrays["x_test"], "JPEG'd": jpeg["x_test"]}
    found: dict[tuple[str, str], list[float]] = {}
    seconds = []
    with scratch_dir() as scratch:
        for trained_on, x_train in (("exact", arrays["x_train"]), ("JPEG'd", jpeg["x_train"])):
            npz = write_npz(
                Path(scratch) / f"{len(found)}.npz",
                x_train,
                arrays["y_train"],
                tests["exact"],
                arrays["y_test"],
            )
            for seed in range(seeds):
                started = time.perf_counter()
                with quiet():
                    trained = convtrain.train(
                        dataset=f"npz:{npz}", val_split=0, test=False, seed=seed, quiet=True,
                        plots=False, out=str(Path(scratch) / f"run-{trained_on}-{seed}"), **options,
                    )  # fmt: skip
                seconds.append(time.perf_counter() - started)
                for tested_on, x_test in tests.items():
                    found.setdefault((trained_on, tested_on), []).append(
                        accuracy(trained, x_test, arrays["y_test"])
                    )
    rows = [
        [trained_on, tested_on, ", ".join(f"{100 * a:.2f}" for a in values),
         f"{100 * statistics.mean(values):.2f} ± {100 * (statistics.stdev(values) if len(values) > 1 else 0):.2f}"]
        for (trained_on, tested_on), values in found.items()
    ]  # fmt: skip
    header = ["trained on (8,068 images)", "tested on (1,017 images)", "test acc % per seed", "mean ± std"]
    return (
        title
        + f"{options['model']}, the cifar10-fast rules at batch {options['batch_size']}, {options['epochs']} "
        f"epochs, fp32, {seeds} seed(s), {statistics.mean(seconds):.0f} s a run. The round trip here "
        f"(quality {QUALITY}, 4:2:0) moves the exact test pixels by {change:.2f} of 255 on average.\n\n"
        + table(header, rows)
    )

"""How close each zoo model trains to the machine's peak on the CPU: FLOPs per image, images/s,
achieved GFLOP/s and the fraction of the measured matmul peak, in fp32 and bf16.

Each model trains 2 epochs on CIFAR-shaped tensors (3x32x32) at its own batch size; the figures are
the run's own `timings` (system/flop_counts.py: training FLOPs per image from torch's flop counter,
times the training images per second, over the peak probe's best matmul rate in that precision).
Epochs are sized to a few seconds each from the model's FLOPs. bf16 is measured for the models that
`--precision auto` decides about on a CPU (`cpu_bf16` in the registry, and LeNet-5 for contrast);
on a CPU without bf16 units oneDNN emulates it, and its peak is the emulated one.

    python -m benchmarks.run --only roofline
"""

from __future__ import annotations

from pathlib import Path

import convtrain
from benchmarks.common import cifar_shaped, quiet, scratch_dir, table, write_npz
from convtrain.models import build_model, model_names, own_training
from convtrain.models.model_registry import GENERIC_TRAINING
from convtrain.system.flop_counts import training_flops_per_image
from convtrain.system.runtime import cpu_bf16_units

BF16_MODELS = ("fastnet-tiny", "fastnet-small", "fastnet", "lenet5")
SECONDS_PER_EPOCH = 4.0  # at an assumed 50 GFLOP/s
ASSUMED_RATE = 50e9


def images_for(model: str) -> int:
    """Images per epoch: about SECONDS_PER_EPOCH of fp32 training, at least 2 batches."""
    batch = own_training(model).get("batch_size", GENERIC_TRAINING["batch_size"])
    net = build_model(model, 3, 10, 32)
    flops = training_flops_per_image(net, (3, 32, 32), next(net.parameters()).device)
    wanted = int(SECONDS_PER_EPOCH * ASSUMED_RATE / flops)
    return max(2 * batch, min(8192, wanted // batch * batch))


def measure(npz: Path, model: str, precision: str, out: Path) -> dict[str, float]:
    with quiet():
        run = convtrain.train(
            dataset=f"npz:{npz}",
            model=model,
            epochs=2,
            val_split=0,
            test=False,
            precision=precision,
            plots=False,
            quiet=True,
            out=str(out / f"{model}-{precision}"),
        )
    timings = run.results["timings"]
    return {**timings, "images_per_second": run.history[-1]["images_per_second"]}


def run(quick: bool = False) -> str:
    models = ["fastnet-tiny", "lenet5"] if quick else model_names()
    rows = []
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        for model in models:
            count = images_for(model)
            x, y = cifar_shaped(count)
            npz = write_npz(tmp / f"{model}.npz", x, y, x[:64], y[:64])
            for precision in ("fp32", "bf16") if model in BF16_MODELS else ("fp32",):
                t = measure(npz, model, precision, tmp)
                row = [
                    model,
                    precision,
                    f"{t['train_flops_per_image'] / 1e6:.1f}",
                    f"{t['images_per_second']:.0f}",
                    f"{t['achieved_flops'] / 1e9:.1f}",
                    f"{t['peak_flops'] / 1e9:.0f}",
                    f"{100 * t['fraction_of_peak']:.0f}%",
                ]
                rows.append(row)
                print("  roofline: " + " | ".join(row), flush=True)
    units = cpu_bf16_units() or "none (bf16 emulated)"
    header = [
        "model",
        "precision",
        "training MFLOP/image",
        "images/s (epoch 2)",
        "achieved GFLOP/s (both epochs)",
        "measured peak GFLOP/s",
        "fraction of peak",
    ]
    title = f"### Roofline on the CPU (3x32x32, each model's own batch; bf16 units: {units})"
    return f"{title}\n\n" + table(header, rows)

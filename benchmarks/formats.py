"""Memory format on the CPU: training images/s of each zoo model, NCHW vs channels_last, side by side.

convtrain turns channels_last on by itself only on a GPU with bf16/fp16 (`--channels-last auto`).
This measures whether the CPU gains from it too: same model, data, batch and optimizer, one
training step loop per format, interleaved over rounds.

    python -m benchmarks.run --only formats [--quick]
"""

from __future__ import annotations

import time
from functools import partial

import torch
import torch.nn.functional as F

from benchmarks.common import interleave, median, ratio_median, spread, table
from convtrain.models import build_model, model_names

BATCH = 128


def step_rate(name: str, channels_last: bool, channels: int, size: int, steps: int) -> float:
    """Training images/s of `steps` SGD steps on random data (after two untimed steps)."""
    torch.manual_seed(0)
    model = build_model(name, channels, 10, size).train()
    x = torch.randn(BATCH, channels, size, size)  # (B, C, H, W)
    y = torch.randint(0, 10, (BATCH,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for i in range(steps + 2):
        if i == 2:
            started = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * BATCH / (time.perf_counter() - started)


def run(quick: bool = False) -> str:
    rounds, steps = (2, 3) if quick else (3, 3)
    names = ["lenet5", "mnist-cnn", "fastnet-tiny"] if quick else model_names()
    rows = []
    for name in names:
        channels, size = (
            (1, 28) if name.startswith(("lenet", "mnist", "fastnet-tiny", "fastnet-small")) else (3, 32)
        )
        contenders = {
            "nchw": partial(step_rate, name, False, channels, size, steps),
            "channels_last": partial(step_rate, name, True, channels, size, steps),
        }
        figures = interleave(contenders, rounds)
        ratio = ratio_median(figures["channels_last"], figures["nchw"])
        rows.append(
            [
                name,
                f"{channels}x{size}x{size}",
                f"{median(figures['nchw']):.0f} ({spread(figures['nchw'])})",
                f"{median(figures['channels_last']):.0f} ({spread(figures['channels_last'])})",
                f"{ratio:.2f}x",
            ]
        )
        print(f"  formats: {name} done", flush=True)
    header = [
        "model",
        "input",
        "NCHW img/s (min-max)",
        "channels_last img/s (min-max)",
        "channels_last / NCHW",
    ]
    return (
        f"### Memory format on the CPU (fp32, batch {BATCH}, {steps} steps x {rounds} interleaved rounds, medians)\n\n"
        + table(header, rows)
    )

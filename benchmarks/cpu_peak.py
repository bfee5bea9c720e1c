"""How close the default model's training step comes to the CPU's peak, and what each thing tried
to bring it closer changes: layout (channels_last, NCHW, oneDNN's blocked tensors), batch size, the
whitening bias, BatchNorm and GELU, channel counts, threads, torch.compile.

Every try is the same training step convtrain runs (`training.train_step`: forward, loss with label
smoothing, backward, SGD with Nesterov momentum and fastnet's parameter groups) on fastnet-tiny,
over MNIST batches (1x28x28) already in memory, so only the step is timed. The tries run in
interleaved rounds with a matmul peak probe (`system/arithmetic.probe_matmul`) in every round, so
each fraction of peak is taken against the peak of the same minutes: on a shared machine the
cached peak of a quiet day overstates what the cores give at the moment.

FLOPs per image are each try's own (torch's flop counter over the step's forward and backward): a
try that skips work (the frozen whitening bias skips an input gradient) is faster in images/s and
not in GFLOP/s.

    python -m benchmarks.run --only cpu_peak
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from benchmarks.common import interleave, median, mnist_tensors, ratio_median, spread, table
from convtrain.config.train_config import TrainConfig
from convtrain.models import build_model
from convtrain.models.fastnet import FastNet, FrozenScaleBatchNorm
from convtrain.system.flop_counts import probe_matmul, training_flops_per_image
from convtrain.system.runtime import grad_scaler
from convtrain.training.loop import train_step
from convtrain.training.optim import build_optimizer

STEPS = 12  # timed steps per try per round, after the round's first (untimed) step
ROUNDS = 9
TRAINING = dict(lr=0.375, momentum=0.85, weight_decay=0.00133)  # fastnet's own rules


# ----- the network variants -----


def shipped() -> nn.Module:
    return build_model("fastnet-tiny", 1, 10, 28)


def whiten_bias_trained() -> nn.Module:
    return FastNet(1, 10, widths=(16, 32, 64), train_whiten_bias=True)


def _swapped(kinds: tuple[type, ...], make: Callable[[], nn.Module]) -> nn.Module:
    """The shipped network with every child of one of `kinds` replaced by `make()`."""
    net = shipped()
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, kinds):
                setattr(module, name, make())
    return net


def without_norm_and_activation() -> nn.Module:
    """BatchNorm and GELU removed: the most that fusing them (or any cheaper form) could save."""
    return _swapped((FrozenScaleBatchNorm, nn.GELU), nn.Identity)


def relu_for_gelu() -> nn.Module:
    return _swapped((nn.GELU,), nn.ReLU)


def first_conv_sixteen_inputs() -> nn.Module:
    """The whitening's 8 outputs padded with 8 zero channels, so every conv's input is a multiple of 16
    (the same function, more FLOPs): does a full tile pay for itself?"""
    net = shipped()
    whiten, conv = net.whiten, net.features[2].conv1
    with torch.no_grad():
        whiten.weight = torch.cat([whiten.weight, torch.zeros_like(whiten.weight)])  # (16, 1, 2, 2)
        whiten.bias = torch.cat([whiten.bias, torch.zeros_like(whiten.bias)])
        wide = nn.Conv2d(16, conv.out_channels, 3, padding=1, bias=False)
        wide.weight.zero_()
        wide.weight[:, :8] = conv.weight
    net.features[2].conv1 = wide
    return net


class BlockedLayout(nn.Module):
    """fastnet-tiny with its features run on oneDNN's blocked-layout tensors (`Tensor.to_mkldnn`):
    conv, pooling, BatchNorm and GELU take them, forward and backward; the head takes a dense one."""

    def __init__(self) -> None:
        super().__init__()
        self.net = shipped()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, 28, 28), dense
        features = self.net.features(x.to_mkldnn()).to_dense()  # (B, 64, 3, 3)
        return self.net.head(features) * self.net.logit_scale

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        return self.net.parameter_groups(lr, weight_decay)


# ----- one try: a step function and its images/s -----


def step_rate(
    make: Callable[[], nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    batch: int = 256,
    channels_last: bool = True,
    threads: int = 0,
    compile_step: bool = False,
) -> tuple[Callable[[], float], float, float]:
    """(a callable timing STEPS steps -> images/s, training FLOPs per image, seconds of set-up and first
    step: torch.compile's compile time)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = make().to(memory_format=layout).train()
    counted = model.net if isinstance(model, BlockedLayout) else model  # the same network, dense
    flops = training_flops_per_image(counted, tuple(images.shape[1:]), torch.device("cpu"))
    config = TrainConfig(model="fastnet-tiny", batch_size=batch, **TRAINING)
    optimizer = build_optimizer(model, config)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.2)
    net = torch.compile(model) if compile_step else model
    scaler = grad_scaler("fp32", torch.device("cpu"))
    x = images[:batch].contiguous(memory_format=layout)  # (B, 1, 28, 28)
    y = labels[:batch]

    def steps(count: int) -> float:
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            started = time.perf_counter()
            for _ in range(count):
                train_step(net, criterion, optimizer, scaler, x, y, "fp32")
            return count * batch / (time.perf_counter() - started)
        finally:
            torch.set_num_threads(before)

    started = time.perf_counter()
    steps(2)  # kernel choice, allocation; compilation when compiled
    setup = time.perf_counter() - started

    def timed() -> float:
        steps(1)
        return steps(STEPS)

    return timed, flops, setup


def tries(images: torch.Tensor, labels: torch.Tensor, quick: bool) -> dict[str, tuple]:
    """name -> (timed, flops per image, set-up seconds); the first is the baseline."""
    found = {
        "as shipped (channels_last, batch 256, 2 threads, whitening bias frozen)": step_rate(
            shipped, images, labels
        ),
        "whitening bias trained (before)": step_rate(whiten_bias_trained, images, labels),
        "NCHW layout": step_rate(shipped, images, labels, channels_last=False),
        "batch 128": step_rate(shipped, images, labels, batch=128),
        "batch 512": step_rate(shipped, images, labels, batch=512),
        "batch 1024": step_rate(shipped, images, labels, batch=1024),
        "1 thread": step_rate(shipped, images, labels, threads=1),
        "ReLU for GELU": step_rate(relu_for_gelu, images, labels),
        "no BatchNorm or GELU (bound on fusing them)": step_rate(without_norm_and_activation, images, labels),
        "first conv fed 16 channels (8 zero)": step_rate(first_conv_sixteen_inputs, images, labels),
        "oneDNN blocked layout (to_mkldnn features)": step_rate(
            BlockedLayout, images, labels, channels_last=False
        ),
    }
    if not quick:
        found["torch.compile (inductor)"] = step_rate(shipped, images, labels, compile_step=True)
    return found


def run(quick: bool = False) -> str:
    images, labels = mnist_tensors(1024)
    found = tries(images, labels, quick)
    contenders = {name: entry[0] for name, entry in found.items()}
    contenders["peak probe"] = lambda: probe_matmul(torch.device("cpu"), "fp32")
    figures = interleave(contenders, 2 if quick else ROUNDS)
    peak = median(figures["peak probe"])
    base_name = next(iter(found))
    rows = []
    for name, (_, flops, setup) in found.items():
        rate = figures[name]
        achieved = [flops * r for r in rate]
        row = [
            name,
            f"{flops / 1e6:.1f}",
            f"{median(rate):.0f} ({spread(rate)})",
            f"{ratio_median(rate, figures[base_name]):.2f}x",
            f"{median(achieved) / 1e9:.1f}",
            f"{100 * ratio_median(achieved, figures['peak probe']):.0f}%",
            f"{setup:.1f}",
        ]
        rows.append(row)
        print("  cpu_peak: " + " | ".join(row), flush=True)
    header = [
        "try",
        "training MFLOP/image",
        "images/s",
        "vs shipped",
        "GFLOP/s",
        "fraction of the round's peak",
        "set-up s",
    ]
    title = (
        f"### fastnet-tiny's training step against the CPU's peak (fp32, MNIST 1x28x28; "
        f"matmul peak {peak / 1e9:.0f} GFLOP/s, median of the rounds)"
    )
    return f"{title}\n\n" + table(header, rows)

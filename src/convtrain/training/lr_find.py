"""The learning-rate range test: train briefly while the lr grows exponentially, and plot the loss.

    convtrain lr-find --model lenet5 --optimizer adam

Every step is training's own `train_step`: the same precision, scaler, gradient clipping and
per-group learning rates as the run the suggestion is for. The suggestion is the lr where the
smoothed loss falls fastest, a common and robust choice; the search stops early once the loss has
blown up to four times its best value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from convtrain.base.errors import ConfigError
from convtrain.base.figures import new_figure, picture_path, save_figure
from convtrain.config.train_config import TrainConfig
from convtrain.system.runtime import backend_settings
from convtrain.training.loop import train_step
from convtrain.training.optim import build_optimizer
from convtrain.training.setup import Job, choose_device, prepare_job


def lr_find(
    config: TrainConfig, start: float = 1e-5, end: float = 10.0, steps: int = 100, out: str | None = None
) -> dict[str, Any]:
    if not 0 < start < end:
        raise ConfigError(f"lr-find needs 0 < --start < --end, got {start} and {end}")
    if steps < 10:
        raise ConfigError(f"lr-find needs at least 10 --steps, got {steps}")
    plot = picture_path(out or "lr-find.png")  # a bad name is refused before the sweep
    device = choose_device(config)
    with backend_settings(config.deterministic, device):
        job = prepare_job(config.replace(plots=False, epochs=1), record=False, device=device)
        try:
            lrs, losses = _sweep(job, start, end, steps)
        finally:
            job.close()
    suggested = steepest_descent(lrs, losses)
    _plot(lrs, losses, suggested, plot)
    return {"lrs": lrs, "losses": losses, "suggested_lr": suggested, "plot": str(plot)}


def _sweep(job: Job, start: float, end: float, steps: int) -> tuple[list[float], list[float]]:
    """(lrs, smoothed losses): one training step per lr, from start to end on a log scale."""
    # A fresh optimizer without the set-up's schedule: the sweep sets every step's lr itself (a
    # one-cycle schedule would already have lowered the groups' rates to its starting point).
    optimizer, scaler = build_optimizer(job.model, job.config, job.device), job.state.scaler
    # Each group keeps its own rate relative to the peak lr (--backbone-lr-mult, a model's own
    # groups): the sweep scales them all together, as the schedule does in training.
    shares = [group["lr"] / job.config.lr for group in optimizer.param_groups]
    lrs, losses, smoothed, best = [], [], 0.0, math.inf
    batches = _endless(job.train_loader)
    job.net.train()
    for step in range(steps):
        lr = start * (end / start) ** (step / (steps - 1))
        for group, share in zip(optimizer.param_groups, shares, strict=True):
            group["lr"] = lr * share
        x, y = next(batches)
        loss, _ = train_step(
            job.net, job.criterion, optimizer, scaler, x, y, job.config.precision, job.config.grad_clip
        )
        value = loss.item()  # a sync per step: the search reads every loss to decide when to stop
        if not math.isfinite(value):
            break
        smoothed = 0.9 * smoothed + 0.1 * value if step else value  # exponential smoothing
        lrs.append(lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if smoothed > 4 * best and step > 10:
            break
    return lrs, losses


def _endless(loader):
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def steepest_descent(lrs: list[float], losses: list[float]) -> float:
    """The lr at the end of the steepest fall of the loss against log(lr)."""
    if len(lrs) < 3:
        raise ConfigError("lr-find: the loss diverged at once; lower --start")
    logs = torch.tensor(lrs).log()
    slopes = torch.tensor(losses).diff() / logs.diff()  # d loss / d log(lr)
    return lrs[int(slopes.argmin()) + 1]


def _plot(lrs: list[float], losses: list[float], suggested: float, path: Path) -> None:
    figure = new_figure(6, 4)
    axis = figure.subplots()
    axis.plot(lrs, losses)
    axis.axvline(suggested, color="tab:red", linestyle="--", label=f"suggested {suggested:.2g}")
    axis.set(
        xscale="log",
        xlabel="learning rate",
        ylabel="smoothed training loss",
        title="learning-rate range test",
    )
    axis.legend()
    save_figure(figure, path)

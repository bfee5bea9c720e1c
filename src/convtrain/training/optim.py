"""Optimizers, the learning-rate schedule as a pure function of the step, and weight averaging.

lr_factor(step, total_steps, warmup_steps, "onecycle")  # multiplier of the peak lr
"""

from __future__ import annotations

import math

import torch
from torch import nn

from convtrain.config.train_config import TrainConfig
from convtrain.models.heads import split_head_groups
from convtrain.models.hooks import HasParameterGroups

# The "triangle" schedule's corners, as fractions of the peak lr and of the steps after warm-up.
TRIANGLE_START, TRIANGLE_PEAK, TRIANGLE_END = 0.2, 0.23, 0.07
# Lookahead moves the average and puts the weights back every this many steps.
LOOKAHEAD_EVERY = 5


def build_optimizer(
    model: nn.Module, config: TrainConfig, device: torch.device | None = None
) -> torch.optim.Optimizer:
    """The optimizer of `config` over the model's trainable parameters (on `device`, by default the
    parameters' own). On CUDA it is fused: one kernel for the whole update, and GradScaler.step then
    checks for inf/NaN on the device instead of reading a flag back every step (a sync)."""
    if config.lr is None or config.momentum is None or config.weight_decay is None:
        raise ValueError(
            "build_optimizer needs a resolved config (training/resolve.py): lr, momentum and weight_decay set"
        )
    device = device or next(model.parameters()).device
    fused = True if device.type == "cuda" else None  # None: torch's default (foreach) elsewhere
    if isinstance(model, HasParameterGroups):  # a model may ask for its own lr/decay per group
        params = model.parameter_groups(config.lr, config.weight_decay)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    if config.backbone_lr_mult != 1.0:  # discriminative rates: every group split into head and backbone
        groups = (
            [{"lr": config.lr, **g} for g in params]
            if isinstance(params[0], dict)
            else [{"params": params, "lr": config.lr}]
        )
        params = split_head_groups(model, groups, config.backbone_lr_mult)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
            fused=fused,
        )
    betas = (config.momentum, 0.999)
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return kind(params, lr=config.lr, betas=betas, weight_decay=config.weight_decay, fused=fused)


def lr_factor(
    step: int,
    total_steps: int,
    warmup_steps: int,
    schedule: str,
    steps_per_epoch: int = 1,
    step_epochs: int = 10,
    step_gamma: float = 0.1,
) -> float:
    """The learning rate at `step` as a fraction of the peak: linear warm-up, then the schedule."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1 after warm-up
    progress = min(progress, 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return step_gamma ** (step // (steps_per_epoch * step_epochs))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "triangle":  # the CIFAR-10 speed records' shape: 0.2 -> 1 at 23% -> 0.07 at the end
        if progress < TRIANGLE_PEAK:
            return TRIANGLE_START + (1.0 - TRIANGLE_START) * progress / TRIANGLE_PEAK
        return 1.0 - (1.0 - TRIANGLE_END) * (progress - TRIANGLE_PEAK) / (1.0 - TRIANGLE_PEAK)
    # onecycle: rise linearly to the peak over the first 25% (unless warm-up did it), then fall to 0
    if warmup_steps == 0 and progress < 0.25:
        return 0.04 + 0.96 * progress / 0.25
    start = 0.0 if warmup_steps else 0.25
    return max(0.0, 1.0 - (progress - start) / (1.0 - start))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        return lr_factor(
            step,
            total_steps,
            warmup_steps,
            config.schedule,
            steps_per_epoch,
            config.step_epochs,
            config.step_gamma,
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class WeightAverage:
    """Exponential moving average of a model's weights (integer buffers, such as BatchNorm's batch
    count, are copied).

    The pairs of tensors (average, live) are found once, on the first update, and every update is
    one fused lerp over all of them: no state_dict() per step, no launch per tensor. This holds
    while the model keeps its tensors, as training does (it moves to its device before this is made).
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._pairs: tuple[nn.Module, list, list, list, list] | None = None

    def _tensors(self, model: nn.Module) -> tuple[nn.Module, list, list, list, list]:
        """(model, averaged floats, live floats, averaged others, live others)."""
        if self._pairs is None or self._pairs[0] is not model:
            live = {k: v.detach() for k, v in model.state_dict(keep_vars=True).items()}
            floats = [k for k, v in self.state.items() if v.is_floating_point()]
            others = [k for k in self.state if k not in set(floats)]
            self._pairs = (
                model,
                [self.state[k] for k in floats],
                [live[k] for k in floats],
                [self.state[k] for k in others],
                [live[k] for k in others],
            )
        return self._pairs

    @torch.no_grad()
    def update(self, model: nn.Module, step: int = 0) -> None:
        """After each optimizer step (`step`: the steps taken so far, which a plain average ignores)."""
        self._move(model, self.decay)

    def end_epoch(self, model: nn.Module) -> None:
        """After the epoch's last step: a plain average leaves the live weights alone."""

    @torch.no_grad()
    def _move(self, model: nn.Module, decay: float) -> None:
        _, averaged, live, _, _ = self._tensors(model)
        if averaged:
            torch._foreach_lerp_(averaged, live, 1.0 - decay)
        self._copy_counters(model)

    @torch.no_grad()
    def _copy_counters(self, model: nn.Module) -> None:
        """The non-float tensors (BatchNorm's batch counts) copied from the live model, never averaged."""
        _, _, _, averaged_others, live_others = self._tensors(model)
        for average, value in zip(averaged_others, live_others, strict=True):
            average.copy_(value)

    @torch.no_grad()
    def _put_back(self, model: nn.Module) -> None:
        """The live float tensors set to the average (the optimizer's state is left as it is)."""
        _, averaged, live, _, _ = self._tensors(model)
        if averaged:
            torch._foreach_copy_(live, averaged)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            self.state[key].copy_(value)


class Lookahead(WeightAverage):
    """The CIFAR-10 speed records' weight averaging (`--ema D --lookahead`): every 5 steps the average
    moves toward the live weights, and training goes on from the average, not from where the
    optimizer had taken the weights (as the Lookahead optimizer does). The average's decay grows
    over the run, D^5 x (step / total_steps)^3: close to 0 early, when the weights must move fast,
    D^5 (0.77 for 0.95) at the end. After each epoch the weights are put back once more, so the
    model the epoch is measured on is the one training goes on from. BatchNorm's running statistics
    are averaged with the weights.
    """

    def __init__(self, model: nn.Module, decay: float, total_steps: int):
        super().__init__(model, decay)
        self.total_steps = max(1, total_steps)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int = 0) -> None:
        if step % LOOKAHEAD_EVERY:
            return
        progress = min(1.0, step / self.total_steps)
        self._move(model, self.decay**LOOKAHEAD_EVERY * progress**3)
        self._put_back(model)

    def end_epoch(self, model: nn.Module) -> None:
        self._copy_counters(model)
        self._put_back(model)


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 over the images: w_c = N / (K * n_c)."""
    counts = torch.bincount(labels, minlength=num_classes).float().clamp_min(1)
    return len(labels) / (num_classes * counts)

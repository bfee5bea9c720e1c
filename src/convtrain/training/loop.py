"""Training: fit() runs a whole job from a TrainConfig; train_one_epoch() is the plain loop.

    convtrain train --dataset mnist --model lenet5 --epochs 5
    python -c "import convtrain; print(convtrain.train(epochs=1).results)"

The loop reads top to bottom: batches come from the device-resident loader already augmented and
normalised; one autocast context covers every precision; a scaler that only acts for fp16. The
loss is summed on the device and read back only when a line is printed, since every .item() is a
CPU-GPU sync point.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from convtrain.base.atomic_files import disk_error, os_error_in
from convtrain.base.errors import ConvtrainError, DiskError
from convtrain.config.recipes import load_recipe
from convtrain.config.train_config import TrainConfig
from convtrain.evaluation.scoring import score_loader
from convtrain.runs.checkpoint import TrainState, interrupts_deferred
from convtrain.runs.run_dir import RunDir
from convtrain.system import distributed
from convtrain.system.runtime import autocast, backend_settings, synchronize
from convtrain.system.timings import Timings
from convtrain.training.run_end import finish
from convtrain.training.setup import Job, choose_device, prepare_job


class NonFiniteLoss(ConvtrainError):
    """The loss became NaN or infinite."""


def train(config: TrainConfig | None = None, **overrides: Any) -> RunDir:
    """Train a model and return its run folder, with config, history, results and model filled in.

    Keyword arguments override fields of `config`, which is never changed: calling this twice with
    the same config and no `out` trains into two folders (runs/x, runs/x-2). `recipe="mnist-fast"`
    applies the packaged recipe as `--recipe` does: under the other keyword arguments.
    """
    config = config or TrainConfig()
    if overrides.get("recipe"):
        overrides = load_recipe(overrides["recipe"]) | overrides
    if overrides:
        config = config.replace(**overrides)
    return fit(config)


def fit(
    config: TrainConfig,
    startup_seconds: float = 0.0,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunDir:
    """Train from a config. `startup_seconds` is the process's start-up before this call (the CLI's
    imports), recorded in the run's timings. `on_epoch(row)` sees each epoch's metrics.csv row once
    it is saved; a sweep reports it to its pruner there, and whatever it raises ends the run (the run
    folder keeps the epochs so far, and is released)."""
    timings = Timings()
    timings.add("startup", startup_seconds)
    device = choose_device(config)
    with backend_settings(config.deterministic, device):
        job = prepare_job(config, timings=timings, device=device)
        completed = False
        try:
            run = _fit(job, on_epoch)
            completed = True
            return run
        except torch.cuda.OutOfMemoryError:  # the resolved batch size, not the config's (maybe unset) one
            raise ConvtrainError(
                f"out of GPU memory at batch size {job.config.batch_size}; lower --batch-size or use --batch-size auto"
            ) from None
        except (DiskError, OSError) as error:  # ours from atomic_write, or TensorBoard's own event file
            cause = os_error_in(error)
            if not isinstance(error, DiskError) and cause is None:
                raise
            line = str(error) if isinstance(error, DiskError) else str(disk_error(job.run.path, cause))
            raise DiskError(f"{line}. {_what_is_kept(job.run)}") from None
        finally:
            job.close()
            job.net = job.model  # drop the DDP wrapper, which holds the process group, before the group goes
            distributed.stop(completed)


def _fit(job: Job, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> RunDir:
    """The run as a list of steps: resume, measure before, the epochs, the end."""
    config, run, state = job.config, job.run, job.state
    best_weights = _resume(job) if config.resume else None
    if config.eval_before and not config.resume:
        with job.timings.measure("validation"):
            state.before = _measure_before(job)
    stop_reason, training_seconds = "", sum(row["seconds"] for row in state.history)
    try:
        first_epoch = state.epoch + 1  # the first epoch this process trains
        for epoch in range(first_epoch, config.epochs):
            row = _train_and_measure(job, epoch, first=epoch == first_epoch)
            training_seconds += row["seconds"]
            best_weights = _record_epoch(job, row, best_weights)
            if on_epoch is not None:
                on_epoch(row)
            stop_reason = _stop_reason(config, state, training_seconds)
            if stop_reason:
                job.log(stop_reason)
                break
    except KeyboardInterrupt:
        job.log(
            f"interrupted; last.pt holds epoch {len(state.history)}. Continue with: convtrain train --resume {run.path}"
        )
        weights = best_weights if best_weights is not None else job.current_weights()
        run.remember(config=config, history=state.history, results={"interrupted": True})
        _remember_model(job, weights)
        return run

    tested = job.current_weights() if config.test_weights == "last" else best_weights
    results = finish(job, state.history, tested, training_seconds, stop_reason, state.before)
    run.remember(config=config, history=state.history, results=results)
    _remember_model(job, tested if tested is not None else job.current_weights())
    return run


def _resume(job: Job) -> dict[str, torch.Tensor]:
    """The state of last.pt loaded into the job's; the best weights so far, from best.pt."""
    with job.timings.measure("checkpoints"):
        # Loaded on the CPU: load_state_dict puts each tensor on its part's device, and the RNG
        # state must stay a CPU tensor (torch.set_rng_state refuses a GPU one).
        job.state.load_state_dict(job.run.load_state("last"))
        best_weights = job.run.load_state("best")["model"]
    job.log(f"resumed {job.run.path} after epoch {job.state.epoch + 1} (step {job.state.step})")
    return best_weights


def _train_and_measure(job: Job, epoch: int, first: bool) -> dict[str, Any]:
    """One epoch trained and validated: its metrics.csv row."""
    job.train_loader.set_epoch(epoch)
    started = time.perf_counter()
    train_stats = train_one_epoch(job, epoch)
    job.state.step += train_stats["steps"]
    seconds = time.perf_counter() - started
    first_step = train_stats["first_step_seconds"] if first else 0.0
    job.timings.add("first_step", first_step)
    job.timings.add("training", seconds - first_step)
    with job.timings.measure("validation"):
        val = validate(job)
    return {
        "epoch": epoch + 1,
        "train_loss": train_stats["loss"],
        "train_acc": train_stats["accuracy"],
        "val_loss": val.get("loss", float("nan")),
        "val_acc": val.get("accuracy", float("nan")),
        "lr": job.state.optimizer.param_groups[0]["lr"],
        "seconds": seconds,
        "images_per_second": train_stats["images"] / seconds,
    }


def _record_epoch(
    job: Job, row: dict[str, Any], best_weights: dict[str, torch.Tensor] | None
) -> dict[str, torch.Tensor] | None:
    """The epoch into the state and its files; the best weights so far (this epoch's if it improved).

    Ctrl-C waits until the epoch is recorded and its files are whole: last.pt, best.pt and
    metrics.csv then all hold this epoch, and the interrupt's message names it."""
    config, run, state = job.config, job.run, job.state
    with interrupts_deferred():
        state.history.append(row)
        state.epoch = row["epoch"] - 1
        value = _monitored(row, config.monitor)
        improved = is_better(value, state.best_value, config.monitor)
        if improved:
            state.best_value = value
            best_weights = {
                k: v.detach().clone() for k, v in job.current_weights().items()
            }  # every rank its own
        if distributed.is_main():
            with job.timings.measure("checkpoints"):
                if improved:
                    run.save_weights(
                        "best", {"model": best_weights, "epoch": row["epoch"], config.monitor: value}
                    )
                run.save_weights("last", state.state_dict())
                run.write_metrics(state.history)
            job.log_epoch(row, config.epochs, improved)
    return best_weights


def _what_is_kept(run: RunDir) -> str:
    """After a disk problem: what the run folder still holds, and how to go on once there is room."""
    if not run.weights_path("last").is_file():
        return "Nothing was saved yet: once there is room, train again"
    try:
        epoch = run.load_state("last")["epoch"] + 1
    except ConvtrainError:
        return f"Once there is room, continue with: convtrain train --resume {run.path}"
    return f"last.pt is whole and holds epoch {epoch}: once there is room, continue with: convtrain train --resume {run.path}"


def _remember_model(job: Job, weights: dict[str, torch.Tensor]) -> None:
    """run.model: a CPU copy of the weights the run measured (what load_model() returns), rebuilt
    from the model card, never the live training network (on the GPU, maybe channels_last). Other
    ranks leave it to be read from disk when asked."""
    if distributed.is_main():
        job.run.remember(model=job.run.model_with(weights))


def _measure_before(job: Job) -> dict[str, float]:
    """--eval-before: the epoch-eval split measured with the untrained weights."""
    split = job.config.epoch_eval
    measured = validate(job)
    if not measured:
        job.log(
            "--eval-before: there is no validation split to measure (set --val-split or --epoch-eval test)"
        )
        return {}
    job.log(
        f"before training: {split} loss {measured['loss']:.4f}  accuracy {100 * measured['accuracy']:.2f}%"
    )
    return {f"before_{split}_{k}": measured[k] for k in ("loss", "accuracy")}


def _stop_reason(config: TrainConfig, state: TrainState, training_seconds: float) -> str:
    epochs_since_best = len(state.history) - 1 - _best_index(state.history, config.monitor)
    if config.max_steps and state.step >= config.max_steps:
        return f"reached --max-steps {config.max_steps}"
    if config.patience and epochs_since_best >= config.patience:
        return f"early stop: {config.monitor} has not improved for {config.patience} epochs"
    if config.max_time and training_seconds >= config.max_time:
        return f"reached --max-time {config.max_time:g}s"
    return ""


def train_step(
    net: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    x: torch.Tensor,
    y: torch.Tensor,
    precision: str,
    grad_clip: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step, the only one in convtrain (the epoch loop, lr-find and the data check's
    fold models call it): forward under autocast, backward through the scaler (which acts for fp16
    only), gradient clipping, step. Returns (loss, logits), still on the device."""
    with autocast(precision, x.device):
        logits = net(x)  # (B, K)
        loss = criterion(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss, logits


def train_one_epoch(job: Job, epoch: int) -> dict[str, Any]:
    """One pass over the training loader, stepping the job's state. Returns mean loss/accuracy,
    images seen and steps taken."""
    config, net, criterion, state = job.config, job.net, job.criterion, job.state
    first_step = state.step
    job.train_mode(epoch)  # net.train(), with the backbone frozen for --freeze-epochs
    # Running sums stay on the device (no sync per step). A non-finite loss makes loss_sum
    # non-finite for the rest of the epoch, so counting the steps after which it is still finite
    # finds the first bad step without a per-step branch: two small ops instead of five.
    loss_sum = torch.zeros((), device=job.device)
    correct = torch.zeros((), device=job.device, dtype=torch.int64)
    finite_steps = torch.zeros((), device=job.device, dtype=torch.int64)
    images, steps, first_step_seconds = 0, 0, 0.0
    started = time.perf_counter()
    progress = job.progress(len(job.train_loader), epoch)
    for x, y in job.train_loader:  # x: (B, C, H, W) normalised; y: (B,) labels or (B, K) soft targets
        loss, logits = train_step(
            net, criterion, state.optimizer, state.scaler, x, y, config.precision, config.grad_clip
        )
        state.scheduler.step()
        if state.ema is not None:
            state.ema.update(job.model, first_step + steps + 1)  # the steps taken, this one included

        loss_sum.add_(loss.detach(), alpha=len(x))
        finite_steps += torch.isfinite(loss_sum)
        labels = y if y.dim() == 1 else y.argmax(1)
        correct += (logits.argmax(1) == labels).sum()
        images += len(x)
        steps += 1
        if steps == 1:  # the first step pays lazy imports and kernel selection: timed apart
            synchronize(job.device)  # one sync per epoch: the time of the work, not of its launch
            first_step_seconds = time.perf_counter() - started
        if progress.wants_update(steps):  # on a timer: each update reads the sums back (a sync)
            _check_finite(finite_steps, steps, first_step, epoch, job)
            progress.update(steps, loss_sum.item(), correct.item(), images)
        if config.max_steps and first_step + steps >= config.max_steps:
            break
    _check_finite(finite_steps, steps, first_step, epoch, job)
    if state.ema is not None:
        state.ema.end_epoch(job.model)
    totals = distributed.sum_across_ranks(
        torch.stack(
            [
                loss_sum.double(),
                correct.double(),
                torch.tensor(float(images), device=job.device, dtype=torch.float64),
            ]
        )
    ).tolist()  # the epoch's one read-back
    progress.close()
    count = max(1.0, totals[2])
    return {
        "loss": totals[0] / count,
        "accuracy": totals[1] / count,
        "images": images,
        "steps": steps,
        "first_step_seconds": first_step_seconds,
    }


def validate(job: Job) -> dict[str, float]:
    """Loss and accuracy on the validation split, with the averaged weights when EMA is on."""
    if job.val_loader is None:
        return {}
    return score_loader(job.eval_model(), job.val_loader, job.num_classes, job.config.precision)


def is_better(value: float, best: float | None, monitor: str) -> bool:
    """The one rule for "did it improve": a lower val_loss or a higher val_acc (None: no best yet).
    It picks best.pt, drives --patience, and marks an epoch's line with '*'."""
    return best is None or (value < best if monitor == "val_loss" else value > best)


def _monitored(row: dict[str, Any], monitor: str) -> float:
    value = row[monitor]
    if value != value:  # no validation split: fall back to the training loss/accuracy
        value = row["train_" + monitor.removeprefix("val_")]
    return value


def _best_index(history: list[dict[str, Any]], monitor: str) -> int:
    """The epoch (from 0) of the best monitored value so far: the first one, on a tie."""
    best_index, best = 0, None
    for index, row in enumerate(history):
        value = _monitored(row, monitor)
        if is_better(value, best, monitor):
            best_index, best = index, value
    return best_index


def _check_finite(finite_steps: torch.Tensor, steps: int, first_step: int, epoch: int, job: Job) -> None:
    finite = int(finite_steps)  # a sync point, taken only when a line is printed and at epoch end
    if finite < steps:
        raise NonFiniteLoss(
            f"loss became non-finite at step {first_step + finite} (epoch {epoch + 1}); lower --lr, add --grad-clip 1.0 "
            f"or use --precision fp32. The last good checkpoint is {job.run.last_path}"
        )

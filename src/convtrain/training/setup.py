"""The one set-up for everything that trains: device, data, loaders, model, optimizer, run folder.

prepare_job() turns a TrainConfig into a Job whose `state` (the TrainState: model, optimizer,
schedule, scaler, EMA) the loop (training/loop.py) only has to step; lr-find takes the same Job
without a run folder. The data check's fold models, which train on rows of tensors already on the
device, are built by the same builders a run's are (`fresh_network`, `network_to_device`,
`optimization`, `loss_function`), so a change to training reaches them too. Bad input (an unknown
model, a missing dataset, a run folder that is taken) fails here, before any work.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from convtrain.base.errors import ConfigError, ConvtrainError
from convtrain.config.train_config import TrainConfig
from convtrain.data.augment import parse_augment
from convtrain.data.dataset import ImageData, Split
from convtrain.data.decode import decode_many
from convtrain.data.exclude import exclude_training_images
from convtrain.data.loader import make_loader
from convtrain.data.memory_cache import load_data
from convtrain.data.pixels import normalize
from convtrain.data.split import split_indices
from convtrain.evaluation.report.run_pictures import make_run_pictures
from convtrain.evaluation.scoring import Scored
from convtrain.models import build_model, init_weights
from convtrain.models.heads import Freezer
from convtrain.models.hooks import FitsToData
from convtrain.runs.checkpoint import TrainState, checkpoint_bytes
from convtrain.runs.run_dir import RunDir
from convtrain.system import distributed
from convtrain.system.progress import Progress
from convtrain.system.runtime import (
    check_precision,
    grad_scaler,
    pick_device,
    seed_everything,
    use_channels_last,
)
from convtrain.system.timings import Timings
from convtrain.training.epochs_and_size import fit_to_model, library_size
from convtrain.training.optim import (
    Lookahead,
    WeightAverage,
    build_optimizer,
    build_scheduler,
    class_weights,
)
from convtrain.training.resolve import resolve
from convtrain.training.run_start import announce, record_run
from convtrain.training.warm_start import input_size, warm_start


@dataclass
class Job:
    config: TrainConfig  # resolved: no 'auto' left, out names the run folder
    device: torch.device
    run: RunDir
    data: ImageData
    model: nn.Module  # the bare network: its state_dict is what checkpoints hold
    net: nn.Module  # what the loop calls: the model, maybe wrapped by DDP and/or torch.compile
    criterion: nn.Module
    train_loader: Any
    val_loader: Any
    test_loader: Any
    state: TrainState  # what the loop steps and last.pt holds: model, optimizer, schedule, scaler, EMA
    writer: Any = None  # TensorBoard SummaryWriter on rank 0
    timings: Timings = field(default_factory=Timings)
    freezer: Freezer | None = None  # --freeze-epochs: which parameters learn in each epoch

    def train_mode(self, epoch: int) -> None:
        """The network in training mode for `epoch` (from 0); the backbone frozen for --freeze-epochs."""
        if self.freezer is None:
            self.net.train()
            return
        if epoch == self.freezer.epochs:
            self.log(f"epoch {epoch + 1}: backbone unfrozen, every layer trains")
        elif epoch < self.freezer.epochs:
            self.log(f"epoch {epoch + 1}: backbone frozen, only the head trains")
        self.freezer.train_mode(self.net, epoch)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def log(self, message: str) -> None:
        if distributed.is_main():
            print(message, flush=True)

    def log_epoch(self, row: dict[str, Any], epochs: int, improved: bool) -> None:
        val = (
            f"val loss {row['val_loss']:.4f} acc {100 * row['val_acc']:.2f}%"
            if row["val_loss"] == row["val_loss"]
            else "no val"
        )
        self.log(
            f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:.2f}%  "
            f"{val}  lr {row['lr']:.3g}  {row['seconds']:.1f}s ({row['images_per_second']:.0f} img/s)"
            + ("  *" if improved else "")
        )
        if self.writer is not None:
            for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_second"):
                self.writer.add_scalar(key.replace("_", "/", 1), row[key], row["epoch"])
            self.writer.flush()

    def progress(self, total: int, epoch: int) -> Progress:
        enabled = distributed.is_main() and not self.config.quiet
        return Progress(total, f"epoch {epoch + 1}/{self.config.epochs}", enabled, self.config.log_every)

    def eval_model(self) -> nn.Module:
        """The network to measure: the model, or a copy holding the EMA's weights with --ema."""
        if self.state.ema is None:
            return self.model
        averaged = copy.deepcopy(self.model)
        averaged.load_state_dict(self.state.ema.state_dict())
        return averaged

    def current_weights(self) -> dict[str, torch.Tensor]:
        """The weights as they are now: the averaged ones with EMA (what last.pt's load_model returns)."""
        return self.state.ema.state_dict() if self.state.ema else self.model.state_dict()

    def make_pictures(self, scored: Scored | None = None) -> None:
        """The run's pictures and report.html; `scored`, the final test pass's logits, spares the
        report a second pass over the test split."""

        make_run_pictures(self.run, scored=scored)

    def close(self) -> None:
        """Flush TensorBoard and give the run folder up (also after an error or Ctrl-C)."""
        if self.writer is not None:
            with contextlib.suppress(OSError):  # a full disk: the run's own error says so, events are extra
                self.writer.close()
            self.writer = None
        self.run.release()


def prepare_job(
    config: TrainConfig,
    record: bool = True,
    timings: Timings | None = None,
    device: torch.device | None = None,
) -> Job:
    """Build a training job from a config, which is never changed: what 'auto' resolves to, the run
    folder and the batch size go into a new config on the Job. With record=False (lr-find) no run
    folder is claimed or written. `device`: choose_device(config), when the caller chose it already."""
    started = time.perf_counter()
    device = device or choose_device(config)
    check_precision(config.precision, device)  # an impossible precision fails before any work
    distributed.start(device)
    timings = timings or Timings()
    run = _claim_run(config) if record else RunDir(config.out or ".")
    try:
        job = _build(config.replace(out=str(run.path)), run, device, record, timings)
    except BaseException:
        run.abandon()
        raise
    # what is left of the set-up: claiming the folder, loaders, TensorBoard, config.yaml and model.json
    elapsed = time.perf_counter() - started
    timings.add("setup", elapsed - timings.seconds["data"] - timings.seconds["model"])
    return job


def choose_device(config: TrainConfig) -> torch.device:
    """The one place a run's device is chosen: the config's; under DDP on GPUs, this process's own GPU."""
    _, local_rank, world_size = distributed.world()
    device = pick_device(config.device)
    if world_size > 1 and device.type == "cuda":
        device = distributed.cuda_device_of(local_rank)  # refused in one line if this machine lacks it
    return device


def _claim_run(config: TrainConfig) -> RunDir:
    """Rank 0 claims the folder (exclusively; see runs/lock.py) and tells the other ranks its name."""
    name, error, failure = "", "", None
    if distributed.is_main():
        run = RunDir(config.resume) if config.resume else RunDir.new(config.out, config.dataset, config.model)
        try:
            note = run.claim(resume=bool(config.resume))
            if note:
                print(note, flush=True)
            name = str(run.path)
        except ConvtrainError as refused:
            error, failure = str(refused), refused
    error, name = distributed.broadcast_text(error), distributed.broadcast_text(name)
    if error:  # every rank stops with the same one-line error
        raise failure or ConfigError(error)
    return run if distributed.is_main() else RunDir(name)


def _build(config: TrainConfig, run: RunDir, device: torch.device, record: bool, timings: Timings) -> Job:
    """The set-up as a list of steps; `config` comes in as given and leaves resolved (training/resolve.py)."""
    seed_everything(config.seed)
    started = time.perf_counter()
    # the image size, chosen once: a fixed or library input size (the data is read at it)
    config, size_note = library_size(input_size(config))
    data, notes = _load(config, run, record)
    notes = [size_note, *notes]
    train_split, val_split, note = _split(data, config, run, record)
    config, chosen = resolve(config, device, data, len(train_split))
    notes.append(_chosen_on_test(config))
    timings.add("data", time.perf_counter() - started)

    model_started = time.perf_counter()
    model, data, weights_origin = _model(config, data, train_split, run)
    model, channels_last = network_to_device(model, config, device)
    model, net = _wrap(model, config, device)
    torch.manual_seed(config.seed + distributed.world()[0])  # distinct, reproducible dropout per rank

    train_loader, val_loader, test_loader = _loaders(
        config, data, train_split, val_split, device, channels_last
    )
    criterion = loss_function(config, data, train_split.labels, device)
    state = TrainState(
        model, *optimization(model, config, device, len(train_loader)), config=config.to_dict()
    )
    timings.add("model", time.perf_counter() - model_started)
    writer = None
    if record and distributed.is_main():
        _check_room(config, run, model)
        writer = record_run(config, run, data, weights_origin)
        announce(
            config=config,
            device=device,
            channels_last=channels_last,
            data=data,
            train_split=train_split,
            val_split=val_split,
            run=run,
            chosen=chosen,
            notes=[*notes, note],
            started=started,
        )
    freezer = Freezer(model, config.freeze_epochs, config.train_bn) if config.freeze_epochs else None
    return Job(
        config=config,
        device=device,
        run=run,
        data=data,
        model=model,
        net=net,
        criterion=criterion,
        train_loader=train_loader,
        val_loader=val_loader,
        test_loader=test_loader,
        state=state,
        writer=writer,
        timings=timings,
        freezer=freezer,
    )


# ----- the builders every trainer uses: a run, lr-find and the data check's fold models -----


def fresh_network(config: TrainConfig, data: ImageData, sample: torch.Tensor | None) -> nn.Module:
    """The zoo network for the data, initialised (--init), and fitted to `sample` (normalised
    training images, (N, C, H, W)) where it has layers set from the data (whitening); None leaves
    that to the caller (a warm start brings its own)."""
    model = build_model(config.model, data.channels, data.num_classes, data.image_size)
    init_weights(model, config.init)
    if sample is not None and isinstance(model, FitsToData):
        model.fit_to_data(sample)
    return model


def network_to_device(model: nn.Module, config: TrainConfig, device: torch.device) -> tuple[nn.Module, bool]:
    """(model on the device, whether it and its batches are channels_last: --channels-last auto)."""
    channels_last = use_channels_last(config.channels_last, device, config.precision)
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    return model, channels_last


def optimization(
    model: nn.Module, config: TrainConfig, device: torch.device, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, Any, torch.amp.GradScaler, WeightAverage | None]:
    """(optimizer, schedule, gradient scaler, EMA) for a resolved config: the scaler acts for fp16
    only, and the EMA (a Lookahead with --lookahead) is None without --ema."""
    optimizer = build_optimizer(model, config, device)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    ema = None
    if config.ema and config.lookahead:
        ema = Lookahead(model, config.ema, config.epochs * steps_per_epoch)
    elif config.ema:
        ema = WeightAverage(model, config.ema)
    return optimizer, scheduler, grad_scaler(config.precision, device), ema


def loss_function(
    config: TrainConfig, data: ImageData, labels: torch.Tensor, device: torch.device
) -> nn.Module:
    """Cross-entropy with --label-smoothing, weighted by inverse class frequency of `labels` with
    --class-weights balanced."""
    weight = (
        class_weights(labels, data.num_classes).to(device) if config.class_weights == "balanced" else None
    )
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


def _check_room(config: TrainConfig, run: RunDir, model: nn.Module) -> None:
    """A run whose checkpoints and pictures cannot fit on its disk is refused before its first epoch,
    not when epoch 9 of 10 fails to save. last.pt holds the weights, the optimizer's state (SGD's
    momentum buffer, Adam's two moments: made at the first step, so counted here) and the EMA."""
    weights = checkpoint_bytes(model.state_dict())
    slots = 2 if config.optimizer in ("adam", "adamw") else int(bool(config.momentum))
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    last = weights * (2 if config.ema else 1) + slots * trainable
    run.check_room(last, weights, config.plots, resumed=bool(config.resume))


def _load(config: TrainConfig, run: RunDir, record: bool) -> tuple[ImageData, list[str]]:
    """The dataset as the run sees it, and notes for the first line: read (or kept) at the network's
    input size when it has one, images smaller than the model takes upscaled, normalisation off if
    asked, listed images excluded."""
    data = load_data(config)  # from disk, or kept from an earlier run (data/memory_cache.py)
    data, upscale_note = fit_to_model(data, config)  # a new ImageData: the loaded one may be kept
    if not config.normalize:  # pixels scaled to 0-1 only; the model card records the same
        data = dataclasses.replace(data, mean=(0.0,) * data.channels, std=(1.0,) * data.channels)
    if config.exclude:  # a new ImageData: the loaded one may be kept for other runs (data/memory_cache.py)
        data, excluded = exclude_training_images(data, config.exclude)
        if record and distributed.is_main():
            run.write_excluded(excluded)
            print(f"excluded {excluded['count']} training images listed in {config.exclude}", flush=True)
    return data, [upscale_note]


def _model(
    config: TrainConfig, data: ImageData, train_split: Split, run: RunDir
) -> tuple[nn.Module, ImageData, dict]:
    """The network, initialised, warm-started (--pretrained/--init-from bring their mean/std too) and
    fitted to the data where it has layers set from it (whitening)."""
    model = fresh_network(config, data, None)
    data, weights_origin = warm_start(model, data, config, run)
    if isinstance(model, FitsToData) and not weights_origin:
        model.fit_to_data(_normalised_sample(train_split, data))
    return model, data, weights_origin


def _wrap(model: nn.Module, config: TrainConfig, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """(model, net): the bare network, and what the loop calls (DDP and/or torch.compile around it)."""
    net = model
    if distributed.world()[2] > 1:
        if config.sync_bn:
            model = net = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.freeze_epochs > 0,  # frozen parameters get no gradient
        )
    if config.compile:
        net = torch.compile(net)
    return model, net


def _loaders(
    config: TrainConfig,
    data: ImageData,
    train_split: Split,
    val_split: Split,
    device: torch.device,
    channels_last: bool,
):
    """(train, val, test) loaders; val is None without a validation split, test None with --no-test."""
    rank, _, world_size = distributed.world()
    if config.batch_size % world_size:
        raise ConfigError(f"batch_size {config.batch_size} must divide evenly over {world_size} processes")
    common = dict(
        data=data,
        batch_size=config.batch_size,
        device=device,
        seed=config.seed,
        loader=config.loader,
        workers=config.workers,
        rank=rank,
        world_size=world_size,
        channels_last=channels_last,
    )
    augment = parse_augment(config.augment)
    train_loader = make_loader(train_split, train=True, augment=augment, drop_last=config.drop_last, **common)
    if len(train_loader) == 0:
        raise ConfigError(
            f"batch_size {config.batch_size} is larger than the {len(train_split)} training images; lower --batch-size"
        )
    val_loader = make_loader(val_split, train=False, augment=None, **common) if len(val_split) else None
    test_loader = (  # --no-test: the test split stays unread (TrainConfig forbids epoch_eval test then)
        make_loader(data.test, train=False, augment=None, **common)
        if data.test is not None and config.test
        else None
    )
    if config.epoch_eval == "test":
        if test_loader is None:
            raise ConfigError(f"epoch_eval 'test' asked for, but {data.name} has no test split; use 'val'")
        val_loader = test_loader
    return train_loader, val_loader, test_loader


def _split(data: ImageData, config: TrainConfig, run: RunDir, record: bool) -> tuple[Split, Split, str]:
    """Train/validation splits (and a note): the dataset's own val/ folder if it has one, else a seeded
    stratified split. --limit-train keeps the first N training images, and a fractional validation
    split shrinks with it, so the two keep the ratio of a full run; split.json holds what was used."""
    limit = config.limit_train
    if data.val is not None:
        train = data.train.subset(torch.arange(min(limit, len(data.train)))) if limit else data.train
        return train, data.val, ""
    train_idx, val_idx = split_indices(data.train.labels, config.val_split, config.seed)
    note = ""
    if limit and limit < len(train_idx):
        train_idx = train_idx[:limit]
        if 0 < config.val_split < 1:
            val_kept = max(1, round(limit * config.val_split / (1 - config.val_split)))
            if val_kept < len(val_idx):
                note = (
                    f"--limit-train {limit}: validation cut to {val_kept} of {len(val_idx)} images, "
                    f"keeping the {config.val_split:g} share of a full run"
                )
                _, keep = split_indices(data.train.labels[val_idx], val_kept, config.seed)  # stratified
                val_idx = val_idx[keep]
    if record and distributed.is_main():
        run.write_split(train_idx, val_idx)
    return data.train.subset(train_idx), data.train.subset(val_idx), note


def _chosen_on_test(config: TrainConfig) -> str:
    """A note when best.pt, and so the final test figure, would be picked by the test split."""
    if config.epoch_eval != "test" or config.test_weights != "best":
        return ""
    return (
        "note: --epoch-eval test makes best.pt the epoch with the best test figure, so the final test "
        "figure is chosen on the test split; pass --test-weights last for one that is not"
    )


def _normalised_sample(split: Split, data: ImageData, count: int = 5000) -> torch.Tensor:
    """Up to `count` training images, normalised as the loader will give them: (N, C, H, W) float."""
    images = (  # a streamed split: the first files decoded, as the loader will decode them
        split.images[:count]
        if split.images is not None
        else decode_many(split.files[:count], data.channels, data.image_size)[0]
    )
    return normalize(images, data.mean, data.std)  # (N, C, H, W)

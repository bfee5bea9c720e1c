"""Out-of-sample predicted probabilities, what confident learning needs: K-fold cross-validation
for the train split, models trained on all of train for val and test.

The training split is cut into K stratified, seeded folds; for each fold a fresh network trains on
the other K-1 with a fast recipe (default: the one for the dataset's kind, FAMILY_RECIPES: mnist-fast's
fastnet-tiny for 3 epochs on digits, cifar10-fast on photos) and predicts the held-out fold,
so every training image gets probabilities from a model that never saw it; val and test then get the
average of the K models' probabilities (`out_of_fold`). When train itself is not checked, val and
test are scored by networks trained on the whole train split (`score_held_out`): none of them saw
a val or test image, and one or two trainings cost less than K.

The models train without label smoothing and without mixup/cutmix (both cap or blend the
confidence the check reads), and their softmax is read as it is: no temperature, no calibration.
Otherwise they follow the recipe: its weight average (--ema) is the model that scores, and with its
test-time views (tta) the probabilities are those of the views' mean log-probabilities, as
`evaluate --tta` reads them.

This is a lean loop over tensors already in memory, built with the set-up's own builders
(training/setup.py: the network initialised and fitted to the data, channels_last, the optimizer,
schedule and scaler, the loss with class weights) and stepped by training's own `train_step`,
without run folders, checkpoints or pictures. One data
pipeline serves every model: each split is copied to the device once (`on_device`), and every
fold's training and scoring loader serves its part of that copy by index (`rows`), copying nothing.

    python -c "from convtrain.datacheck.crossval import fold_ids; import torch; print(fold_ids(torch.arange(10) % 2, 3, 0))"
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from convtrain.base.errors import ConfigError
from convtrain.config.recipes import load_recipe
from convtrain.config.train_config import TrainConfig, with_model_defaults
from convtrain.data.augment import parse_augment
from convtrain.data.dataset import ImageData, Split
from convtrain.data.loader import make_loader
from convtrain.data.pixels import normalize
from convtrain.evaluation.scoring import batch_logits, mirrors
from convtrain.system.runtime import (
    check_precision,
    pick_device,
    seed_everything,
    use_channels_last,
)
from convtrain.training.epochs_and_size import DEFAULT_EPOCHS, epochs_for
from convtrain.training.loop import train_step
from convtrain.training.resolve import auto_precision
from convtrain.training.setup import fresh_network, loss_function, network_to_device, optimization

DEFAULT_RECIPE = "mnist-fast"
# Without --recipe, the check trains mnist-fast's network and rules for 3 epochs with 2-px shifts
# (99.51% on MNIST test, against 99.31% for one epoch): chosen on planted test flips, where it ranked
# 196 of 200 flips among the first 200 against 194 (BENCHMARKS.md, datacheck_planted testsplit).
CHECK_OPTIONS = {"epochs": 3, "augment": "translate:2"}
# ...for digits and other gray images. Photos and clothes get the recipe made for their kind, as it is
# (less label smoothing and mixing). For photos, cifar10-fast's 10 epochs, chosen on planted CIFAR-10
# test flips: 159 of 200 among the first 200 against 141 for cifar10-cpu's 8 epochs, 149 for its 16
# and 151 for cifar10-fast's 5 (89.2% on the test split against 85.2-87.2%; BENCHMARKS.md, "Data
# check: label errors on CIFAR-10 test"). On a CPU without bf16 units its model takes about 73
# minutes; --recipe cifar10-cpu takes 10.
FAMILY_RECIPES = {"digits": DEFAULT_RECIPE, "clothes": "fashion-mnist-fast", "photos": "cifar10-fast"}
CLOTHES = ("fashion-mnist",)  # registered datasets of clothes; a user's own gray images count as digits
EVAL_BATCH = 1024
PROGRESS_SECONDS = 60.0  # the least time between two "epoch" lines of a fold or scoring model
SCORING_MODELS = 1  # models trained on all of train that score val/test (benchmarks/datacheck_planted)
MIXING = ("mixup", "cutmix")  # augment items that train on blended targets
# Options of a recipe that concern the dataset or the run folder, not how a fold model trains.
NOT_TRAINING = ("dataset", "data_dir", "val_split", "out", "resume", "limit_train", "epoch_eval")


@dataclass
class FoldResult:
    probs: torch.Tensor  # (N, K) out-of-fold probabilities of the training split
    others: dict[str, torch.Tensor]  # split -> (M, K) mean of the fold models' probabilities
    folds: torch.Tensor  # (N,) the fold of each training image
    accuracy: float  # out-of-fold accuracy against the given labels
    seconds: float
    config: TrainConfig  # what the fold models trained with


@dataclass
class HeldOutScores:
    """Probabilities of splits that no model saw, from models trained on the whole train split."""

    others: dict[str, torch.Tensor]  # split -> (M, K) mean of the models' probabilities
    models: int
    train_accuracy: float  # the last model's accuracy on its own training images (a sanity check)
    seconds: float
    config: TrainConfig


def dataset_family(name: str, channels: int) -> tuple[str, str]:
    """(family, why) of a dataset, for the scoring models' recipe: photos (3 channels), clothes
    (Fashion-MNIST) or digits (any other gray images)."""
    if channels == 3:
        return "photos", "3-channel images"
    if name in CLOTHES:
        return "clothes", name
    return "digits", "gray images"


def fold_config(
    recipe: str | None, model: str | None, options: dict[str, Any] | None, family: str = "digits"
) -> TrainConfig:
    """The TrainConfig of the fold (and scoring) models: the recipe (default: the family's,
    FAMILY_RECIPES, with CHECK_OPTIONS for digits) without label smoothing or mixup/cutmix, then
    `model`, then any other options (which may set them back on purpose)."""
    chosen = recipe or FAMILY_RECIPES[family]
    values = {k: v for k, v in load_recipe(chosen).items() if k not in NOT_TRAINING}
    if recipe is None and family == "digits":
        values.update(CHECK_OPTIONS)
    # Label smoothing caps every probability below 1 - smoothing * (K-1)/K, and mixup/cutmix train on
    # blended targets: tricks for accuracy that blunt exactly the confidence confident learning
    # reads, so the models train without them unless the caller asks for them in `options`.
    values["label_smoothing"] = 0.0
    values["augment"] = without_mixing(values.get("augment") or "none")
    if model:
        values["model"] = model
    values.update(options or {})
    values["recipe"] = chosen
    config = TrainConfig.from_dict(values, source=f"recipe {chosen}")
    # Filling the model's own options looks the model up: a typo is refused now, not after loading.
    # A model's own label smoothing (fastnet's 0.2) only fills an unset value: 0 above stays.
    return with_model_defaults(config)


def epochs_for_set(config: TrainConfig, train_images: int) -> tuple[TrainConfig, str]:
    """The recipe's epochs, or more where the models' training set is small: the small-data rule's
    (epochs_for: at least MIN_STEPS steps and SEEN images seen), since a recipe's epochs were chosen
    for its own dataset (cifar10-fast's 10 epochs of 50,000 photos are 10 steps on a folder of 500).
    Returns the config and the words for the check's first line ('' when unchanged)."""
    recipe_epochs = config.epochs or DEFAULT_EPOCHS
    epochs = max(recipe_epochs, epochs_for(train_images, config.batch_size, drop_last=True))
    if epochs == recipe_epochs:
        return config, ""
    words = f"not the recipe's {recipe_epochs}, for {train_images} training images (--epochs to choose)"
    return config.replace(epochs=epochs), words


def scoring_words(config: TrainConfig) -> str:
    """What the scoring models do beyond plain training, for the check's first labels line."""
    words = [f"weights averaged (ema {config.ema:g})"] if config.ema else []
    return ", ".join(words + (["test-time views"] if config.tta else []))


def without_mixing(augment: str) -> str:
    """The augment spec without its mixup/cutmix items ('none' when nothing is left)."""
    kept = [item for item in parse_augment(augment).spec.split(",") if item.split(":")[0] not in MIXING]
    return ",".join(kept) if kept and kept != ["none"] else "none"


def fold_ids(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """(N,) fold numbers 0..folds-1, stratified: each class is dealt round-robin in a seeded order."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.empty_like(labels)
    for c in labels.unique():
        members = (labels == c).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        ids[members] = torch.arange(len(members)) % folds
    return ids


def _on_device_config(config: TrainConfig, device: str) -> tuple[TrainConfig, torch.device]:
    """The device the models train on, and the config with 'auto' precision resolved as training
    resolves it; a precision the device cannot run is refused before any training."""
    where = pick_device(device)
    config = config.replace(precision=auto_precision(config, where)[0])
    check_precision(config.precision, where)
    return config, where


def on_device(split: Split, device: torch.device) -> Split:
    """The split with its images and labels on the device, copied once for every model of the check."""
    images = split.images.to(device) if split.images is not None else None
    return Split(labels=split.labels.to(device), images=images, files=split.files)


def _train_fold(
    split: Split,
    rows: torch.Tensor,
    data: ImageData,
    config: TrainConfig,
    device: torch.device,
    seed: int,
    on_epoch: Callable[[int, int], None] | None = None,
) -> nn.Module:
    """A fresh network trained on the images of `split` at positions `rows` (device tensors), built
    with the set-up's own builders (training/setup.py) and stepped by training's own train_step;
    on_epoch(done, epochs) is called after each epoch."""
    seed_everything(seed)
    sample = normalize(split.images[rows[:5000]].cpu(), data.mean, data.std)  # fitted on the CPU
    model, channels_last = network_to_device(fresh_network(config, data, sample), config, device)
    loader = make_loader(
        split,
        data,
        rows=rows,
        batch_size=config.batch_size,
        device=device,
        train=True,
        augment=parse_augment(config.augment),
        seed=seed,
        channels_last=channels_last,
        drop_last=config.drop_last,
    )
    config = config.replace(epochs=config.epochs or DEFAULT_EPOCHS)  # folds are small: no auto epochs
    optimizer, scheduler, scaler, average = optimization(model, config, device, len(loader))
    criterion = loss_function(config, data, split.labels[rows], device)
    model.train()
    steps = 0
    for epoch in range(config.epochs):
        loader.set_epoch(epoch)
        for x, y in loader:  # x (B, C, H, W) normalised on the device
            train_step(model, criterion, optimizer, scaler, x, y, config.precision, config.grad_clip)
            scheduler.step()
            steps += 1
            if average is not None:
                average.update(model, steps)
        if average is not None:
            average.end_epoch(model)
        if on_epoch is not None:
            on_epoch(epoch + 1, config.epochs)
    if average is not None:  # the recipe's weight average (--ema) is the model that scores, as in training
        model.load_state_dict(average.state_dict())
    return model.eval()


def _epoch_lines(log: Callable[[str], None], model: str, started: float) -> Callable[[int, int], None]:
    """on_epoch for _train_fold: a line after an epoch once PROGRESS_SECONDS have passed since the last
    line, so a long training (photos: minutes an epoch on a CPU) is not silent and a short one is quiet."""
    last = time.perf_counter()

    def on_epoch(done: int, epochs: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if done < epochs and now - last >= PROGRESS_SECONDS:
            log(f"labels: {model}, epoch {done}/{epochs} [{now - started:.0f}s]")
            last = now

    return on_epoch


@torch.inference_mode()
def predict_probs(
    model: nn.Module,
    split: Split,
    data: ImageData,
    config: TrainConfig,
    device: torch.device,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax probabilities (N, K) of every image of the split (or of those at `rows`), in order, on
    the CPU. With the recipe's test-time views (config.tta: the image, its mirror if the model trained
    on flips, two 1-px shifts), the softmax of the views' mean log-probabilities, as evaluate --tta."""
    channels_last = use_channels_last(config.channels_last, device, config.precision)
    loader = make_loader(split, data, EVAL_BATCH, device, train=False, channels_last=channels_last, rows=rows)
    mirror = mirrors(config.augment)
    out = []
    for x, _ in loader:
        out.append(batch_logits(model, x, config.precision, config.tta, mirror).softmax(1).cpu())  # (B, K)
    return torch.cat(out) if out else torch.empty((0, data.num_classes))


def out_of_fold(
    data: ImageData,
    train: Split,
    others: dict[str, Split],
    folds: int = 5,
    config: TrainConfig | None = None,
    seed: int = 0,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> FoldResult:
    """K-fold out-of-fold probabilities for `train`, and the fold models' mean for each of `others`."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds must be a whole number of at least 2, got {folds!r}")
    config = config or fold_config(None, None, None)
    smallest = int(torch.bincount(train.labels, minlength=data.num_classes).min())
    if len(train) < 2 * folds:
        raise ConfigError(f"{len(train)} training images cannot be cut into {folds} folds; use fewer --folds")
    config, where = _on_device_config(config, device)
    ids = fold_ids(train.labels, folds, seed)
    labels = train.labels  # on the CPU, beside the probabilities
    train, others = on_device(train, where), {name: on_device(split, where) for name, split in others.items()}
    probs = torch.zeros((len(train), data.num_classes))
    sums = {name: torch.zeros((len(split), data.num_classes)) for name, split in others.items()}
    started = time.perf_counter()
    if smallest < folds:
        log(f"labels: a class has only {smallest} training images, fewer than {folds} folds")
    for k in range(folds):
        held = (ids == k).nonzero().flatten()
        rows = (ids != k).nonzero().flatten().to(where)
        model = _train_fold(
            train, rows, data, config, where, seed + k, _epoch_lines(log, f"fold {k + 1}/{folds}", started)
        )
        probs[held] = predict_probs(model, train, data, config, where, rows=held.to(where))
        for name, split in others.items():
            sums[name] += predict_probs(model, split, data, config, where)
        accuracy = (probs[held].argmax(1) == labels[held]).float().mean().item()
        log(
            f"labels: fold {k + 1}/{folds} trained on {len(train) - len(held)} images, "
            f"{100 * accuracy:.2f}% on its {len(held)} held out [{time.perf_counter() - started:.0f}s]"
        )
    accuracy = (probs.argmax(1) == labels).float().mean().item()
    means = {name: total / folds for name, total in sums.items()}
    return FoldResult(probs, means, ids, accuracy, time.perf_counter() - started, config)


def score_held_out(
    data: ImageData,
    train: Split,
    others: dict[str, Split],
    models: int = 1,
    config: TrainConfig | None = None,
    seed: int = 0,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> HeldOutScores:
    """Train `models` networks (seeds seed, seed+1, ...) on the whole of `train` and average their
    probabilities on each of `others`: out-of-sample for val and test, at the cost of `models`
    trainings instead of K folds."""
    if isinstance(models, bool) or not isinstance(models, int) or models < 1:
        raise ConfigError(f"models must be a whole number of at least 1, got {models!r}")
    if len(train) == 0:
        raise ConfigError("the train split is empty: nothing to train the scoring models on")
    config = config or fold_config(None, None, None)
    config, where = _on_device_config(config, device)
    train, others = on_device(train, where), {name: on_device(split, where) for name, split in others.items()}
    every = torch.arange(len(train), device=where)
    sample = every[:5000]
    sums = {name: torch.zeros((len(split), data.num_classes)) for name, split in others.items()}
    started = time.perf_counter()
    fitted = 0.0
    for m in range(models):
        lines = _epoch_lines(log, f"scoring model {m + 1}/{models}", started)
        model = _train_fold(train, every, data, config, where, seed + m, lines)
        for name, split in others.items():
            sums[name] += predict_probs(model, split, data, config, where)
        predicted = predict_probs(model, train, data, config, where, rows=sample).argmax(1)
        fitted = (predicted == train.labels[sample].cpu()).float().mean().item()
        log(
            f"labels: scoring model {m + 1}/{models} trained on all {len(train)} training images "
            f"({100 * fitted:.2f}% on the first {len(sample)} of them) [{time.perf_counter() - started:.0f}s]"
        )
    means = {name: total / models for name, total in sums.items()}
    return HeldOutScores(means, models, fitted, time.perf_counter() - started, config)

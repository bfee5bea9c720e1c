"""Scoring: run a model over a loader, and measure a finished run on one of its splits.

One naming rule: a `*_logits` function returns outputs at its level (`batch_logits` of one batch,
with test-time views; `loader_logits`, `split_logits`, `run_logits` for a run folder's model on a
split), a `score_*` function or `evaluate` returns metrics. `loader_sums` returns sums (loss, confusion) that can be added across processes (metrics.py
turns them into numbers), and `score_loader` adds them: the one way training scores a split,
every epoch and at the end. `loader_logits` keeps every output. `evaluate` scores a run folder's
model on its test split (or, without one, its validation split) and writes evaluation_<split>.json
beside it.

    convtrain evaluate runs/mnist-lenet5 --json
    python -c "import convtrain; print(convtrain.evaluate('runs/mnist-lenet5')['top1'])"
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convtrain.base.errors import CheckpointError, ConfigError, DataError
from convtrain.data.augment import parse_augment
from convtrain.data.dataset import ImageData, Split
from convtrain.data.dataset_registry import load_dataset
from convtrain.data.loader import make_loader
from convtrain.evaluation.explain import check_method
from convtrain.evaluation.explain.pictures import write_evaluation_galleries
from convtrain.evaluation.metrics import metrics_from_logits, metrics_from_sums
from convtrain.evaluation.subset import read_subset_file, subset_indices
from convtrain.runs.run_dir import RunDir
from convtrain.system import distributed
from convtrain.system.runtime import autocast, pick_device

SPLITS = ("test", "val")


def tta_views(x: torch.Tensor, mirror: bool = True) -> list[torch.Tensor]:
    """The image, its mirror (if `mirror`), and the two shifted by one pixel (test-time augmentation)."""
    shifted_right = F.pad(x, (1, 0, 0, 0), mode="replicate")[..., :, :-1]  # (B, C, H, W)
    shifted_down = F.pad(x, (0, 0, 1, 0), mode="replicate")[..., :-1, :]
    return [x, *([torch.flip(x, dims=[3])] if mirror else []), shifted_right, shifted_down]


def mirrors(augment: str | None) -> bool:
    """Whether test-time augmentation may show a model mirror images: only if it trained on flips.
    A digit or a letter mirrored is another shape, and a model that never saw one is misled by it."""

    parsed = parse_augment(augment or "none")
    return bool(parsed.flip or parsed.altflip)


def batch_logits(
    model: nn.Module, x: torch.Tensor, precision: str, tta: bool = False, mirror: bool = True
) -> torch.Tensor:
    with autocast(precision, x.device):
        if not tta:
            return model(x).float()  # (B, K)
        views = tta_views(x, mirror)
        logits = model(torch.cat(views)).float()  # (V*B, K)
        return logits.view(len(views), len(x), -1).log_softmax(-1).mean(0)


@torch.inference_mode()
def loader_sums(
    model: nn.Module,
    loader,
    num_classes: int,
    precision: str = "fp32",
    tta: bool = False,
    mirror: bool = True,
    keep: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, torch.Tensor]:
    """Summed loss, correct predictions, image count and the confusion matrix (true x predicted).
    A `keep` list also receives each batch's (logits, labels) on the CPU, for the report."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    confusion = torch.zeros(num_classes * num_classes, device=device, dtype=torch.int64)
    for x, y in loader:
        logits = batch_logits(model, x, precision, tta, mirror)
        if keep is not None:
            keep.append((logits.cpu(), y.cpu()))
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        cells = y * num_classes + logits.argmax(1)  # (B,) flat (true, predicted) index
        # index_add_ into the fixed-size matrix: bincount would read min and max back (two syncs)
        confusion.index_add_(0, cells, torch.ones_like(cells))
    model.train(was_training)
    confusion = confusion.view(num_classes, num_classes)
    return {"loss_sum": loss_sum, "confusion": confusion}


def score_loader(
    model: nn.Module,
    loader,
    num_classes: int,
    precision: str,
    tta: bool = False,
    mirror: bool = True,
    keep: list | None = None,
) -> dict[str, float]:
    """Score a split the way training does, every epoch and at the end: each rank sums its shard
    (loss, confusion matrix), the sums are added across ranks, and metrics are made from the totals."""
    sums = loader_sums(model, loader, num_classes, precision, tta, mirror, keep)
    for tensor in sums.values():
        distributed.sum_across_ranks(tensor)
    return metrics_from_sums(sums)


@torch.inference_mode()
def loader_logits(
    model: nn.Module, loader, precision: str = "fp32", tta: bool = False, mirror: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every logit and label of a loader, in loader order, on the CPU: (N, K) and (N,)."""
    model.eval()
    outputs, labels = [], []
    for x, y in loader:
        outputs.append(batch_logits(model, x, precision, tta, mirror).cpu())
        labels.append(y.cpu())
    return torch.cat(outputs), torch.cat(labels)


@dataclass
class Scored:
    """A run's model applied to one split: what the metrics, pictures and report are made from."""

    run: RunDir
    split_name: str
    checkpoint: str
    data: ImageData  # mean/std replaced by the model card's, so it preprocesses exactly like training
    split: Split
    logits: torch.Tensor  # (N, K) on the CPU, in split order
    labels: torch.Tensor  # (N,)
    indices: torch.Tensor | None = None  # (N,) the split's image indices when only a subset was scored


def load_run_data(run: RunDir, data_dir: str | None = None) -> ImageData:
    """The run's dataset, converted to the card's image size and channels and normalised with its mean/std."""

    card, config = run.card, run.read_config()
    if "dataset" not in config:
        raise CheckpointError(f"{run.config_path} names no dataset; it is not a convtrain run folder")
    data = load_dataset(
        config["dataset"],
        data_dir or config.get("data_dir"),
        card["image_size"],
        card["in_channels"],
        download=bool(config.get("download", True)),
        in_memory=True,
        csv_columns=config.get("csv_columns"),
    )
    if list(data.classes) != list(card["classes"]):
        raise CheckpointError(
            f"dataset {config['dataset']} has classes {_short(data.classes)} but the run was trained on "
            f"{_short(card['classes'])}; point --data-dir at the data the run was trained on"
        )
    return dataclasses.replace(data, mean=tuple(card["mean"]), std=tuple(card["std"]))


def measured_split(data: ImageData, run: RunDir | None = None) -> str:
    """The split a run is measured on when none is named: test if the dataset has one and the run did
    not leave it unread (--no-test), else val."""
    unread = run is not None and not run.config.test
    return "test" if data.test is not None and len(data.test) and not unread else "val"


def pick_split(run: RunDir, data: ImageData, split: str | None) -> Split:
    """The test split, or the validation images the run held out (its val/ folder or split.json)."""
    split = split or measured_split(data, run)
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "test":
        if data.test is None:
            raise DataError(f"dataset {data.name} has no test split; use --split val")
        chosen = data.test
    elif data.val is not None:
        chosen = data.val
    else:
        _, val_idx = run.read_split()
        if len(val_idx) and (int(val_idx.max()) >= len(data.train) or int(val_idx.min()) < 0):
            raise CheckpointError(f"{run.split_path} indexes past the {len(data.train)} training images")
        chosen = data.train.subset(val_idx)
    if len(chosen) == 0:
        raise DataError(f"the {split} split of {data.name} has no images; use the other split")
    return chosen


def split_logits(
    model: torch.nn.Module,
    data: ImageData,
    split: Split,
    tta: bool = False,
    batch_size: int = 512,
    mirror: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) and labels (N,) of a split, in split order, normalised with data.mean/std."""

    device = next(model.parameters()).device
    loader = make_loader(split, data, batch_size, device, train=False, loader="device", workers=0)
    # fp32 whatever the training precision: evaluation is cheap and its numbers should not drift.
    return loader_logits(model, loader, precision="fp32", tta=tta, mirror=mirror)


def run_logits(
    run: str | Path | RunDir,
    split: str | None = None,
    tta: bool = False,
    which: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int = 512,
    subset: str | Path | None = None,
) -> Scored:
    """Run the model of a run folder over one split (None: test, else val) and keep every logit.
    With tta, mirror images are among the views only if the run trained on flips (`mirrors`).
    `subset` (a .npy mask or index list, `read_subset_file`) scores only those images of the split."""
    run = RunDir.of(run)
    picked = None if subset is None else read_subset_file(subset)  # a bad file fails before the data loads
    which = which or run.tested_weights()
    model, _ = run.load_model(which, pick_device(device))
    data = load_run_data(run, data_dir)
    split = split or measured_split(data, run)
    chosen = pick_split(run, data, split)
    indices = None if picked is None else torch.from_numpy(subset_indices(picked, len(chosen), subset))
    if indices is not None:
        chosen = chosen.subset(indices)
    logits, labels = split_logits(model, data, chosen, tta, batch_size, mirrors(run.config.augment))
    checkpoint = which if which.endswith(".pt") else f"{which}.pt"
    return Scored(run, split, checkpoint, data, chosen, logits, labels, indices)


def evaluate(
    run: str | Path | RunDir,
    split: str | None = None,
    tta: bool = False,
    which: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int = 512,
    write: bool = True,
    explain: str | None = None,
    layer: str | None = None,
    subset: str | Path | None = None,
) -> dict[str, Any]:
    """Every metric of a run on a split: the one it was measured on by default (test, else val).
    With write=True also saved in the run folder (evaluation_<split>.json and two CSV files).
    explain ("gradcam", "saliency" or "ig") adds heat-map galleries of the highest losses and of
    right predictions per class (RunDir.explanation_paths), with Grad-CAM on `layer` if given.
    subset (a .npy file, `read_subset_file`) scores only the images it picks; the files are then named
    evaluation_<split>-<file stem>.json, and top-loss indices are still the split's."""
    if explain is not None:
        check_method(explain, layer)  # a typo or a missing Captum fails before the split is scored
        if subset is not None:
            raise ConfigError("--explain draws galleries of the whole split; run it without --subset")
    scored = run_logits(run, split, tta, which, data_dir, device, batch_size, subset)
    result = {
        "run": str(scored.run.path),
        "split": scored.split_name,
        "checkpoint": scored.checkpoint,
        "tta": tta,
    }
    if subset is not None:
        result["subset"] = str(subset)
    result.update(metrics_from_logits(scored.logits, scored.labels, list(scored.run.card["classes"])))
    if scored.indices is not None:
        for item in result["top_losses"]:
            item["index"] = int(scored.indices[item["index"]])
    if write:
        name = scored.split_name if subset is None else f"{scored.split_name}-{Path(subset).stem}"
        result["files"] = [str(p) for p in scored.run.write_evaluation(result, name)]
    if explain is not None:
        model, _ = scored.run.load_model(which, pick_device(device))
        written = write_evaluation_galleries(model, scored, result["top_losses"], explain, layer)
        result["files"] = result.get("files", []) + [str(p) for p in written]
    return result


def _short(names: list[str]) -> str:
    names = list(names)
    return str(names) if len(names) <= 6 else f"[{', '.join(names[:5])}, ... {len(names)} classes]"

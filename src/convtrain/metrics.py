"""Detailed evaluation of a trained run: where the model is right, where it fails, and how badly.

Reads only the run folder (config.yaml, model.json, best.pt, split.json) and the dataset it names.
Writes evaluation_<split>.json, per_class_<split>.csv and confusion_<split>.csv beside them.

    convtrain evaluate runs/mnist-lenet5 --split test --json
    python -c "import convtrain; print(convtrain.evaluate('runs/mnist-lenet5')['top1'])"
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from convtrain.checkpoint import load_model, tested_weights, write_text_atomic
from convtrain.config import read_yaml
from convtrain.data.dataset import ImageData, Split
from convtrain.errors import CheckpointError, ConfigError, DataError
from convtrain.evaluate import collect_logits
from convtrain.runfolder import write_json
from convtrain.runtime import pick_device

SPLITS = ("test", "val")


@dataclass
class Scored:
    """A run's model applied to one split: what the metrics, pictures and report are made from."""

    run_dir: Path
    split_name: str
    checkpoint: str
    card: dict[str, Any]
    config: dict[str, Any]
    data: ImageData  # mean/std replaced by the model card's, so it preprocesses exactly like training
    split: Split
    logits: torch.Tensor  # (N, K) on the CPU, in split order
    labels: torch.Tensor  # (N,)


# ----- the run's data -----


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved training options saved in the run folder (config.yaml) as a dict."""
    path = Path(run_dir) / "config.yaml"
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; pass the folder `convtrain train` wrote")
    if not path.is_file():
        raise CheckpointError(f"run folder {run_dir} has no config.yaml; it is not a complete convtrain run")
    return read_yaml(path)


def load_run_data(card: dict[str, Any], config: dict[str, Any], data_dir: str | None = None) -> ImageData:
    """The run's dataset, converted to the card's image size and channels and normalised with its mean/std."""
    from convtrain.data.registry import load_dataset

    if "dataset" not in config:
        raise CheckpointError("config.yaml of the run names no dataset; it is not a convtrain run folder")
    data = load_dataset(
        config["dataset"],
        data_dir or config.get("data_dir"),
        card["image_size"],
        card["in_channels"],
        download=bool(config.get("download", True)),
        in_memory=True,
    )
    if list(data.classes) != list(card["classes"]):
        raise CheckpointError(
            f"dataset {config['dataset']} has classes {_short(data.classes)} but the run was trained on "
            f"{_short(card['classes'])}; point --data-dir at the data the run was trained on"
        )
    return dataclasses.replace(data, mean=tuple(card["mean"]), std=tuple(card["std"]))


def pick_split(run_dir: str | Path, data: ImageData, split: str) -> Split:
    """The test split, or the validation images the run held out (its val/ folder or split.json)."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "test":
        if data.test is None:
            raise DataError(f"dataset {data.name} has no test split; use --split val")
        chosen = data.test
    elif data.val is not None:
        chosen = data.val
    else:
        from convtrain.data.split import load_split

        _, val_idx = load_split(Path(run_dir) / "split.json")
        if len(val_idx) and int(val_idx.max()) >= len(data.train):
            raise CheckpointError(
                f"split.json of {run_dir} indexes past the {len(data.train)} training images"
            )
        chosen = data.train.subset(val_idx)
    if len(chosen) == 0:
        raise DataError(f"the {split} split of {data.name} has no images; use the other split")
    return chosen


def split_logits(
    model: torch.nn.Module, data: ImageData, split: Split, tta: bool = False, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) and labels (N,) of a split, in split order, normalised with data.mean/std."""
    from convtrain.data.loader import make_loader

    device = next(model.parameters()).device
    loader = make_loader(split, data, batch_size, device, train=False, loader="device", workers=0)
    # fp32 whatever the training precision: evaluation is cheap and its numbers should not drift.
    return collect_logits(model, loader, precision="fp32", tta=tta)


def score_split(
    run_dir: str | Path,
    split: str = "test",
    tta: bool = False,
    which: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int = 512,
) -> Scored:
    """Run the model of a run folder over one split and keep every logit."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    target = pick_device(device)
    which = which or tested_weights(run_dir)
    model, card = load_model(run_dir, which, target)
    data = load_run_data(card, config, data_dir)
    chosen = pick_split(run_dir, data, split)
    logits, labels = split_logits(model, data, chosen, tta, batch_size)
    checkpoint = which if which.endswith(".pt") else f"{which}.pt"
    return Scored(run_dir, split, checkpoint, card, config, data, chosen, logits, labels)


# ----- the numbers -----


def metrics_from_logits(
    logits: torch.Tensor, labels: torch.Tensor, classes: list[str], top_losses: int = 16, pairs: int = 10
) -> dict[str, Any]:
    """Loss, top-1/top-5, per-class precision/recall/F1, confusion, most-confused pairs, top-loss images.

    Per-class accuracy is the share of that class's images predicted right (the same number as recall).
    Macro averages are over the classes present in the split.
    """
    num_classes = len(classes)
    logits, labels = logits.float().cpu(), labels.long().cpu()
    losses = F.cross_entropy(logits, labels, reduction="none")  # (N,)
    probs = logits.softmax(1)  # (N, K)
    predicted = probs.argmax(1)  # (N,)
    k = min(5, num_classes)
    in_top5 = (logits.topk(k, dim=1).indices == labels[:, None]).any(1)  # (N,)

    confusion = torch.bincount(labels * num_classes + predicted, minlength=num_classes**2).view(
        num_classes, -1
    )
    support = confusion.sum(1)  # (K,) images of each true class
    predicted_count = confusion.sum(0)  # (K,) images predicted as each class
    correct = confusion.diag()
    precision = correct / predicted_count.clamp(min=1)  # 0 for a class never predicted
    recall = correct / support.clamp(min=1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros(()))
    present = support > 0
    row_normalised = confusion / support.clamp(min=1)[:, None]

    per_class = [
        {
            "class": name,
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "accuracy": float(recall[c]),
            "support": int(support[c]),
            "predicted": int(predicted_count[c]),
        }
        for c, name in enumerate(classes)
    ]
    return {
        "images": len(labels),
        "loss": float(losses.mean()),
        "top1": float((predicted == labels).double().mean()),
        "top5": float(in_top5.double().mean()),
        "top5_k": k,
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "confusion_normalized": row_normalised.tolist(),
        "most_confused": _most_confused(confusion, support, classes, pairs),
        "top_losses": _top_losses(losses, probs, predicted, labels, classes, top_losses),
    }


def _most_confused(
    confusion: torch.Tensor, support: torch.Tensor, classes: list[str], count: int
) -> list[dict]:
    off = confusion.clone()
    off.fill_diagonal_(0)
    counts, order = off.flatten().sort(descending=True, stable=True)  # ties: lower class pair first
    out = []
    for n, i in zip(counts[:count].tolist(), order[:count].tolist(), strict=True):
        if n == 0:
            break
        true, pred = divmod(i, len(classes))
        out.append(
            {"true": classes[true], "predicted": classes[pred], "count": n, "share": n / int(support[true])}
        )
    return out


def _top_losses(losses, probs, predicted, labels, classes: list[str], count: int) -> list[dict]:
    order = losses.argsort(descending=True, stable=True)[:count]
    return [
        {
            "index": int(i),
            "true": classes[int(labels[i])],
            "predicted": classes[int(predicted[i])],
            "probability": float(probs[i, predicted[i]]),
            "true_probability": float(probs[i, labels[i]]),
            "loss": float(losses[i]),
        }
        for i in order
    ]


# ----- the command -----


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    tta: bool = False,
    which: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int = 512,
    write: bool = True,
) -> dict[str, Any]:
    """Every metric of a run on its test or validation split; with write=True also saved in the run folder."""
    scored = score_split(run_dir, split, tta, which, data_dir, device, batch_size)
    result = {"run": str(scored.run_dir), "split": split, "checkpoint": scored.checkpoint, "tta": tta}
    result.update(metrics_from_logits(scored.logits, scored.labels, list(scored.card["classes"])))
    if write:
        result["files"] = [str(p) for p in write_evaluation(scored.run_dir, result)]
    return result


def write_evaluation(run_dir: str | Path, result: dict[str, Any]) -> list[Path]:
    """evaluation_<split>.json, per_class_<split>.csv and confusion_<split>.csv in the run folder."""
    run_dir, split = Path(run_dir), result["split"]
    paths = [
        run_dir / f"evaluation_{split}.json",
        run_dir / f"per_class_{split}.csv",
        run_dir / f"confusion_{split}.csv",
    ]
    write_json(paths[0], {**result, "files": [str(p) for p in paths]})
    columns = ("class", "precision", "recall", "f1", "accuracy", "support")
    rows = [",".join(columns)] + [",".join(_csv_cell(row[c]) for c in columns) for row in result["per_class"]]
    write_text_atomic(paths[1], "\n".join(rows) + "\n")
    names = [row["class"] for row in result["per_class"]]
    rows = ["true\\predicted," + ",".join(_csv_cell(n) for n in names)] + [
        ",".join([_csv_cell(name), *map(str, counts)])
        for name, counts in zip(names, result["confusion"], strict=True)
    ]
    write_text_atomic(paths[2], "\n".join(rows) + "\n")
    return paths


def format_evaluation(result: dict[str, Any]) -> str:
    """The evaluation as a plain-text table for the terminal."""
    width = max(5, *(len(row["class"]) for row in result["per_class"]))
    lines = [
        f"run {result['run']}  split {result['split']}  {result['images']} images  "
        f"checkpoint {result['checkpoint']}  tta {'on' if result['tta'] else 'off'}",
        f"loss {result['loss']:.4f}  top-1 {100 * result['top1']:.2f}%  "
        + (
            f"top-5 {100 * result['top5']:.2f}%  "
            if result["top5_k"] == 5 and len(result["per_class"]) > 5
            else ""
        )
        + f"macro F1 {result['macro_f1']:.4f}",
        "",
        f"{'class':<{width}}  precision  recall      f1  support",
    ]
    for row in result["per_class"]:
        lines.append(
            f"{row['class']:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:6.4f}  {row['support']:7d}"
        )
    if result["most_confused"]:
        pairs = ", ".join(
            f"{p['true']} -> {p['predicted']} ({p['count']})" for p in result["most_confused"][:5]
        )
        lines += ["", f"most confused (true -> predicted): {pairs}"]
    lines += ["", "highest losses (index: true -> predicted, probability):"]
    for item in result["top_losses"][:8]:
        lines.append(f"  #{item['index']}: {item['true']} -> {item['predicted']} ({item['probability']:.3f})")
    if result.get("files"):
        lines += ["", "wrote " + ", ".join(result["files"])]
    return "\n".join(lines)


def _csv_cell(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


def _short(names: list[str]) -> str:
    names = list(names)
    return str(names) if len(names) <= 6 else f"[{', '.join(names[:5])}, ... {len(names)} classes]"

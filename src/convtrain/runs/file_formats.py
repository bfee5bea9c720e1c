"""What a run folder's own files hold, as text: the model card's checks, metrics.csv, split.json and
the evaluation tables. runs/run_dir.py names the files and owns them; this module turns values into
text and back, and refuses a file that does not hold what it should, in one line naming the file.

    metrics_text([{"epoch": 1, "train_loss": 0.31, ...}])  ->  "epoch,train_loss,...\\n1,0.31,...\\n"
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch

from convtrain.base.errors import CheckpointError

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "seconds",
    "images_per_second",
)
CARD_KEYS = ("architecture", "classes", "in_channels", "image_size", "mean", "std")


# ----- model.json -----
def parse_card(path: Path) -> dict[str, Any]:
    """model.json as a checked dict: valid JSON, every key of CARD_KEYS, values that build a network."""
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is not valid JSON; restore it or retrain the run") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"{path} is not a JSON object; it is not a convtrain model card")
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; it is not a convtrain model card")
    _check_card(card, path)
    return card


def _check_card(card: dict[str, Any], path: Path) -> None:
    """A card whose values would build a nonsense network is refused here, not deep inside torch."""
    ok = (
        isinstance(card["architecture"], str)
        and isinstance(card["classes"], list)
        and len(card["classes"]) >= 1
        and card["in_channels"] in (1, 3)
        and isinstance(card["image_size"], int)
        and not isinstance(card["image_size"], bool)
        and 1 <= card["image_size"] <= 4096
        and all(
            isinstance(card[k], list)
            and len(card[k]) == card["in_channels"]
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in card[k])
            for k in ("mean", "std")
        )
        and all(v > 0 for v in card["std"])
    )
    if not ok:
        raise CheckpointError(
            f"{path} has invalid values (architecture, classes, in_channels 1/3, image_size, mean/std per channel); "
            "restore it or retrain the run"
        )
    card["classes"] = [str(name) for name in card["classes"]]


# ----- split.json -----
def split_json(train_idx: torch.Tensor, val_idx: torch.Tensor) -> dict[str, list[int]]:
    return {"train": train_idx.tolist(), "val": val_idx.tolist()}


def parse_split(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx) from split.json."""
    bad = f"{path} is not a valid split file (JSON with 'train' and 'val' index lists)"
    try:
        payload = json.loads(path.read_text())
        train = torch.tensor(payload["train"], dtype=torch.long)
        val = torch.tensor(payload["val"], dtype=torch.long)
    except (ValueError, KeyError, TypeError, OverflowError, RuntimeError):
        raise CheckpointError(bad) from None
    if train.dim() != 1 or val.dim() != 1:
        raise CheckpointError(bad)
    return train, val


# ----- metrics.csv -----
def metrics_text(history: list[dict[str, Any]]) -> str:
    """metrics.csv from the whole history, one row per epoch."""
    lines = [",".join(METRIC_COLUMNS)]
    for row in history:
        lines.append(",".join(_csv_cell(row.get(column, "")) for column in METRIC_COLUMNS))
    return "\n".join(lines) + "\n"


def parse_metrics(path: Path) -> list[dict[str, float]]:
    """metrics.csv as one dict per epoch; an empty cell reads as NaN."""
    with path.open() as file:
        try:
            return [
                {k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                for row in csv.DictReader(file)
            ]
        except (ValueError, TypeError):
            raise CheckpointError(f"{path} is not a convtrain metrics file; restore it") from None


# ----- evaluation_<split> tables -----
def evaluation_tables(result: dict[str, Any]) -> tuple[str, str]:
    """(per_class_<split>.csv, confusion_<split>.csv) from an evaluation result."""
    columns = ("class", "precision", "recall", "f1", "accuracy", "support")
    rows = [",".join(columns)] + [",".join(_csv_cell(r[c]) for c in columns) for r in result["per_class"]]
    per_class = "\n".join(rows) + "\n"
    names = [row["class"] for row in result["per_class"]]
    rows = ["true\\predicted," + ",".join(_csv_cell(n) for n in names)] + [
        ",".join([_csv_cell(name), *map(str, counts)])
        for name, counts in zip(names, result["confusion"], strict=True)
    ]
    return per_class, "\n".join(rows) + "\n"


def _csv_cell(value: Any) -> str:
    """A float to 6 significant digits; a cell with a comma, quote or line break quoted as CSV does."""
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text

"""The run folder: where a training run writes everything a later command needs.

runs/mnist-mnist-cnn/
  config.yaml    the fully resolved TrainConfig
  model.json     model card: architecture, classes, input size/channels, mean/std
  split.json     the train/validation indices
  metrics.csv    one row per epoch
  best.pt        weights with the best monitored validation metric
  last.pt        full state for --resume
  results.json   final metrics, test loss/accuracy
  events.out.tfevents.*   TensorBoard scalars
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from convtrain.checkpoint import write_text_atomic

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


def new_run_dir(out: str | None, dataset: str, model: str) -> Path:
    """`out` as given, or runs/<dataset>-<model>, numbered -2, -3... when already taken."""
    if out:
        return Path(out)
    base = Path("runs") / f"{dataset.split(':')[0]}-{model}"
    candidate, number = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{number}")
        number += 1
    return candidate


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.csv from the whole history (so a resumed run never keeps stale rows)."""
    lines = [",".join(METRIC_COLUMNS)]
    for row in history:
        lines.append(",".join(_format(row.get(column, "")) for column in METRIC_COLUMNS))
    write_text_atomic(run_dir / "metrics.csv", "\n".join(lines) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    with path.open() as file:
        return [
            {k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
            for row in csv.DictReader(file)
        ]


def write_json(path: Path, values: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(values, indent=2) + "\n")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)

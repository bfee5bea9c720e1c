"""Helpers several test files share (fixtures live in conftest.py): one tiny LeNet-5 run config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convtrain.config.train_config import TrainConfig


def tiny_config(npz: Path, out: Path | None = None, **options: Any) -> TrainConfig:
    """LeNet-5 on a tiny npz dataset (conftest's tiny_npz), batch 64, quiet, no pictures; `options`
    set anything else (epochs, lr, precision, ...)."""
    values: dict[str, Any] = dict(
        dataset=f"npz:{npz}", model="lenet5", batch_size=64, quiet=True, plots=False
    )
    if out is not None:
        values["out"] = str(out)
    return TrainConfig(**{**values, **options})

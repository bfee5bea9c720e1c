"""Helpers several test files share (fixtures live in conftest.py): one tiny LeNet-5 run config."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from convtrain.config.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[1]  # the checkout: src/, tests/, README.md


def copy_run(run: Path, to: Path) -> Path:
    """A copy of a shared run folder at `to`, for a test that writes into it: the shared one stays as
    trained."""
    shutil.copytree(run, to)
    return to


def tiny_config(npz: Path, out: Path | None = None, **options: Any) -> TrainConfig:
    """LeNet-5 on a tiny npz dataset (conftest's tiny_npz), batch 64, quiet, no pictures; `options`
    set anything else (epochs, lr, precision, ...)."""
    values: dict[str, Any] = dict(
        dataset=f"npz:{npz}", model="lenet5", batch_size=64, quiet=True, plots=False
    )
    if out is not None:
        values["out"] = str(out)
    return TrainConfig(**{**values, **options})


# The recipes of the named datasets besides MNIST and CIFAR: data/test_dataset_registry.py runs each
# on files written in its format, and config/test_recipes.py leaves them to it.
SLOW = pytest.mark.slow  # fastnet at full width: about 10 s each on a 2-core CPU
NAMED_RECIPES = (
    "kmnist-fast",
    "emnist-balanced-fast",
    "emnist-letters-fast",
    "emnist-digits-fast",
    pytest.param("svhn-fast", marks=SLOW),
    pytest.param("stl10-fast", marks=SLOW),
)

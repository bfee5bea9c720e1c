"""training/epochs_and_size.py: the image size and epochs a run takes when the user leaves them unset.

.venv/bin/python -m pytest tests/training/test_epochs_and_size.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convtrain.cli import main
from convtrain.config.train_config import TrainConfig
from convtrain.data.dataset import ImageData, Split
from convtrain.training.epochs_and_size import (
    MAX_EPOCHS,
    epochs_for,
    fit_to_model,
    library_size,
    resolve_epochs,
)


def test_epochs_rule():
    assert epochs_for(180, 256, drop_last=True) == MAX_EPOCHS  # one (short) batch an epoch: capped at 40
    assert epochs_for(1000, 256, drop_last=True) == 14  # 3 steps an epoch: 14 epochs for 40 steps
    assert epochs_for(1000, 256, drop_last=False) == 10  # 4 steps an epoch with the short batch kept
    assert epochs_for(3000, 256, drop_last=True) == 4
    assert epochs_for(54000, 256, drop_last=True) == 2  # MNIST's train split: the plain default
    config, words = resolve_epochs(TrainConfig(), 180, 256)
    assert config.epochs == 40 and words.startswith("40 epochs (auto")
    given, words = resolve_epochs(TrainConfig(epochs=3), 180, 256)
    assert given.epochs == 3 and words == ""
    frozen, _ = resolve_epochs(TrainConfig(freeze_epochs=3), 60000, 256)  # still leaves epochs to unfreeze
    assert frozen.epochs == 4


def test_library_models_take_their_own_input_size():
    config, note = library_size(TrainConfig(model="torchvision:resnet18"))
    assert config.image_size == 224 and "default input size" in note
    config, note = library_size(TrainConfig(model="torchvision:resnet18", image_size=32))
    assert config.image_size == 32 and note == ""
    config, note = library_size(TrainConfig())  # a zoo model: the reader's own rule
    assert config.image_size is None and note == ""


def _tiny(size: int) -> ImageData:
    images = (
        torch.arange(6 * size * size, dtype=torch.int64).remainder(256).to(torch.uint8).view(6, 1, size, size)
    )
    split = Split(labels=torch.tensor([0, 1] * 3), images=images)
    return ImageData("tiny", ["a", "b"], 1, size, (0.5,), (0.2,), train=split)


def test_tiny_images_are_upscaled_to_the_model_minimum():
    data = _tiny(8)
    fitted, note = fit_to_model(data, TrainConfig(model="fastnet-tiny"))
    assert fitted.image_size == 9 and fitted.train.images.shape == (6, 1, 9, 9) and "upscaled to 9x9" in note
    assert data.image_size == 8 and data.train.images.shape == (6, 1, 8, 8)  # the loaded data is untouched
    tiny4 = _tiny(4)
    lenet, note = fit_to_model(tiny4, TrainConfig(model="mnist-cnn"))  # min_size 4, but never under 8 px
    assert lenet.image_size == 8 and "upscaled to 8x8" in note
    same, note = fit_to_model(
        data, TrainConfig(model="fastnet-tiny", image_size=16)
    )  # configured: left alone
    assert same is data and note == ""


@pytest.mark.cpu_precision
def test_bare_train_on_8x8_arrays_runs(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "8x8.npz"
    np.savez(path, x_train=rng.integers(0, 256, (120, 8, 8), dtype=np.uint8), y_train=np.arange(120) % 3)
    code = main(
        [
            "train",
            "--dataset",
            f"npz:{path}",
            "--out",
            str(tmp_path / "run"),
            "--max-steps",
            "2",
            "--no-plots",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    first = printed.out.splitlines()[0]
    assert "40 epochs (auto: 108 images at batch 256" in first
    assert "upscaled to 9x9, the smallest fastnet-tiny takes" in printed.out

"""training/epochs_and_size.py: the image size, epochs and augmentation a run takes when the user
leaves them unset (the small-data rule).

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
    SMALL_DATA_MAX,
    augment_for,
    epochs_for,
    fit_to_model,
    library_size,
    resolve_augment,
    resolve_epochs,
)


def test_epochs_rule():
    assert epochs_for(180, 256, drop_last=True) == MAX_EPOCHS  # 48,000 images seen would take 267: capped
    assert epochs_for(200, 256, drop_last=True) == 240  # 48,000 images seen
    assert epochs_for(1000, 256, drop_last=True) == 48  # images seen, more than 14 epochs for 40 steps
    assert epochs_for(2000, 256, drop_last=False) == 24
    assert epochs_for(1000, 8192, drop_last=False) == 48  # one step an epoch: still 48 (40 steps is fewer)
    assert epochs_for(30000, 2048, drop_last=True) == 3  # 14 steps an epoch: 3 epochs for 40 steps
    assert epochs_for(24000, 256, drop_last=True) == 2  # 48,000 images seen in the plain default
    assert epochs_for(54000, 256, drop_last=True) == 2  # MNIST's train split: the plain default
    config, words = resolve_epochs(TrainConfig(), 500, 256)
    assert config.epochs == 96 and words.startswith("96 epochs (auto: 500 images")
    given, words = resolve_epochs(TrainConfig(epochs=3), 180, 256)
    assert given.epochs == 3 and words == ""
    frozen, _ = resolve_epochs(TrainConfig(freeze_epochs=3), 60000, 256)  # still leaves epochs to unfreeze
    assert frozen.epochs == 4


def test_augment_rule():
    assert augment_for(500, 1) == "translate:2"  # a digit may shift, but a mirrored one is another shape
    assert augment_for(500, 3) == "flip,translate:2"
    assert augment_for(SMALL_DATA_MAX, 3) == "flip,translate:2"
    assert augment_for(SMALL_DATA_MAX + 1, 3) == "none"
    config, words = resolve_augment(TrainConfig(), 600, 3)
    assert config.augment == "flip,translate:2" and "augment flip,translate:2 (auto: 600 images" in words
    large, words = resolve_augment(TrainConfig(), 60000, 1)
    assert large.augment == "none" and words == ""
    chosen, words = resolve_augment(TrainConfig(augment="none"), 600, 3)  # a choice, even 'none', is kept
    assert chosen.augment == "none" and words == ""
    assert TrainConfig().augment is None  # unset until the run knows its data


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


def test_images_under_16_px_are_upscaled_to_32_or_the_model_minimum():
    data = _tiny(8)
    fitted, note = fit_to_model(data, TrainConfig(model="fastnet-tiny"))
    assert fitted.image_size == 32 and fitted.train.images.shape == (6, 1, 32, 32)
    assert "upscaled to 32x32, images under 16 px train at 32" in note
    assert data.image_size == 8 and data.train.images.shape == (6, 1, 8, 8)  # the loaded data is untouched
    lenet, note = fit_to_model(_tiny(4), TrainConfig(model="mnist-cnn"))
    assert lenet.image_size == 32 and "upscaled to 32x32" in note
    kept, note = fit_to_model(_tiny(16), TrainConfig(model="fastnet-tiny"))  # 16 px and up: as it is
    assert kept.image_size == 16 and note == ""
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
    assert "250 epochs (auto: 108 images at batch 256" in first
    assert "augment translate:2 (auto: 108 images, up to 2000" in first
    assert "upscaled to 32x32, images under 16 px train at 32" in printed.out

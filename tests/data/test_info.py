"""dataset_info / format_info and channel_stats, against hand counts and NumPy.

.venv/bin/python -m pytest tests/data/test_info.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from convtrain.data.dataset import ImageData, Split
from convtrain.data.info import channel_stats, dataset_info, format_info


def _data() -> ImageData:
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (7, 3, 4, 4), dtype=np.uint8))
    return ImageData(
        name="toy",
        classes=["cat", "dog", "emu"],
        channels=3,
        image_size=4,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        train=Split(labels=torch.tensor([0, 0, 1, 2, 2, 2, 0]), images=images),
        test=Split(labels=torch.tensor([1, 1]), images=images[:2]),
        val=Split(labels=torch.tensor([2]), files=[Path("a.png")]),
        source="npz:/x/toy.npz",
        notes=["skipped 1 file"],
    )


def test_channel_stats_match_numpy():
    images = torch.from_numpy(
        np.random.default_rng(1).integers(0, 256, (5000, 3, 5, 5), dtype=np.uint8)
    )  # > 1 chunk
    mean, std = channel_stats(images)
    pixels = images.numpy() / 255
    assert np.allclose(mean, pixels.mean(axis=(0, 2, 3)), atol=1e-6)
    assert np.allclose(std, pixels.std(axis=(0, 2, 3)), atol=1e-6)


def test_dataset_info_counts_and_stats():
    data = _data()
    info = dataset_info(data)
    assert json.loads(json.dumps(info)) == info  # JSON-ready
    assert info["name"] == "toy" and info["num_classes"] == 3 and info["image_shape"] == [3, 4, 4]
    assert info["splits"]["train"] == {"images": 7, "per_class": {"cat": 3, "dog": 1, "emu": 3}}
    assert info["splits"]["test"]["per_class"] == {"cat": 0, "dog": 2, "emu": 0}
    assert info["splits"]["val"]["images"] == 1
    pixels = data.train.images.numpy() / 255
    assert info["pixel_mean"] == pytest.approx(pixels.mean(axis=(0, 2, 3)).tolist(), abs=1e-6)
    assert info["pixel_std"] == pytest.approx(pixels.std(axis=(0, 2, 3)).tolist(), abs=1e-6)
    assert info["notes"] == ["skipped 1 file"]


def test_format_info_table():
    text = format_info(dataset_info(_data()))
    lines = text.splitlines()
    assert "3x4x4 (RGB), 3 classes" in text and "note: skipped 1 file" in text
    header = next(line for line in lines if line.startswith("class"))
    assert header.split() == ["class", "train", "val", "test"]
    assert next(line for line in lines if line.startswith("cat")).split() == ["cat", "3", "0", "0"]
    assert next(line for line in lines if line.startswith("dog")).split() == ["dog", "1", "0", "2"]
    assert next(line for line in lines if line.startswith("total")).split() == ["total", "7", "1", "2"]


def test_streamed_train_has_no_pixel_stats():
    data = _data()
    data.train = Split(labels=data.train.labels, files=[Path(f"{i}.png") for i in range(7)])
    info = dataset_info(data)
    assert info["pixel_mean"] is None and "not computed" in format_info(info)

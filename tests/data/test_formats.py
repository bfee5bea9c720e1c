"""The dataset registry and load_dataset(): names, data root, options, and the shared pixel conversions.

.venv/bin/python -m pytest tests/data/test_formats.py -q
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convtrain.base.errors import ConfigError
from convtrain.data.dataset_registry import DATASETS, READERS, load_dataset, resolve_data_dir
from convtrain.data.formats.image_folder import resize_images, to_channels
from idx_files import NAMES, write_idx_set


def test_registered_specs_are_consistent():
    assert sorted(DATASETS) == [
        "cifar10", "cifar100", "emnist-balanced", "emnist-digits", "emnist-letters",
        "fashion-mnist", "kmnist", "mnist", "stl10", "svhn",
    ]  # fmt: skip
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.reader in READERS
        assert len(spec.mean) == len(spec.std) in (0, spec.channels)  # () measures the training split on load
        assert len(set(spec.classes)) == len(spec.classes)
        assert all(0 < v < 1 for v in spec.mean + spec.std)
    assert [len(DATASETS[n].classes) for n in ("mnist", "fashion-mnist", "cifar10", "cifar100")] == [
        10,
        10,
        10,
        100,
    ]
    assert list(DATASETS["cifar100"].classes) == sorted(
        DATASETS["cifar100"].classes
    )  # official order is alphabetical


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        load_dataset("imagenet")
    assert all(name in str(e.value) for name in [*DATASETS, "folder:PATH", "npz:PATH"])


@pytest.mark.parametrize("kwargs", [dict(channels=2), dict(image_size=0), dict(image_size=12.5)])
def test_bad_options(kwargs):
    with pytest.raises(ConfigError):
        load_dataset("mnist", **kwargs)


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CONVTRAIN_DATA", raising=False)
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "convtrain"
    monkeypatch.setenv("CONVTRAIN_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert resolve_data_dir("~/x") == tmp_path / "home" / "x"


def test_names_are_forgiving(tmp_path):
    write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=False)
    for name in ("fashion-mnist", "Fashion_MNIST", "fashionmnist"):
        assert load_dataset(name, str(tmp_path), download=False).name == "fashion-mnist"


def test_registered_gray_to_rgb_and_resize(tmp_path):
    written = write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=False)
    data = load_dataset("fashion-mnist", str(tmp_path), image_size=32, channels=3, download=False)
    assert data.train.images.shape == (12, 3, 32, 32) and (data.channels, data.image_size) == (3, 32)
    assert torch.equal(data.test.images[:, 0], data.test.images[:, 1])
    reference = np.asarray(
        Image.fromarray(written[NAMES[0]][0].astype(np.uint8)).resize((32, 32), Image.BILINEAR)
    )
    assert np.abs(data.train.images[0, 0].numpy().astype(int) - reference).max() <= 1
    pixels = data.train.images.double().numpy() / 255
    assert np.allclose(data.mean, pixels.mean(axis=(0, 2, 3)), atol=1e-6)
    assert np.allclose(data.std, pixels.std(axis=(0, 2, 3)), atol=1e-6)


def test_resize_matches_pil_downscale():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 3, 40, 40), dtype=np.uint8)
    out = resize_images(torch.from_numpy(images), 13)
    for i in range(3):
        ref = np.asarray(Image.fromarray(images[i].transpose(1, 2, 0)).resize((13, 13), Image.BILINEAR))
        assert np.abs(out[i].permute(1, 2, 0).numpy().astype(int) - ref).max() <= 1
    assert resize_images(torch.from_numpy(images), 40).data_ptr() == torch.from_numpy(images).data_ptr()


def test_luminance_weights():
    images = torch.tensor(
        [[[[255]], [[0]], [[0]]], [[[0]], [[255]], [[0]]], [[[0]], [[0]], [[255]]], [[[10]], [[20]], [[30]]]],
        dtype=torch.uint8,
    )
    gray = to_channels(images, 1).flatten().tolist()
    assert gray == [
        round(0.299 * 255),
        round(0.587 * 255),
        round(0.114 * 255),
        round(0.299 * 10 + 0.587 * 20 + 0.114 * 30),
    ]
    assert to_channels(to_channels(images, 1), 3).shape == (4, 3, 1, 1)


def test_folder_path_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        Image.new("L", (8, 8), 100).save(tmp_path / "imgs" / c / "0.png")
    data = load_dataset("folder:~/imgs")
    assert data.source == f"folder:{Path(tmp_path / 'imgs').resolve()}" and len(data.train) == 2

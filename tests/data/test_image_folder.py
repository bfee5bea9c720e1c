"""Folder datasets: the real CIFAR-10 sample, split layouts, bad files, mixed sizes and modes, decode_image.

.venv/bin/python -m pytest tests/data/test_image_folder.py -q
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convtrain.base.errors import DataError, ImageError
from convtrain.data.dataset_registry import DataWarning, load_dataset
from convtrain.data.formats.image_folder import decode_image, read_folder

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _png(
    path: Path, size: tuple[int, int] = (8, 8), mode: str = "RGB", value: int = 0, fmt: str = "PNG"
) -> Path:
    """A small image whose pixels vary with position and `value`, so resizing and conversion are visible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    grid = (np.add.outer(np.arange(h) * 7, np.arange(w) * 13) + value) % 256
    pixels = grid if mode == "L" else np.stack([grid, 255 - grid, (grid * 3) % 256], axis=-1)
    Image.fromarray(pixels.astype(np.uint8), mode).save(path, format=fmt)
    return path


def _tree(root: Path, per_class: int = 3, classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            _png(root / name / f"{i}.png", value=40 * c + i)
    return root


# ----- the real sample -----


@pytest.fixture(scope="module")
def sample(shared_datasets) -> Path:
    return shared_datasets / "cifar10-sample"


def test_cifar10_sample_in_memory(sample):
    data = load_dataset(f"folder:{sample}")
    assert data.classes == CIFAR10_CLASSES and (data.channels, data.image_size) == (3, 32)
    assert data.train.images.shape == (200, 3, 32, 32) and data.test is None and data.notes == []
    counts = [len(list((sample / c).glob("*.png"))) for c in CIFAR10_CLASSES]
    assert torch.bincount(data.train.labels, minlength=10).tolist() == counts
    first = sorted((sample / "airplane").glob("*.png"))[0]
    reference = np.asarray(Image.open(first).convert("RGB")).transpose(2, 0, 1)  # (3, 32, 32)
    assert torch.equal(data.train.images[0], torch.from_numpy(reference.copy()))
    pixels = data.train.images.double().numpy() / 255
    assert np.allclose(data.mean, pixels.mean(axis=(0, 2, 3)), atol=1e-6)
    assert np.allclose(data.std, pixels.std(axis=(0, 2, 3)), atol=1e-6)


def test_cifar10_sample_streamed_matches_in_memory(sample):
    memory = read_folder(sample)
    streamed = read_folder(sample, in_memory=False)
    assert streamed.train.images is None and len(streamed.train.files) == 200
    assert torch.equal(streamed.train.labels, memory.train.labels)
    for i in (0, 77, 199):
        assert torch.equal(decode_image(streamed.train.files[i], 3, 32), memory.train.images[i])
    assert np.allclose(streamed.mean, memory.mean, atol=1e-6)  # 200 files < the sample size: all decoded


def test_gray_and_resized_sample(sample):
    data = load_dataset(f"folder:{sample}", image_size=16, channels=1)
    assert data.train.images.shape == (200, 1, 16, 16)
    first = sorted((sample / "airplane").glob("*.png"))[0]
    reference = np.asarray(Image.open(first).convert("L").resize((16, 16), Image.BILINEAR), dtype=np.int16)
    assert (
        np.abs(data.train.images[0, 0].numpy().astype(np.int16) - reference).max() <= 1
    )  # PIL's antialiased bilinear


# ----- layouts -----


def test_split_layout_takes_classes_from_train(tmp_path):
    _tree(tmp_path / "train", per_class=4, classes=("a", "b", "c"))
    _tree(tmp_path / "val", per_class=2, classes=("a", "b"))
    _tree(tmp_path / "test", per_class=1, classes=("a", "b", "c"))
    data = read_folder(tmp_path)
    assert data.classes == ["a", "b", "c"]
    assert (len(data.train), len(data.val), len(data.test)) == (12, 4, 3)
    assert data.val.labels.tolist() == [0, 0, 1, 1]


def test_split_layout_with_unknown_class_in_test(tmp_path):
    _tree(tmp_path / "train")
    _tree(tmp_path / "test", classes=("cat", "cow"))
    with pytest.raises(DataError, match="cow"):
        read_folder(tmp_path)


def test_extensions_any_case_and_hidden_files_ignored(tmp_path):
    _png(tmp_path / "a" / "x.PNG")
    _png(tmp_path / "a" / "y.JpEg", fmt="JPEG")
    _png(tmp_path / "b" / "z.bmp", fmt="BMP")
    _png(tmp_path / "b" / "w.webp", fmt="WEBP")
    (tmp_path / "b" / ".DS_Store").write_bytes(b"\x00\x01")
    data = read_folder(tmp_path)
    assert data.train.labels.tolist() == [0, 0, 1, 1] and data.notes == []


# ----- bad input -----


def _tree_with_bad_files(root: Path) -> Path:
    _tree(root)
    (root / "cat" / "readme.txt").write_text("not an image")
    (root / "cat" / "garbage.png").write_bytes(b"\x89PNG but not really")
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(good, "PNG")
    (root / "dog" / "cut.png").write_bytes(good.getvalue()[:120])  # valid header, pixel data cut off
    return root


def test_bad_files_skipped_with_count(tmp_path):
    root = _tree_with_bad_files(tmp_path)
    with pytest.warns(DataWarning, match="skipped 3 files"):
        data = load_dataset(f"folder:{root}")
    assert len(data.train) == 6 and torch.bincount(data.train.labels).tolist() == [3, 3]
    assert len(data.notes) == 1
    assert all(name in data.notes[0] for name in ("readme.txt", "garbage.png", "cut.png"))


def test_bad_files_refused_when_strict(tmp_path):
    root = _tree_with_bad_files(tmp_path)
    with pytest.raises(DataError, match="not readable images.*--strict"):
        load_dataset(f"folder:{root}", strict=True)
    (root / "cat" / "readme.txt").unlink()
    (root / "cat" / "garbage.png").unlink()
    with pytest.raises(DataError, match="1 files.*cut.png"):  # caught only when decoding
        load_dataset(f"folder:{root}", strict=True)


def test_streamed_folder_skips_files_without_an_image_header(tmp_path):
    root = _tree_with_bad_files(tmp_path)
    data = read_folder(root, in_memory=False)
    assert len(data.train.files) == 7  # cut.png has a good header: found only when a worker decodes it
    assert "skipped 2 files" in data.notes[0]


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda r: (_tree(r), (r / "bird").mkdir()), "bird has no readable images"),
        (
            lambda r: (_tree(r), (r / "bird").mkdir(), (r / "bird" / "a.txt").write_text("x")),
            "bird has no readable",
        ),
        (lambda r: r.mkdir(), "no class folders"),
        (lambda r: _tree(r, classes=("cat",)), "only one class folder"),
        (lambda r: None, "does not exist"),
    ],
    ids=["empty-class", "class-of-non-images", "no-classes", "one-class", "missing"],
)
def test_folder_errors(tmp_path, make, problem):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DataError, match=problem) as e:
        load_dataset(f"folder:{root}")
    assert "\n" not in str(e.value)


# ----- sizes and modes -----


def test_mixed_sizes_go_to_the_most_common(tmp_path):
    _tree(tmp_path, per_class=2)
    _png(tmp_path / "cat" / "big.png", size=(12, 12))
    with pytest.warns(DataWarning, match="2 sizes"):
        data = load_dataset(f"folder:{tmp_path}")
    assert data.image_size == 8 and data.train.images.shape == (5, 3, 8, 8)
    chosen = load_dataset(f"folder:{tmp_path}", image_size=16)  # an explicit size: nothing to note
    assert chosen.notes == [] and chosen.train.images.shape == (5, 3, 16, 16)


def test_non_square_images_are_noted(tmp_path):
    _png(tmp_path / "a" / "0.png", size=(10, 6))
    _png(tmp_path / "b" / "0.png", size=(10, 6))
    data = read_folder(tmp_path)
    assert data.image_size == 6 and "10x6" in data.notes[0]


def test_majority_mode_decides_channels(tmp_path):
    for i in range(3):
        _png(tmp_path / "a" / f"{i}.png", mode="L", value=i)
    rgb = _png(tmp_path / "b" / "0.png", mode="RGB", value=9)
    data = read_folder(tmp_path)
    assert data.channels == 1
    assert np.array_equal(data.train.images[3, 0].numpy(), np.asarray(Image.open(rgb).convert("L")))
    colour = read_folder(tmp_path, channels=3)
    assert torch.equal(colour.train.images[0, 0], colour.train.images[0, 2])  # gray repeated


# ----- decode_image -----


def test_decode_image_errors_and_modes(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ImageError, match="bad.png"):
        decode_image(tmp_path / "bad.png", 3, 32)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert decode_image(tmp_path / "rgba.png").shape == (3, 4, 4)
    # nearly transparent red over white, as a viewer shows it: 200 * 10/255 + 255 * 245/255 = 253
    assert decode_image(tmp_path / "rgba.png")[0].unique().tolist() == [253]
    deep = np.array([[0, 257 * 100], [65535, 257 * 7]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "16bit.png")
    assert decode_image(tmp_path / "16bit.png").tolist() == [[[0, 100], [255, 7]]]  # scaled, not clipped

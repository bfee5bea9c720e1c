"""npz datasets: layouts, dtypes, class names, and every malformed file.

.venv/bin/python -m pytest tests/test_data_npz.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convtrain.data.npz import read_npz
from convtrain.data.registry import load_dataset
from convtrain.errors import DataError


def _save(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


def _rgb(n: int = 6, size: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.uint8)  # NHWC


def test_nhwc_uint8_fixture(tiny_rgb_npz):
    data = load_dataset(f"npz:{tiny_rgb_npz}")
    with np.load(tiny_rgb_npz) as ref:
        assert torch.equal(data.train.images, torch.from_numpy(ref["x_train"].transpose(0, 3, 1, 2).copy()))
        assert torch.equal(data.test.labels, torch.from_numpy(ref["y_test"]))
        pixels = ref["x_train"] / 255
    assert data.classes == ["0", "1", "2", "3"] and (data.channels, data.image_size) == (3, 32)
    assert np.allclose(data.mean, pixels.mean(axis=(0, 1, 2)), atol=1e-6)
    assert np.allclose(data.std, pixels.std(axis=(0, 1, 2)), atol=1e-6)
    assert data.source.startswith("npz:") and data.name == tiny_rgb_npz.stem


@pytest.mark.parametrize("layout", ["nchw", "nhw", "float01", "float255", "int64"])
def test_layouts_and_dtypes(tmp_path, layout):
    x = _rgb()
    expected = x.transpose(0, 3, 1, 2)  # (N, 3, H, W)
    stored = {
        "nchw": expected,
        "nhw": x[..., 0],
        "float01": x.astype(np.float32) / 255,
        "float255": x.astype(np.float64),
        "int64": x.astype(np.int64),
    }[layout]
    if layout == "nhw":
        expected = x[:, None, :, :, 0]
    data = read_npz(_save(tmp_path, x_train=stored, y_train=np.arange(6) % 2))
    assert torch.equal(data.train.images, torch.from_numpy(np.ascontiguousarray(expected)))
    assert data.test is None


def test_class_names(tmp_path):
    data = read_npz(
        _save(tmp_path, x_train=_rgb(), y_train=np.arange(6) % 3, classes=np.array(["cat", "dog", "emu"]))
    )
    assert data.classes == ["cat", "dog", "emu"]
    more = read_npz(
        _save(tmp_path, x_train=_rgb(), y_train=np.arange(6) % 2, classes=np.array(["a", "b", "c"]))
    )
    assert more.num_classes == 3 and more.notes == [
        f"{tmp_path / 'd.npz'}: 1 of 3 classes have no training images: 'c'"
    ]


def test_labels_that_skip_values_give_one_note_with_a_count(tmp_path):
    """Labels 0, 50 and 98 make 99 classes, 96 of them empty: one line, not 96."""
    x = np.zeros((6, 4, 4), np.uint8)
    data = read_npz(_save(tmp_path, x_train=x, y_train=np.array([0, 50, 98, 0, 50, 98])))
    assert data.num_classes == 99 and len(data.notes) == 1
    assert data.notes[0].endswith(
        "96 of 99 classes have no training images: '1', '2', '3', '4', '5' and 91 more"
    )


def test_conversion_recomputes_mean_std(tiny_npz):
    data = load_dataset(f"npz:{tiny_npz}", image_size=32, channels=3)
    assert data.train.images.shape == (480, 3, 32, 32)
    assert torch.equal(data.train.images[:, 0], data.train.images[:, 2])
    pixels = data.train.images.double().numpy() / 255
    assert np.allclose(data.mean, pixels.mean(axis=(0, 2, 3)), atol=1e-6)


@pytest.mark.parametrize(
    "arrays, problem",
    [
        (dict(x_train=_rgb()), "lacks y_train"),
        (dict(y_train=np.arange(6)), "lacks x_train"),
        (dict(x_train=_rgb(), y_train=np.arange(6) % 2, x_test=_rgb()), "only one of x_test and y_test"),
        (dict(x_train=_rgb(), y_train=np.arange(5) % 2), "5 labels but the images number 6"),
        (dict(x_train=_rgb()[..., :2], y_train=np.arange(6) % 2), "expected"),
        (dict(x_train=np.zeros((6, 25), np.uint8), y_train=np.arange(6) % 2), "expected"),
        (dict(x_train=np.zeros((6, 4, 5), np.uint8), y_train=np.arange(6) % 2), "square"),
        (dict(x_train=_rgb(), y_train=np.arange(6) - 1), "label -1"),
        (dict(x_train=_rgb(), y_train=np.arange(6) % 2 + 0.0), "integers"),
        (dict(x_train=_rgb(), y_train=np.zeros(6, int)), "only one class"),
        (
            dict(x_train=_rgb(), y_train=np.arange(6) % 3, classes=np.array(["a", "b"])),
            "classes names only 2",
        ),
        (dict(x_train=_rgb(), y_train=np.arange(6) % 2, classes=np.array(["a", "a"])), "repeated"),
        (dict(x_train=_rgb(), y_train=np.arange(6) % 2, classes=np.arange(2)), "strings"),
        (dict(x_train=_rgb() * 2.0, y_train=np.arange(6) % 2), "values span"),
        (dict(x_train=np.full((6, 5, 5), np.nan), y_train=np.arange(6) % 2), "values span"),
        (
            dict(x_train=_rgb(), y_train=np.arange(6) % 2, x_test=_rgb(size=4), y_test=np.arange(6) % 2),
            "x_test images",
        ),
    ],
)
def test_bad_arrays(tmp_path, arrays, problem):
    with pytest.raises(DataError, match=problem) as e:
        load_dataset(f"npz:{_save(tmp_path, **arrays)}")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("damage", ["truncated", "text", "npy", "pickled", "missing"])
def test_bad_files(tmp_path, damage):
    path = _save(tmp_path, x_train=_rgb(), y_train=np.arange(6) % 2)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "text":
        path.write_text("x_train,y_train\n")
    elif damage == "npy":
        np.save(path.with_suffix(".npy"), _rgb())
        path = path.with_suffix(".npy")
    elif damage == "pickled":
        np.savez(path, x_train=np.array([object(), 1], dtype=object), y_train=np.arange(2))
    else:
        path = tmp_path / "absent.npz"
    with pytest.raises(DataError, match=str(path)) as e:
        load_dataset(f"npz:{path}")
    assert "\n" not in str(e.value)

"""npz datasets: layouts, dtypes, class names, and every malformed file.

.venv/bin/python -m pytest tests/data/test_npz.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convtrain.base.errors import DataError
from convtrain.data.dataset_registry import load_dataset
from convtrain.data.formats.npz import read_npz


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
        (dict(x_train=_rgb(), y_train=np.arange(6) % 2, x_test=_rgb()), "has x_test but lacks y_test"),
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


# ----- the layouts of the tutorials, Keras and MedMNIST -----


def test_tutorial_layout_capital_x_and_column_labels(tmp_path):
    """The GPU tutorial's file: X_train, y_train, X_test, y_test with (N, 1) labels."""
    x = _rgb()
    data = read_npz(
        _save(
            tmp_path,
            X_train=x,
            y_train=(np.arange(6) % 3)[:, None],
            X_test=x[:3],
            y_test=np.arange(3)[:, None],
        )
    )
    assert torch.equal(data.train.labels, torch.tensor([0, 1, 2, 0, 1, 2]))
    assert torch.equal(data.test.labels, torch.tensor([0, 1, 2])) and data.val is None
    assert data.classes == ["0", "1", "2"] and not data.notes


def test_medmnist_layout_with_its_own_validation_split(tmp_path):
    x = _rgb()[..., 0]  # (N, H, W) gray, as MedMNIST's 28x28 sets
    arrays = {f"{s}_images": x for s in ("train", "val", "test")}
    arrays |= {f"{s}_labels": (np.arange(6) % 2)[:, None].astype(np.uint8) for s in ("train", "val", "test")}
    data = read_npz(_save(tmp_path, **arrays))
    assert len(data.train) == len(data.val) == len(data.test) == 6
    assert torch.equal(data.val.images[:, 0], torch.from_numpy(x))


def test_the_files_validation_split_is_kept_as_val(tmp_path):
    """x_val becomes ImageData.val, which a run validates on instead of holding out, as with a folder's val/."""
    path = _save(
        tmp_path, x_train=_rgb(), y_train=np.arange(6) % 2, x_val=_rgb(4, seed=1), y_val=np.arange(4) % 2
    )
    data = load_dataset(f"npz:{path}")
    assert len(data.val) == 4
    assert torch.equal(data.val.images, torch.from_numpy(_rgb(4, seed=1).transpose(0, 3, 1, 2).copy()))


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, bool])
def test_one_hot_labels_become_indices_with_one_note(tmp_path, dtype):
    y = np.eye(4, dtype=dtype)[[0, 1, 2, 1, 0, 2]]  # (6, 4): class 3 is never used but counts
    data = read_npz(
        _save(tmp_path, x_train=_rgb(), y_train=y, x_test=_rgb(2), y_test=np.eye(4, dtype=dtype)[[3, 0]])
    )
    assert torch.equal(data.train.labels, torch.tensor([0, 1, 2, 1, 0, 2]))
    assert data.num_classes == 4 and torch.equal(data.test.labels, torch.tensor([3, 0]))
    assert [n for n in data.notes if "one-hot" in n] == [
        f"{tmp_path / 'd.npz'}: y_train, y_test one-hot: read as class indices (the column of each row's 1)"
    ]


def test_label_names_array(tmp_path):
    data = read_npz(
        _save(
            tmp_path,
            train_images=_rgb(),
            train_labels=np.arange(6) % 2,
            label_names=np.array([b"no", b"yes"]),
        )
    )
    assert data.classes == ["no", "yes"]


def test_nothing_recognisable_lists_the_keys_and_the_layouts(tmp_path):
    with pytest.raises(DataError) as e:
        read_npz(_save(tmp_path, images=_rgb(), targets=np.arange(6)))
    message = str(e.value)
    assert "holds images, targets" in message and "x_train, y_train" in message and "train_images" in message
    assert "\n" not in message


def test_multi_label_rows_are_refused(tmp_path):
    y = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(DataError, match="multi-label"):
        read_npz(_save(tmp_path, x_train=_rgb(), y_train=y))


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

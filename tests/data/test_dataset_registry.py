"""KMNIST, EMNIST, SVHN and STL-10 by name, from files written here in each official format.

Each writer below follows the published format independently of convtrain's readers: EMNIST's
zip of gzipped IDX files with images stored column by column, SVHN's MATLAB 5 .mat with X
(32, 32, 3, N) and labels 1..10, STL-10's column-major binary files with labels 1..10. Nothing is
downloaded.

    .venv/bin/python -m pytest tests/data/test_dataset_registry.py -q -p no:cacheprovider
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from convtrain.base.errors import DataError
from convtrain.data.dataset_registry import DATASETS, load_dataset
from convtrain.data.info import dataset_info, format_info
from helpers import NAMED_RECIPES
from idx_files import idx_bytes, write_idx_set

RNG = np.random.default_rng(0)

pytestmark = pytest.mark.filterwarnings("ignore::convtrain.data.dataset_registry.DataWarning")


def one_line_error(name: str, root: Path, match: str) -> None:
    with pytest.raises(DataError, match=match) as e:
        load_dataset(name, str(root), download=False)
    assert "\n" not in str(e.value)


# ----- KMNIST: the MNIST format -----


def test_kmnist_from_idx_files(tmp_path):
    arrays = write_idx_set(tmp_path / "KMNIST" / "raw", n_train=12, n_test=6)
    data = load_dataset("kmnist", str(tmp_path), download=False)
    assert data.classes[:3] == ["o", "ki", "su"] and (data.channels, data.image_size) == (1, 28)
    assert torch.equal(
        data.train.images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.uint8))
    )
    pixels = arrays["train-images-idx3-ubyte"] / 255
    assert np.allclose(data.mean, [pixels.mean()], atol=1e-6) and np.allclose(
        data.std, [pixels.std()], atol=1e-6
    )


# ----- EMNIST: IDX files inside the official zip, images transposed -----


def write_emnist(
    root: Path, split: str, n: int = 8, first: int = 0, classes: int = 47
) -> tuple[np.ndarray, np.ndarray]:
    """EMNIST/gzip.zip holding gzip/emnist-<split>-{train,test}-{images,labels}-idx?-ubyte.gz; returns upright train images."""
    upright = RNG.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    upright[:, 0, :] = 255  # a bright top row: transposed, it would be the left column
    labels = first + np.arange(n) % classes
    (root / "EMNIST").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / "EMNIST" / "gzip.zip", "w") as z:
        for part in ("train", "test"):
            stored = upright.transpose(0, 2, 1)  # the published files hold each image column by column
            z.writestr(f"gzip/emnist-{split}-{part}-images-idx3-ubyte.gz", gzip.compress(idx_bytes(stored)))
            z.writestr(f"gzip/emnist-{split}-{part}-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(labels)))
    return upright, labels - first


@pytest.mark.parametrize(
    "split, first, classes", [("balanced", 0, 47), ("letters", 1, 26), ("digits", 0, 10)]
)
def test_emnist_from_the_official_zip(tmp_path, split, first, classes):
    upright, labels = write_emnist(tmp_path, split, first=first, classes=classes)
    data = load_dataset(f"emnist-{split}", str(tmp_path), download=False)
    assert data.num_classes == classes and data.source == str(tmp_path / "EMNIST" / "gzip.zip")
    assert torch.equal(data.train.images[:, 0], torch.from_numpy(upright))  # upright again
    assert torch.equal(data.test.labels, torch.from_numpy(labels))
    assert data.classes[0] == {"balanced": "0", "letters": "a", "digits": "0"}[split]


def test_emnist_unpacked_files_are_read_before_the_zip(tmp_path):
    folder = tmp_path / "EMNIST" / "raw"
    folder.mkdir(parents=True)
    upright = RNG.integers(0, 256, (4, 28, 28)).astype(np.uint8)
    for part in ("train", "test"):
        (folder / f"emnist-digits-{part}-images-idx3-ubyte").write_bytes(
            idx_bytes(upright.transpose(0, 2, 1))
        )
        (folder / f"emnist-digits-{part}-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(4)))
    data = load_dataset("emnist-digits", str(tmp_path), download=False)
    assert torch.equal(data.train.images[:, 0], torch.from_numpy(upright)) and data.source == str(folder)


def test_emnist_bad_zips(tmp_path):
    one_line_error("emnist-balanced", tmp_path, "place emnist-balanced-train-images-idx3-ubyte.*gzip.zip")
    write_emnist(tmp_path, "digits", classes=10)
    one_line_error("emnist-balanced", tmp_path, "lacks gzip/emnist-balanced-train-images")
    (tmp_path / "EMNIST" / "gzip.zip").write_bytes(b"PK\x03\x04 not really a zip")
    one_line_error("emnist-digits", tmp_path, "cannot read .*gzip.zip")
    write_emnist(tmp_path, "letters", first=0, classes=26)  # letters must count from 1: a 0 is out of range
    one_line_error("emnist-letters", tmp_path, "outside 1..26")


# ----- SVHN: MATLAB 5 .mat files -----


def write_svhn(folder: Path, n: int = 10) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    scipy_io = pytest.importorskip("scipy.io")
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for part in ("train", "test"):
        images = RNG.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)  # (N, C, H, W)
        digits = np.arange(n) % 10
        y = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)  # the published files: 10 for 0
        scipy_io.savemat(folder / f"{part}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": y})
        written[part] = (images, digits)
    return written


def test_svhn_from_mat_files(tmp_path):
    written = write_svhn(tmp_path / "SVHN")
    data = load_dataset("svhn", str(tmp_path), download=False)
    images, digits = written["test"]
    assert torch.equal(data.test.images, torch.from_numpy(images)) and torch.equal(
        data.test.labels, torch.from_numpy(digits)
    )
    assert data.test.labels.tolist()[:2] == [0, 1] and data.image_size == 32 and len(data.mean) == 3


def test_svhn_bad_files(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    one_line_error("svhn", tmp_path, "place train_32x32.mat")
    write_svhn(tmp_path / "SVHN")
    scipy_io.savemat(tmp_path / "SVHN" / "test_32x32.mat", {"images": np.zeros((2, 2))})
    one_line_error("svhn", tmp_path, "lacks X and y")
    (tmp_path / "SVHN" / "test_32x32.mat").write_bytes(b"MATLAB 7.3 MAT-file, not really")
    one_line_error("svhn", tmp_path, "cannot read .*test_32x32.mat")
    scipy_io.savemat(
        tmp_path / "SVHN" / "test_32x32.mat",
        {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [3]])},
    )
    one_line_error("svhn", tmp_path, "labels 1..10")


# ----- STL-10: column-major binary files, in a folder or the tar.gz -----


def stl10_files(n_train: int = 3, n_test: int = 2) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    files, arrays = {"class_names.txt": "\n".join(DATASETS["stl10"].classes).encode() + b"\n"}, {}
    for part, n in (("train", n_train), ("test", n_test)):
        images = RNG.integers(0, 256, (n, 3, 96, 96)).astype(np.uint8)
        labels = 1 + np.arange(n) % 10
        files[f"{part}_X.bin"] = images.transpose(
            0, 1, 3, 2
        ).tobytes()  # each channel written column by column
        files[f"{part}_y.bin"] = labels.astype(np.uint8).tobytes()
        arrays[part], arrays[f"{part}_labels"] = images, labels - 1
    return files, arrays


def test_stl10_from_the_binary_folder(tmp_path):
    files, arrays = stl10_files()
    (tmp_path / "stl10_binary").mkdir()
    for name, payload in files.items():
        (tmp_path / "stl10_binary" / name).write_bytes(payload)
    data = load_dataset("stl10", str(tmp_path), download=False)
    assert data.image_size == 96 and data.classes[2] == "car"
    assert torch.equal(data.train.images, torch.from_numpy(arrays["train"]))
    assert torch.equal(data.test.labels, torch.from_numpy(arrays["test_labels"].astype(np.int64)))


def test_stl10_archive_is_unpacked_without_the_unlabelled_images(tmp_path):
    files, arrays = stl10_files()
    files["unlabeled_X.bin"] = b"\x00" * 27648
    with tarfile.open(tmp_path / "stl10_binary.tar.gz", "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(f"stl10_binary/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    data = load_dataset("stl10", str(tmp_path), download=False)
    assert torch.equal(data.test.images, torch.from_numpy(arrays["test"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stl10_binary", "stl10_binary.tar.gz"]
    assert not (tmp_path / "stl10_binary" / "unlabeled_X.bin").exists()


def test_stl10_bad_files(tmp_path):
    one_line_error("stl10", tmp_path, "place stl10_binary.tar.gz")
    files, _ = stl10_files()
    (tmp_path / "stl10_binary").mkdir()
    for name, payload in files.items():
        (tmp_path / "stl10_binary" / name).write_bytes(payload)
    (tmp_path / "stl10_binary" / "test_y.bin").write_bytes(b"\x01")
    one_line_error("stl10", tmp_path, "2 images in test_X.bin but 1 labels")
    (tmp_path / "stl10_binary" / "test_X.bin").write_bytes(b"\x00" * 1000)
    one_line_error("stl10", tmp_path, "not a whole number of 3x96x96 images")


# ----- data info on every new set -----


def test_data_info_on_every_new_registered_set(tmp_path):
    write_idx_set(tmp_path / "KMNIST" / "raw", n_train=12, n_test=6)
    write_emnist(tmp_path, "digits", classes=10)
    write_svhn(tmp_path / "SVHN")
    files, _ = stl10_files()
    (tmp_path / "stl10_binary").mkdir()
    for name, payload in files.items():
        (tmp_path / "stl10_binary" / name).write_bytes(payload)
    for name in ("kmnist", "emnist-digits", "svhn", "stl10"):
        info = dataset_info(load_dataset(name, str(tmp_path), download=False))
        text = format_info(info)
        assert info["name"] == name and info["splits"]["test"]["images"] > 0 and "total" in text


# ----- each new set's recipe runs two steps on the tiny official-format files -----


def write_named(root: Path, dataset: str) -> None:
    if dataset == "kmnist":
        write_idx_set(root / "KMNIST" / "raw", n_train=40, n_test=10)
    elif dataset.startswith("emnist"):
        split = dataset.removeprefix("emnist-")
        classes = {"balanced": 47, "letters": 26, "digits": 10}[split]
        write_emnist(root, split, n=40, first=int(split == "letters"), classes=classes)
    elif dataset == "svhn":
        write_svhn(root / "SVHN", n=40)
    else:
        files, _ = stl10_files(n_train=40, n_test=10)
        (root / "stl10_binary").mkdir(parents=True)
        for name, payload in files.items():
            (root / "stl10_binary" / name).write_bytes(payload)


@pytest.mark.parametrize("recipe", NAMED_RECIPES)
def test_new_recipes_run_two_steps(recipe, tmp_path):
    from convtrain.cli import main
    from convtrain.config.recipes import load_recipe

    dataset = load_recipe(recipe)["dataset"]
    write_named(tmp_path / "data", dataset)
    args = ["train", "--recipe", recipe, "--data-dir", str(tmp_path / "data"), "--no-download"]
    args += ["--out", str(tmp_path / "run"), "--epochs", "1", "--max-steps", "2", "--batch-size", "16"]
    args += ["--quiet", "--no-plots", "--device", "cpu", "--precision", "fp32", "--no-compile"]
    assert main(args) == 0
    assert (tmp_path / "run" / "last.pt").is_file()

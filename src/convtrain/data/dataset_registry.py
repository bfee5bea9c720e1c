"""The registered datasets and load_dataset(): one call from a name to an ImageData.

A name is a registered dataset (mnist, fashion-mnist, kmnist, emnist-balanced/-letters/-digits,
cifar10, cifar100, svhn, stl10), `folder:PATH` (a folder per class), `npz:PATH` (arrays x_train,
y_train, ...), `csv:PATH` (a label file with images beside it) or `parquet:PATH` (Hugging Face
layout). This module is the one place names map to readers. Registered datasets live under the data
root: the data_dir argument, else $CONVTRAIN_DATA, else ~/.cache/convtrain.

Problems worth knowing but not fatal (a user copy with another md5, skipped image files) are kept
in ImageData.notes and also issued as DataWarning through `warnings`, once, when loading returns.

    python -c "from convtrain.data.dataset_registry import load_dataset; print(load_dataset('mnist').train.images.shape)"
"""

from __future__ import annotations

import os
import warnings
from functools import partial
from pathlib import Path

from convtrain.base.errors import ConfigError, DataWarning
from convtrain.data.dataset import ImageData
from convtrain.data.disk_cache import cached_dataset
from convtrain.data.formats.cifar import load_cifar
from convtrain.data.formats.csv_labels import read_csv
from convtrain.data.formats.idx import load_idx_dataset
from convtrain.data.formats.image_folder import read_folder, resize_images, to_channels
from convtrain.data.formats.npz import read_npz
from convtrain.data.formats.parquet import read_parquet
from convtrain.data.formats.stl10 import load_stl10
from convtrain.data.formats.svhn import load_svhn
from convtrain.data.info import channel_stats
from convtrain.data.spec import DataFile, DatasetSpec

DEFAULT_DATA_DIR = "~/.cache/convtrain"
READ_FILES = {"folder": read_folder, "csv": read_csv}  # datasets of image files: decoded, so cached


def _idx_files(
    md5s: tuple[str, ...], content_md5s: tuple[str, ...], prefix: str = "", test: str = "t10k"
) -> tuple[DataFile, ...]:
    names = (
        f"{prefix}train-images-idx3-ubyte",
        f"{prefix}train-labels-idx1-ubyte",
        f"{prefix}{test}-images-idx3-ubyte",
        f"{prefix}{test}-labels-idx1-ubyte",
    )
    kinds = ("images", "labels", "images", "labels")
    return tuple(
        DataFile(f"{n}.gz", md5, kind, content)
        for n, md5, kind, content in zip(names, md5s, kinds, content_md5s, strict=True)
    )


CIFAR100_CLASSES = tuple(
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel "
    "can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur "
    "dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion "
    "lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree "
    "pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea "
    "seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table "
    "tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman "
    "worm".split()
)

# EMNIST balanced: digits, capitals, and the 11 lower-case letters whose shape differs from their capital.
EMNIST_BALANCED = tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt")

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        classes=tuple(str(d) for d in range(10)),
        channels=1,
        image_size=28,
        mean=(0.1307,),  # computed from the 60,000 training images
        std=(0.3081,),
        url_base="",
        files=_idx_files(
            ("", "", "", ""),
            (
                "6bbc9ace898e44ae57da46a324031adb",
                "a25bea736e30d166cdddb491f175f624",
                "2646ac647ad5339dbf082846283269ea",
                "27ae3e4e09519cfbb04c329615203637",
            ),
        ),
        folder="MNIST/raw",
        description="handwritten digits, 60,000 train + 10,000 test, 28x28 gray (bundled)",
        bundled=True,
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        channels=1,
        image_size=28,
        mean=(0.2860,),
        std=(0.3530,),
        url_base="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        files=_idx_files(
            (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
            ("", "", "", ""),
        ),
        folder="FashionMNIST/raw",
        description="clothing photos, 60,000 train + 10,000 test, 28x28 gray",
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        channels=3,
        image_size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        url_base="https://www.cs.toronto.edu/~kriz/",
        files=(DataFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        folder="cifar-10-batches-py",
        description="small photos, 50,000 train + 10,000 test, 32x32 RGB, 10 classes",
        reader="cifar",
    ),
    "cifar100": DatasetSpec(
        name="cifar100",
        classes=CIFAR100_CLASSES,
        channels=3,
        image_size=32,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        url_base="https://www.cs.toronto.edu/~kriz/",
        files=(DataFile("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),),
        folder="cifar-100-python",
        description="small photos, 50,000 train + 10,000 test, 32x32 RGB, 100 fine classes",
        reader="cifar",
    ),
    "kmnist": DatasetSpec(
        name="kmnist",
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        channels=1,
        image_size=28,
        mean=(),
        std=(),
        url_base="http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        files=_idx_files(
            (
                "bdb82020997e1d708af4cf47b453dcf7",
                "e144d726b3acfaa3e44228e80efcd344",
                "5c965bf0a639b31b8f53240b1b52f4d7",
                "7320c461ea6c1c855c0b718fb2a4b134",
            ),
            ("", "", "", ""),
        ),
        folder="KMNIST/raw",
        description="Kuzushiji-MNIST, cursive Japanese characters, 60,000 train + 10,000 test, 28x28 gray",
    ),
    **{
        f"emnist-{split}": DatasetSpec(
            name=f"emnist-{split}",
            classes=classes,
            channels=1,
            image_size=28,
            mean=(),
            std=(),
            url_base="https://biometrics.nist.gov/cs_links/EMNIST/",
            files=_idx_files(("", "", "", ""), ("", "", "", ""), prefix=f"emnist-{split}-", test="test"),
            folder="EMNIST/raw",
            description=f"EMNIST {split}: {what}, 28x28 gray",
            archive=DataFile("EMNIST/gzip.zip", "58c8d27c78d21e728a6bc7b3cc06412e"),
            archive_dir="gzip",
            first_label=first,
            transposed=True,
        )
        for split, classes, first, what in (
            ("balanced", EMNIST_BALANCED, 0, "digits and letters, 47 classes, 112,800 train + 18,800 test"),
            (
                "letters",
                tuple("abcdefghijklmnopqrstuvwxyz"),
                1,
                "letters, 26 classes (upper and lower case merged), 124,800 train + 20,800 test",
            ),
            ("digits", tuple("0123456789"), 0, "handwritten digits, 240,000 train + 40,000 test"),
        )
    },
    "svhn": DatasetSpec(
        name="svhn",
        classes=tuple("0123456789"),
        channels=3,
        image_size=32,
        mean=(),
        std=(),
        url_base="http://ufldl.stanford.edu/housenumbers/",
        files=(
            DataFile("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
            DataFile("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
        ),
        folder="SVHN",
        description="street-view house-number digits, 73,257 train + 26,032 test, 32x32 RGB (needs scipy)",
        reader="svhn",
    ),
    "stl10": DatasetSpec(
        name="stl10",
        classes=("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"),
        channels=3,
        image_size=96,
        mean=(),
        std=(),
        url_base="http://ai.stanford.edu/~acoates/stl10/",
        files=(DataFile("stl10_binary.tar.gz", "91f7769df0f17e558f3565bffb0c7dfb"),),
        folder="stl10_binary",
        description="photos, 5,000 train + 8,000 test (labelled splits), 96x96 RGB, 10 classes",
        reader="stl10",
    ),
}

ALIASES = {
    "fashionmnist": "fashion-mnist",
    "fashion": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "emnist": "emnist-balanced",
    "stl-10": "stl10",
}
READERS = {"idx": load_idx_dataset, "cifar": load_cifar, "svhn": load_svhn, "stl10": load_stl10}


def resolve_data_dir(data_dir: str | None) -> Path:
    """The data root: data_dir if given, else $CONVTRAIN_DATA, else ~/.cache/convtrain (not created here)."""
    return Path(data_dir or os.environ.get("CONVTRAIN_DATA") or DEFAULT_DATA_DIR).expanduser()


def _check_options(image_size: int | None, channels: int | None) -> None:
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ConfigError(f"image_size must be a positive number of pixels, got {image_size}")


def convert(data: ImageData, image_size: int | None, channels: int | None) -> ImageData:
    """Give every in-memory split the requested channels and size; recompute mean/std from train if anything changed."""
    channels = channels or data.channels
    image_size = image_size or data.image_size
    if (channels, image_size) == (data.channels, data.image_size):
        return data
    for split in (data.train, data.val, data.test):
        if split is not None and split.images is not None:
            split.images = to_channels(
                resize_images(to_channels(split.images, min(channels, data.channels)), image_size), channels
            )
    data.channels, data.image_size = channels, image_size
    data.mean, data.std = channel_stats(data.train.images)  # resizing smooths pixels, so std changes too
    return data


def load_dataset(
    name: str,
    data_dir: str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    strict: bool = False,
    download: bool = True,
    in_memory: bool = True,
    csv_columns: str | None = None,
    cache: bool = True,
) -> ImageData:
    """Read a dataset by name (registered, folder:, npz:, csv: or parquet:PATH), converted to image_size and channels if given.

    strict refuses a folder, csv or parquet set with unreadable files instead of skipping them;
    in_memory=False gives a folder or csv dataset as file lists for the streaming loader (other
    formats are always in memory). csv_columns names a CSV's path and label columns ("file,label").
    cache=True keeps a folder's or csv's decoded pixels in the data folder's decoded/ cache (decoded.py).
    """
    _check_options(image_size, channels)
    kind, _, path = name.partition(":")
    where = Path(path).expanduser()
    if kind in ("folder", "csv") and path:
        read = partial(READ_FILES[kind], where, image_size, channels, strict=strict, in_memory=in_memory)
        if kind == "csv":
            read = partial(read, csv_columns=csv_columns)
        if cache and in_memory and where.exists():  # decoded once, then loaded from the data folder
            watched = [where] if kind == "folder" else [where, where.parent]
            options = {"image_size": image_size, "channels": channels, "strict": strict, "csv": csv_columns}
            data = cached_dataset(
                f"{kind}:{where.resolve()}", options, watched, read, resolve_data_dir(data_dir)
            )
        else:
            data = read()
    elif kind == "parquet" and path:
        data = read_parquet(where, image_size, channels, strict=strict)
    elif kind == "npz" and path:
        data = convert(read_npz(where), image_size, channels)
    else:
        key = name.lower().replace("_", "-")
        spec = DATASETS.get(ALIASES.get(key, key))
        if spec is None:
            valid = ", ".join(DATASETS)
            raise ConfigError(
                f"unknown dataset '{name}': choose one of {valid}, or folder:PATH, npz:PATH, csv:PATH or parquet:PATH"
            )
        data = convert(_load_registered(spec, resolve_data_dir(data_dir), download), image_size, channels)
    for note in data.notes:
        warnings.warn(note, DataWarning, stacklevel=2)
    return data


def _load_registered(spec: DatasetSpec, root: Path, download: bool) -> ImageData:
    data = READERS[spec.reader](spec, root, download)
    if not spec.mean:  # no verified published figure: measure the training split as read
        data.mean, data.std = channel_stats(data.train.images)
    return data

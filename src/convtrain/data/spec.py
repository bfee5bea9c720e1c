"""What a registered dataset is: its published files and its description (the registry's entries).

The readers in formats/ take a DatasetSpec; dataset_registry.py holds the table of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataFile:
    """One published file of a dataset."""

    name: str  # as published, e.g. train-images-idx3-ubyte.gz
    md5: str  # of the published file; "" if not checked
    kind: str = ""  # IDX files: "images" or "labels"
    content_md5: str = ""  # of the uncompressed contents, which survives recompression


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: what it holds, its normalisation, and where its files come from."""

    name: str
    classes: tuple[str, ...]
    channels: int
    image_size: int
    mean: tuple[
        float, ...
    ]  # per channel, 0-1 scale, over the official training split; () computes it on load
    std: tuple[float, ...]
    url_base: str  # files are downloaded from url_base + file name; "" means never downloaded
    files: tuple[DataFile, ...]
    folder: str  # under the data root: where the files (or the extracted archive) live
    description: str
    bundled: bool = False  # shipped inside the package (MNIST), so it works offline
    reader: str = "idx"  # a key of READERS: the file format
    archive: DataFile | None = None  # IDX files published inside one zip (EMNIST), path under the data root
    archive_dir: str = ""  # the folder inside that zip that holds them
    first_label: int = 0  # the label the files give the first class (EMNIST letters: 1)
    transposed: bool = False  # IDX images stored column by column (EMNIST)

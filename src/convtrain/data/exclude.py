"""`convtrain train --exclude FILE`: train without the images a data check flagged (or any list).

FILE is an issues.csv written by `convtrain data check` (its train rows are used: label issues,
removable duplicate copies, odd files), or a text file with one training image per line: an index
into the dataset's train split as loaded (what `data check` reports), or, for folder datasets, a
file path. Lines starting with # are comments. The run folder's excluded.json records what was left out.

    convtrain data check mnist --labels --out checks/mnist
    convtrain train --recipe mnist-fast --exclude checks/mnist/issues.csv
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

import torch

from convtrain.base.errors import ConfigError
from convtrain.data.dataset import ImageData
from convtrain.data.dataset_registry import load_dataset


def read_exclusions(path: str | Path) -> tuple[set[int], set[str]]:
    """(training indices, file paths) listed in an issues.csv or a plain list."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"--exclude {path} does not exist; pass an issues.csv or a file of indices or paths"
        )
    text = path.read_text()
    indices, paths = set(), set()
    if text.startswith("check,"):  # an issues.csv from `convtrain data check`
        for row in csv.DictReader(text.splitlines()):
            if row.get("split") != "train":
                continue
            if row.get("index") not in (None, "", "-1"):  # index -1: a broken file, never read
                indices.add(int(row["index"]))
        return indices, paths
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.isdigit():
            indices.add(int(line))
        elif line.lstrip("-").isdigit():
            raise ConfigError(f"--exclude {path}, line {number}: {line} is not an image index (0 or more)")
        else:
            paths.add(line)
    return indices, paths


def _indices_of_paths(data: ImageData, paths: set[str], source: Path) -> set[int]:

    if not data.source.startswith("folder:"):
        raise ConfigError(
            f"--exclude {source} lists file paths, but {data.name} is not a folder dataset; list indices"
        )
    files = data.train.files or load_dataset(data.source, in_memory=False).train.files
    position = {}
    for index, file in enumerate(files):
        position[str(file)] = position[str(Path(file).resolve())] = index
    unknown = [p for p in paths if p not in position and str(Path(p).resolve()) not in position]
    if unknown:
        raise ConfigError(
            f"--exclude {source}: {len(unknown)} paths are not training images of {data.name}, e.g. {unknown[0]}"
        )
    return {position.get(p, position.get(str(Path(p).resolve()))) for p in paths}


def exclude_training_images(data: ImageData, source: str | Path) -> tuple[ImageData, dict[str, Any]]:
    """A copy of data without the listed training images, and the record for excluded.json."""
    indices, paths = read_exclusions(source)
    if paths:
        indices |= _indices_of_paths(data, paths, Path(source))
    n = len(data.train)
    outside = sorted(i for i in indices if i >= n)
    if outside:
        raise ConfigError(
            f"--exclude {source}: index {outside[0]} is outside the {n} training images of {data.name}; "
            "was the list made for another dataset?"
        )
    if len(indices) >= n:
        raise ConfigError(f"--exclude {source} removes all {n} training images of {data.name}")
    dropped = torch.tensor(sorted(indices), dtype=torch.long)
    keep = torch.ones(n, dtype=torch.bool)
    keep[dropped] = False
    train = data.train.subset(keep.nonzero().flatten())
    files = data.train.files
    record = {
        "source": str(source),
        "count": len(dropped),
        "train_images_before": n,
        "indices": dropped.tolist(),
        "paths": [str(files[i]) for i in dropped.tolist()] if files is not None else [],
    }
    return dataclasses.replace(data, train=train), record

"""`data check --fix-split`: a new split of a folder dataset, with no image in two splits.

Each duplicate group that links train to val or test is a leak: its train copies are moved to the
split of the kept copy (test before val), so the evaluation splits stay as they were and no
training image has a copy in them. The new split is written as OUT/split/<split>/<class>/<file>:
symbolic links to the user's files (copies where links are not allowed), never the files
themselves, so `--dataset folder:OUT/split` trains on it. OUT/split.csv lists every file.

    convtrain data check folder:photos --fix-split --out checks/photos
    convtrain train --dataset folder:checks/photos/split
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Any

from convtrain.base.atomic_files import write_text_atomic
from convtrain.base.errors import ConfigError
from convtrain.data.formats.image_folder import split_trees
from convtrain.datacheck.check_dir import CheckDir


def check_can_fix(dataset: str) -> None:
    """Refuse, before any work, a dataset --fix-split cannot rewrite."""
    kind, _, path = dataset.partition(":")
    if kind != "folder" or not path:
        raise ConfigError(f"--fix-split rewrites folder datasets only; {dataset} is not folder:PATH")
    root = Path(path).expanduser()
    if root.is_dir() and set(split_trees(root)) == {"train"}:
        raise ConfigError(
            f"--fix-split: {root} has no val/ or test/ folder, so nothing can leak; drop --fix-split"
        )


def moves(summary: dict[str, Any]) -> dict[str, str]:
    """{train file path: the split it moves to} for every leaking duplicate group."""
    moved = {}
    for group in summary["duplicates"]["groups"]:
        kept = group["members"][0]
        if kept["split"] == "train":
            continue  # within train only: not a leak
        for member in group["members"][1:]:
            if member["split"] == "train":
                moved[member["path"]] = kept["split"]
    return moved


def write_fixed_split(result: Any, out: str | Path) -> Path:
    """Write OUT/split (links) and OUT/split.csv from a finished check of a folder dataset."""
    check = CheckDir(out)
    moved = moves(result.summary)
    classes = result.summary["classes"]
    rows, target = [], check.split_dir
    staging = check.split_staging_dir
    shutil.rmtree(staging, ignore_errors=True)
    for name in sorted(result.images, key=("test", "val", "train").index):  # each split's own names first
        images = result.images[name]
        for path, label in zip(images.paths, images.labels.tolist(), strict=True):
            split = moved.get(path, name)
            folder = staging / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            link = folder / Path(path).name
            if link.exists() or link.is_symlink():  # a moved file whose name is taken there
                link = folder / f"{Path(path).stem}-from-{name}{Path(path).suffix}"
            try:
                os.symlink(Path(path).resolve(), link)
            except OSError:
                shutil.copy2(path, link)
            rows.append((path, name, split, classes[label]))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("path", "split_before", "split", "class"))
    writer.writerows(rows)
    write_text_atomic(check.split_csv_path, buffer.getvalue())
    counts = {}
    for split in moved.values():
        counts[split] = counts.get(split, 0) + 1
    summary = ", ".join(f"{n} into {s}" for s, n in counts.items()) or "none needed"
    print(f"fix-split: moved train images {summary}; train on it with --dataset folder:{target}", flush=True)
    return target

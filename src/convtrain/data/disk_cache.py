"""The decoded-image cache: a folder (or csv) dataset decoded once, loaded as arrays on every later run.

Decoding 60,000 PNG files takes longer than a training epoch. The first run stores what it decoded
(uint8 pixels, labels, classes, mean/std) in one .npz file under the data cache folder
($CONVTRAIN_DATA, else ~/.cache/convtrain) in decoded/; later runs load that file instead. The cache
is keyed by the dataset's path and the options that change pixels (image size, channels, strict), and
holds the pixels at training size (a folder of photos is stored at the size it trains at, not 4032x3024); it
records the list of files with their sizes and modification times: a file changed, added or removed
since makes the next run decode again, with a one-line note. A cache file that cannot be read (cut
short, corrupted, of another version) is decoded again, never trusted; it is read with
np.load(allow_pickle=False), so nothing in it can run code.

    convtrain data cache            # where the cache is and what it holds
    convtrain data cache --clear    # empty it
    convtrain train --dataset folder:photos --no-cache
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convtrain.base.atomic_files import atomic_write
from convtrain.base.errors import DataWarning, DiskError
from convtrain.data.dataset import ImageData, Split

VERSION = 1  # bump when the layout of a cache file changes
SPLITS = ("train", "val", "test")


def cache_root(data_root: str | Path) -> Path:
    """decoded/ under the data folder (registry.resolve_data_dir: --data-dir, $CONVTRAIN_DATA or ~/.cache/convtrain)."""
    return Path(data_root).expanduser() / "decoded"


def listing(paths: list[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime in ns) of every file under the given files and folders, sorted: what a
    change to the dataset changes. Only stat() calls: no file is opened."""
    found = []
    for path in paths:
        if path.is_file():
            stat = path.stat()
            found.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
            continue
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for name in names:
                if not name.startswith("."):
                    stat = os.stat(os.path.join(folder, name))
                    found.append((os.path.join(folder, name), stat.st_size, stat.st_mtime_ns))
    return sorted(found)


def cached_dataset(
    source: str,
    options: dict[str, Any],
    watched: list[Path],
    decode: Callable[[], ImageData],
    data_root: str | Path,
) -> ImageData:
    """The dataset from the cache when its files are unchanged, else decode() and store the result.

    source names the dataset (folder:/abs/path); options are what changes pixels; watched are the
    files and folders whose listing must match.
    """
    key = hashlib.sha256(json.dumps([VERSION, source, options], sort_keys=True).encode()).hexdigest()[:24]
    path = cache_root(data_root) / f"{key}.npz"
    files = listing(watched)
    digest = hashlib.sha256(json.dumps(files).encode()).hexdigest()
    if path.is_file():
        data, note = _load(path, digest, len(files))
        if data is not None:
            return data
        warnings.warn(f"{source}: {note}; decoding the images again", DataWarning, stacklevel=3)
    data = decode()
    if data.train.images is None:  # too big to decode in memory: streamed from the files, nothing to store
        return data
    try:
        _save(path, data, digest)
    except (OSError, DiskError) as error:  # a read-only or full cache folder costs speed, never the run
        why = error.strerror if isinstance(error, OSError) else str(error).split("; ")[0]
        warnings.warn(
            f"skipped the decoded-image cache ({why}); the run goes on, and decodes the images again next time",
            DataWarning,
            stacklevel=3,
        )
    return data


def clear_cache(data_root: str | Path) -> tuple[Path, int]:
    """Remove every cache file; returns the folder and how many files were removed."""
    root = cache_root(data_root)
    count = len(list(root.glob("*.npz"))) if root.is_dir() else 0
    shutil.rmtree(root, ignore_errors=True)
    return root, count


def describe_cache(data_root: str | Path) -> list[dict[str, Any]]:
    """What the cache holds: one entry per file (dataset, images, size)."""
    root = cache_root(data_root)
    entries = []
    for path in sorted(root.glob("*.npz")) if root.is_dir() else []:
        entry = {"file": str(path), "bytes": path.stat().st_size}
        try:
            with np.load(path, allow_pickle=False) as arrays:
                meta = json.loads(str(arrays["meta"]))
            entry.update(dataset=meta["source"], images=sum(meta["counts"].values()))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            entry.update(dataset="unreadable (it will be rebuilt)", images=0)
        entries.append(entry)
    return entries


def _save(path: Path, data: ImageData, digest: str) -> None:
    splits = {name: getattr(data, name) for name in SPLITS if getattr(data, name) is not None}
    meta = {
        "version": VERSION,
        "digest": digest,
        "source": data.source,
        "name": data.name,
        "classes": list(data.classes),
        "channels": data.channels,
        "image_size": data.image_size,
        "mean": list(data.mean),
        "std": list(data.std),
        "notes": list(data.notes),
        "counts": {name: len(split) for name, split in splits.items()},
    }
    arrays = {"meta": np.array(json.dumps(meta))}
    for name, split in splits.items():
        arrays[f"{name}_images"] = split.images.numpy()  # (N, C, S, S) uint8
        arrays[f"{name}_labels"] = split.labels.numpy()
    atomic_write(path, lambda file: np.savez(file, **arrays))


def _load(path: Path, digest: str, file_count: int) -> tuple[ImageData | None, str]:
    """(data, "") from a valid, current cache file, or (None, why not)."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            meta = json.loads(str(arrays["meta"]))
            if meta.get("version") != VERSION:
                return None, f"the decoded-image cache {path.name} is of another version"
            if meta["digest"] != digest:
                return (
                    None,
                    f"files changed, were added or removed since it was cached ({file_count} files now)",
                )
            splits = {}
            for name, count in meta["counts"].items():
                images = torch.from_numpy(arrays[f"{name}_images"])
                labels = torch.from_numpy(arrays[f"{name}_labels"])
                shape = (count, meta["channels"], meta["image_size"], meta["image_size"])
                if tuple(images.shape) != shape or images.dtype != torch.uint8 or labels.shape != (count,):
                    return None, f"the decoded-image cache {path.name} does not match its own record"
                splits[name] = Split(labels=labels.long(), images=images)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError):
        return None, f"the decoded-image cache {path.name} is unreadable"
    data = ImageData(
        name=meta["name"],
        classes=meta["classes"],
        channels=meta["channels"],
        image_size=meta["image_size"],
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        train=splits["train"],
        test=splits.get("test"),
        val=splits.get("val"),
        source=meta["source"],
        notes=meta["notes"],
    )
    return data, ""

"""The decoded-image cache of folder datasets: bit-exact round trip, stale and corrupt files rebuilt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import convtrain
from convtrain.base.errors import DataWarning
from convtrain.data.disk_cache import cache_root, cached_dataset, clear_cache, describe_cache
from convtrain.data.formats.image_folder import read_folder

SRC = str(Path(convtrain.__file__).resolve().parents[1])


def photo_tree(root: Path, per_class: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog", "fox")):
        for i in range(per_class):
            (root / name).mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) // (c + 1)
            Image.fromarray(pixels, "RGB").save(root / name / f"{i}.png")
    return root


def counted(root: Path, calls: list[int]):
    def decode():
        calls.append(1)
        return read_folder(root)

    return decode


def load(root: Path, cache_dir: Path, calls: list[int]):
    return cached_dataset(f"folder:{root}", {"size": None}, [root], counted(root, calls), cache_dir)


def test_the_cache_round_trips_bit_exactly_and_is_used(tmp_path):
    root, calls = photo_tree(tmp_path / "photos"), []
    first = load(root, tmp_path / "data", calls)
    second = load(root, tmp_path / "data", calls)
    assert calls == [1]  # decoded once
    assert torch.equal(first.train.images, second.train.images) and second.train.images.dtype == torch.uint8
    assert torch.equal(first.train.labels, second.train.labels)
    assert (second.classes, second.mean, second.std) == (first.classes, first.mean, first.std)
    assert len(describe_cache(tmp_path / "data")) == 1
    assert clear_cache(tmp_path / "data")[1] == 1 and not cache_root(tmp_path / "data").exists()


def test_a_changed_added_or_removed_file_rebuilds_it_with_a_note(tmp_path):
    root, calls = photo_tree(tmp_path / "photos"), []
    load(root, tmp_path / "data", calls)
    for change in (
        lambda: os.utime(root / "cat" / "0.png", ns=(1, 1)),
        lambda: Image.new("RGB", (12, 12)).save(root / "dog" / "new.png"),
        lambda: (root / "fox" / "1.png").unlink(),
    ):
        change()
        with pytest.warns(DataWarning, match="files changed, were added or removed"):
            data = load(root, tmp_path / "data", calls)
        assert torch.equal(data.train.images, read_folder(root).train.images)
    assert len(calls) == 4


def test_a_corrupt_or_truncated_cache_file_is_rebuilt_not_trusted(tmp_path):
    root, calls = photo_tree(tmp_path / "photos"), []
    reference = load(root, tmp_path / "data", calls)
    (cached,) = cache_root(tmp_path / "data").glob("*.npz")
    blob = cached.read_bytes()
    middle = len(blob) // 2
    flipped = blob[:middle] + bytes([blob[middle] ^ 0xFF]) + blob[middle + 1 :]  # one pixel byte changed
    for damaged in (blob[:middle], b"\x00" * len(blob), flipped):
        cached.write_bytes(damaged)
        with pytest.warns(DataWarning, match="decoding the images again"):
            data = load(root, tmp_path / "data", calls)
        assert torch.equal(data.train.images, reference.train.images)
    assert len(calls) == 4


def test_real_processes_decode_once_then_read_the_cache(tmp_path):
    root = photo_tree(tmp_path / "photos")
    env = {**os.environ, "PYTHONPATH": SRC, "CONVTRAIN_DATA": str(tmp_path / "data")}
    command = [sys.executable, "-m", "convtrain", "data", "info", f"folder:{root}", "--json"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    assert len(list(cache_root(tmp_path / "data").glob("*.npz"))) == 1
    # Spoil one image's pixels but keep its size and time: only a run that trusts the cache reads it whole.
    target = root / "cat" / "0.png"
    stat = target.stat()
    target.write_bytes(b"\x89PNG" + b"\x00" * (stat.st_size - 4))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    assert second.stdout == first.stdout and "skipped" not in second.stderr
    no_cache = subprocess.run([*command, "--no-cache"], capture_output=True, text=True, env=env, check=True)
    assert (
        no_cache.stdout != first.stdout and "0.png" in no_cache.stderr
    )  # decoded afresh: the spoilt file skipped
    cleared = subprocess.run(
        [sys.executable, "-m", "convtrain", "data", "cache", "--clear"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert cleared.returncode == 0 and "removed 1" in cleared.stdout

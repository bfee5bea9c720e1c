"""Datasets kept in memory between runs of one process: many seeds or sweep trials load their data once.

Outside `keep_datasets()` every run reads its dataset from disk, as a single run should. Inside it,
the first run's ImageData is kept, keyed by every option that changes what is loaded, and later runs
with the same options reuse it (ImageData and its tensors are never changed in place by training).

    with keep_datasets():
        for seed in range(5):
            convtrain.train(config.replace(seed=seed))   # the dataset is read once
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from convtrain.data.dataset import ImageData
from convtrain.data.dataset_registry import load_dataset


class DataOptions(Protocol):
    """The options of a run that choose what is loaded (a TrainConfig has them all)."""

    dataset: str
    data_dir: str | None
    image_size: int | None
    channels: int | None
    strict: bool
    download: bool
    loader: str
    csv_columns: str | None
    cache: bool


_kept: dict[tuple, ImageData] | None = None  # None: not keeping (the default)


@contextmanager
def keep_datasets() -> Iterator[None]:
    """Keep every dataset loaded inside this block for the rest of the block."""
    global _kept
    outer = _kept
    _kept = {} if outer is None else outer
    try:
        yield
    finally:
        _kept = outer


def load_data(config: DataOptions) -> ImageData:
    """The config's dataset: from disk, or the copy kept by an enclosing keep_datasets()."""
    key = (
        config.dataset,
        config.data_dir,
        config.image_size,
        config.channels,
        config.strict,
        config.download,
        config.loader,
        config.csv_columns,
    )
    if _kept is not None and key in _kept:
        return _kept[key]
    data = load_dataset(
        config.dataset,
        config.data_dir,
        config.image_size,
        config.channels,
        strict=config.strict,
        download=config.download,
        in_memory=config.loader == "device",
        csv_columns=config.csv_columns,
        cache=config.cache,
    )
    if _kept is not None:
        _kept[key] = data
    return data

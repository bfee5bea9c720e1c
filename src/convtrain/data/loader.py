"""Training and evaluation batches, normalised and augmented on the training device.

DeviceLoader keeps a whole split on the device as uint8 (60k MNIST images: 47 MB; CIFAR-10: 150 MB)
and builds each batch there: index, augment, normalise. No worker processes, no host-to-device copy
per step; an epoch costs little more than the indexing. StreamLoader serves the same batches from
image files (or a CPU tensor) through torch DataLoader workers, for data that does not fit.

The order of an epoch depends only on (seed, epoch), so resuming at an epoch boundary replays the
same stream. With several processes every rank draws the same permutation and takes its own slice
of each global batch; augmentation randomness is keyed on (seed, epoch, rank).

    >>> loader = make_loader(data.train, data, batch_size=128, device="cuda", train=True,
    ...                      augment=parse_augment("flip,crop:4"), seed=0)
    >>> for epoch in range(epochs):
    ...     loader.set_epoch(epoch)
    ...     for x, y in loader: ...   # x (B, C, H, W) float32 normalised; y labels or soft targets
"""

from __future__ import annotations

import hashlib
import math
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from convtrain.base.errors import ConfigError, ConvtrainError
from convtrain.data.augment import Augment
from convtrain.data.dataset import Split
from convtrain.data.decode import decode_image
from convtrain.data.pixels import scale_and_shift


def epoch_indices(
    n: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int, epoch: int, rank: int, world_size: int
) -> torch.Tensor:
    """This rank's sample indices for one epoch, in serving order; batches are consecutive runs of
    batch_size // world_size (the last may be shorter).

    shuffle=True (training): a permutation seeded by (seed, epoch), shared by all ranks; each global
    batch is cut into world_size equal slices, one per rank. A final partial batch is dropped with
    drop_last, else split evenly, leaving out at most world_size - 1 images so every rank takes the
    same number of steps of the same size. shuffle=False (evaluation): rank r takes the r-th of
    world_size contiguous slices of 0..n-1, so the ranks together cover every image exactly once.
    """
    local = batch_size // world_size
    if not shuffle:
        shard = torch.tensor_split(torch.arange(n), world_size)[rank]
        return shard[: len(shard) // local * local] if drop_last else shard
    order = torch.randperm(n, generator=torch.Generator().manual_seed(_seed_for(seed, epoch, "order")))
    full = n // (local * world_size)
    mine = order[: full * local * world_size].view(full, world_size, local)[:, rank].reshape(-1)
    rest = order[full * local * world_size :]
    each = len(rest) // world_size
    if drop_last or each == 0:
        return mine
    return torch.cat([mine, rest[: each * world_size].view(world_size, each)[rank]])


def _seed_for(*parts: Any) -> int:
    """A 63-bit seed from a tuple, identical in every process (unlike hash() of a string)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class _Batches:
    """What both loaders share: the epoch plan, and augment + normalise on the device."""

    def __init__(
        self,
        split: Split,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int,
        device: str | torch.device,
        shuffle: bool,
        drop_last: bool,
        augment: Augment | None = None,
        seed: int = 0,
        num_classes: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside 0..{world_size - 1} for world_size {world_size}")
        if batch_size < world_size:
            raise ConfigError(
                f"batch_size {batch_size} cannot be shared by {world_size} process(es); use at least {world_size}"
            )
        self.split, self.shuffle, self.drop_last = split, shuffle, drop_last
        self.size = len(split)  # images served per epoch (DeviceLoader's rows may serve fewer)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.batch_size = batch_size  # global: the sum over ranks of each step's batches
        self.local_batch_size = batch_size // world_size  # what this rank gets per step
        self.device = torch.device(device)
        self.augment = None if augment is None or augment.is_identity else augment
        self.num_classes = num_classes if num_classes else int(split.labels.max()) + 1
        self.channels_last = channels_last
        self.epoch = 0
        self.scale, self.shift = scale_and_shift(mean, std, self.device)  # (1, C, 1, 1) each
        try:  # draws stay on the device, so augmenting never waits on a host round trip
            self.generator = torch.Generator(device=self.device)
        except RuntimeError:
            self.generator = torch.Generator()

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose order and augmentation the next iteration serves (call before each)."""
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        """The dataset indices this rank serves in the current epoch, in order (CPU)."""
        global_batch = self.local_batch_size * self.world_size  # batch_size rounded down to a multiple
        return epoch_indices(
            self.size,
            global_batch,
            self.shuffle,
            self.drop_last,
            self.seed,
            self.epoch,
            self.rank,
            self.world_size,
        )

    def __len__(self) -> int:
        return math.ceil(len(self.indices()) / self.local_batch_size)

    def _start_epoch(self) -> None:
        self.generator.manual_seed(_seed_for(self.seed, self.epoch, self.rank, "augment"))

    def _finish(
        self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.augment is not None:
            x, y = self.augment(x, y, idx, self.epoch, self.generator, self.num_classes, seed=self.seed)
        x = torch.addcmul(self.shift, x, self.scale)  # (B, C, H, W) float32, uint8 promoted in the op
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # no-op when indexing kept the format
        return x, y


class DeviceLoader(_Batches):
    """Batches from a split held on the device as uint8 (see the module docstring for the arguments).

    rows: serve only these positions of the split, as if it were split.subset(rows), by indexing the
    one device copy: several loaders over parts of a split (cross-validation folds) share its images.
    """

    def __init__(self, split: Split, *args: Any, rows: torch.Tensor | None = None, **kwargs: Any) -> None:
        super().__init__(split, *args, **kwargs)
        if split.images is None:
            raise ValueError("DeviceLoader needs a split with images in memory; use StreamLoader for files")
        images = split.images
        if self.channels_last:  # stored that way, every indexed batch comes out channels-last for free
            images = images.contiguous(memory_format=torch.channels_last)
        self.images = images.to(self.device)  # (N, C, H, W) uint8; no copy when already there
        self.labels = split.labels.to(self.device)  # (N,) int64
        self.rows = None if rows is None else rows.to(self.device)  # (M,) positions served
        if self.rows is not None:
            self.size = len(self.rows)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self._start_epoch()
        order = self.indices().to(self.device)  # one small copy per epoch
        for idx in order.split(self.local_batch_size):  # idx: positions among the images served
            at = idx if self.rows is None else self.rows[idx]
            yield self._finish(self.images[at], self.labels[at], idx)  # (B, C, H, W) uint8 gather


class _SampleSource(torch.utils.data.Dataset):
    """One (uint8 image (C, H, W), label, index) per item: decoded from a file, or read from a CPU tensor."""

    def __init__(self, split: Split, channels: int, image_size: int | None) -> None:
        self.images, self.files, self.labels = split.images, split.files, split.labels
        self.channels, self.image_size = channels, image_size

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if self.images is not None:
            return self.images[i], self.labels[i], i

        return decode_image(self.files[i], self.channels, self.image_size), self.labels[i], i


class _EpochBatchSampler:
    """Index lists for DataLoader(batch_sampler=...), following the loader's current epoch."""

    def __init__(self, loader: _Batches) -> None:
        # A weak reference: a cycle would leave the worker processes to the garbage collector.
        self.loader = weakref.proxy(loader)

    def __iter__(self) -> Iterator[list[int]]:
        return (chunk.tolist() for chunk in self.loader.indices().split(self.loader.local_batch_size))

    def __len__(self) -> int:
        return len(self.loader)


class StreamLoader(_Batches):
    """The same batches as DeviceLoader, read by DataLoader workers from split.files (or CPU images).

    Extra keyword arguments: workers (processes), channels and image_size (what files decode to).
    """

    def __init__(
        self,
        split: Split,
        *args: Any,
        workers: int = 2,
        channels: int = 3,
        image_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(split, *args, **kwargs)
        if split.images is None and split.files is None:
            raise ValueError("StreamLoader needs a split with files or images")
        self.workers = workers
        self.dataloader = torch.utils.data.DataLoader(
            _SampleSource(split, channels, image_size),
            batch_sampler=_EpochBatchSampler(self),
            num_workers=workers,
            pin_memory=self.device.type == "cuda",  # pinned pages let the copy below overlap compute
            persistent_workers=workers > 0,
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self._start_epoch()
        try:
            for images, labels, idx in self.dataloader:
                images = images.to(self.device, non_blocking=True)  # (B, C, H, W) uint8
                labels = labels.to(self.device, non_blocking=True)
                yield self._finish(images, labels, idx.to(self.device, non_blocking=True))
        except ConvtrainError as error:
            # A worker's error arrives wrapped with its traceback in the message; keep the last line.
            message = str(error).strip().splitlines()[-1]
            if message.startswith(type(error).__module__) or message.startswith(type(error).__name__):
                message = message.split(": ", 1)[-1]
            raise type(error)(message) from None


def make_loader(
    split: Split,
    data: Any,
    batch_size: int,
    device: str | torch.device,
    train: bool,
    augment: Augment | None = None,
    seed: int = 0,
    loader: str = "device",
    workers: int = 2,
    rank: int = 0,
    world_size: int = 1,
    channels_last: bool = False,
    drop_last: bool = True,
    rows: torch.Tensor | None = None,
) -> DeviceLoader | StreamLoader:
    """The loader for one split: training (shuffled, augmented, drop_last) or evaluation (in order,
    every image once). data supplies mean, std, num_classes, channels and image_size (an ImageData).
    A split without images in memory is always streamed. rows: serve only those positions of the
    split (the same batches as split.subset(rows)); a device loader indexes the split's one copy."""
    if loader not in ("device", "stream"):
        raise ConfigError(f"loader must be 'device' or 'stream', got {loader!r}")
    served = len(split) if rows is None else len(rows)
    if rows is not None and not (loader == "device" and split.images is not None):
        split, rows = split.subset(rows.cpu()), None  # the stream reads per image: a subset costs nothing
    kwargs = dict(
        mean=data.mean,
        std=data.std,
        batch_size=batch_size,
        device=device,
        shuffle=train,
        # Dropping the last short training batch keeps BatchNorm away from 1-image batches; not when
        # the split is smaller than a batch, which would leave nothing to train on.
        drop_last=drop_last and train and served >= batch_size,
        augment=augment if train else None,
        seed=seed,
        num_classes=data.num_classes,
        rank=rank,
        world_size=world_size,
        channels_last=channels_last,
    )
    if loader == "device" and split.images is not None:
        return DeviceLoader(split, rows=rows, **kwargs)
    return StreamLoader(split, workers=workers, channels=data.channels, image_size=data.image_size, **kwargs)

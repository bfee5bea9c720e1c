"""Folders of images (`folder:PATH`), and the pixel conversions every format shares.

PATH holds one sub-folder per class (`PATH/<class>/*.png|jpg|jpeg|bmp|webp|tif|tiff|gif|heic`), or
`train/`, `val/` and `test/` trees laid out that way (classes then come from train/). Files are
checked once by their headers; ones that are not readable images are skipped and counted in
ImageData.notes, or refused with strict=True. Images become gray or RGB (the majority of files,
unless channels is given) and square image_size x image_size: unless given, the most common size
when that is small (up to NATIVE_UP_TO, e.g. MNIST or CIFAR), else PHOTO_SIDE. They are decoded in
parallel by data/decode.py, and only when the decoded split fits in the memory that is free;
otherwise the split is kept as file lists and streamed (with a note).

    python -c "from convtrain.data.formats.image_folder import read_folder; print(read_folder('../shared/datasets/cifar10-sample'))"
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from convtrain.base.errors import DataError
from convtrain.data.dataset import ImageData, Split
from convtrain.data.decode import (
    GRAY_MODES,
    HEIC_INSTALL,
    ImageBytes,
    available_memory,
    decode_image,  # noqa: F401  (re-exported: folder.decode_image is the name tests and older code use)
    decode_many,
    decoded_bytes,
    probe_image,
)
from convtrain.data.info import channel_stats

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
NATIVE_UP_TO = 96  # images up to this side (MNIST 28, CIFAR 32, STL-10 96) keep their own size
PHOTO_SIDE = 64  # larger ones (photos) are read at this side unless image_size says otherwise
MEMORY_SHARE = 0.75  # decode in memory only when the split takes at most this share of free memory
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights, the same ones PIL uses for RGB -> L
CHUNK_PIXELS = 1 << 24  # values per conversion step: bounds the float copy to 64 MB whatever the image size
STATS_SAMPLE = 2000  # streamed folders: train images decoded to estimate mean/std
SHOWN = 5  # skipped files named in the note; the rest are counted


# ----- pixel conversions (also used for npz and registered datasets) -----


def _rows_per_chunk(images: torch.Tensor) -> int:
    return max(1, CHUNK_PIXELS // max(1, images[0].numel())) if len(images) else 1


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) images to (N, C, size, size): antialiased bilinear, rounded back to uint8."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8)
    rows = _rows_per_chunk(images)
    for start in range(0, len(images), rows):
        x = images[start : start + rows].float()  # (B, C, H, W)
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + rows] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) images with C=1 or 3 made gray (luminance) or RGB (gray repeated)."""
    have = images.shape[1]
    if have == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()  # (N, 3, H, W)
    weights = torch.tensor(LUMA).view(1, 3, 1, 1)
    out = torch.empty((len(images), 1, *images.shape[2:]), dtype=torch.uint8)
    rows = _rows_per_chunk(images)
    for start in range(0, len(images), rows):
        gray = (images[start : start + rows].float() * weights).sum(dim=1, keepdim=True)  # (B, 1, H, W)
        out[start : start + rows] = gray.round_().clamp_(0, 255).to(torch.uint8)
    return out


# ----- finding the files -----


def list_visible(folder: Path) -> list[Path]:
    """The entries of a folder, sorted, without hidden ones."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))  # skip .DS_Store and the like


def split_trees(root: Path) -> dict[str, Path]:
    """{'train': ..., 'val': ..., 'test': ...} for a split layout, else {'train': root}."""
    subdirs = [p for p in list_visible(root) if p.is_dir()]
    if any(p.name == "train" for p in subdirs) and all(p.name in SPLIT_NAMES for p in subdirs):
        return {SPLIT_NAMES[p.name]: p for p in subdirs}
    return {"train": root}


def _scan(trees: dict[str, Path]) -> tuple[list[str], dict[str, list[tuple[Path, int]]], dict, list]:
    """Classes, the (file, label) list per split, each file's (size, mode), and the bad files with reasons."""
    classes = [p.name for p in list_visible(trees["train"]) if p.is_dir()]
    if not classes:
        raise DataError(f"no class folders in {trees['train']}: put images in {trees['train']}/<class name>/")
    if len(classes) == 1:
        raise DataError(
            f"only one class folder ({classes[0]}) in {trees['train']}: a classifier needs two or more"
        )
    files: dict[str, list[tuple[Path, int]]] = {}
    headers, bad = {}, []
    for split, tree in trees.items():
        folders = [p for p in list_visible(tree) if p.is_dir()]
        unknown = [p.name for p in folders if p.name not in classes]
        if unknown:
            raise DataError(
                f"{tree} has class folders {unknown} that train/ lacks; add them to train/ or remove them"
            )
        files[split] = []
        for folder in folders:
            found, label = [p for p in list_visible(folder) if p.is_file()], classes.index(folder.name)
            files[split] += probe_all([(path, label) for path in found], headers, bad)
            if split == "train" and not any(p in headers for p in found):
                raise DataError(
                    f"class folder {folder} has no readable images: add some or delete the folder"
                )
    return classes, files, headers, bad


def probe_all(
    entries: list[tuple[Path | ImageBytes, int]], headers: dict, bad: list
) -> list[tuple[Path | ImageBytes, int]]:
    """The entries whose headers read as images; their (size, mode) go to headers, the others to bad."""
    kept = []
    for source, label in entries:
        probe = probe_image(source)
        if isinstance(probe, str):
            bad.append((source, probe))
        else:
            headers[source] = probe
            kept.append((source, label))
    return kept


def _shown(source: Path | ImageBytes, root: Path) -> str:
    return (
        str(source.relative_to(root))
        if isinstance(source, Path) and source.is_relative_to(root)
        else str(source)
    )


def _refuse_bad_files(bad: list[tuple[Path, str]], root: Path) -> DataError:
    first_path, first_reason = bad[0]
    return DataError(
        f"{len(bad)} files in {root} are not readable images, e.g. {first_path} ({first_reason}); "
        "fix or remove them, or drop --strict to skip them"
    )


def first_few(names: list[str]) -> str:
    """'a, b, c, d, e and 44 more': a long list of names kept to one short line."""
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _skipped_note(bad: list[tuple[Path, str]], root: Path) -> str:
    names = first_few([_shown(p, root) for p, _ in bad])
    heic = sum("pillow-heif" in why for _, why in bad)
    extra = (
        f" ({heic} of them HEIC/HEIF photos, which need the pillow-heif package: {HEIC_INSTALL})"
        if heic
        else ""
    )
    return f"skipped {len(bad)} files in {root} that are not readable images: {names}{extra}"


def auto_side(width: int, height: int) -> int:
    """The square side images of (width, height) are read at when image_size is not given: their
    short side when small (MNIST, CIFAR), PHOTO_SIDE for photos. Smaller than a model takes is the
    job's to settle (defaults.fit_to_model upscales), so tiny images are read as they are."""
    side = min(width, height)
    return side if side <= NATIVE_UP_TO else PHOTO_SIDE


def _geometry(
    headers: dict, image_size: int | None, channels: int | None, notes: list[str]
) -> tuple[int, int]:
    """The channels (majority of modes) and square size (most common size) to convert every image to."""
    if channels is None:
        gray = sum(mode in GRAY_MODES for _, mode in headers.values())
        channels = 1 if gray > len(headers) - gray else 3  # a tie goes to RGB, which loses nothing
    if image_size is None:
        sizes = Counter(size for size, _ in headers.values())
        (width, height), _ = sizes.most_common(1)[0]
        image_size = auto_side(width, height)
        if len(sizes) > 1 or (width, height) != (image_size, image_size):
            kinds = (
                f"{len(sizes)} sizes (most common {width}x{height})"
                if len(sizes) > 1
                else f"{width}x{height}"
            )
            notes.append(
                f"images are {kinds}: all resized to {image_size}x{image_size}; pass --image-size to choose"
            )
    return channels, image_size


# ----- reading -----


def _decode_all(entries: list[tuple[Path, int]], channels: int, size: int, bad: list, title: str) -> Split:
    images, kept, broken = decode_many([path for path, _ in entries], channels, size, title=title)
    bad += broken  # valid headers over broken pixel data
    return Split(labels=torch.tensor([entries[i][1] for i in kept], dtype=torch.int64), images=images)


def _fits_in_memory(
    files: dict[str, list], channels: int, image_size: int, memory_limit: int | None, notes: list[str]
) -> bool:
    """Whether the decoded splits fit in memory_limit (default: a share of the free memory); a note if not."""
    count = sum(len(entries) for entries in files.values())
    needed = decoded_bytes(count, channels, image_size)
    limit = memory_limit if memory_limit is not None else int(MEMORY_SHARE * available_memory())
    if needed <= limit:
        return True
    notes.append(
        f"the {count} images at {channels}x{image_size}x{image_size} need {needed / 2**30:.1f} GB decoded, "
        f"more than the {limit / 2**30:.1f} GB of memory free: streaming them from disk (--loader stream)"
    )
    return False


def read_folder(
    root: Path,
    image_size: int | None = None,
    channels: int | None = None,
    strict: bool = False,
    in_memory: bool = True,
    memory_limit: int | None = None,
) -> ImageData:
    """A folder dataset as ImageData: decoded in memory, or (in_memory=False, or when the decoded
    splits would take more than memory_limit bytes) as file lists with labels."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"folder dataset {root} does not exist or is not a folder")
    trees = split_trees(root)
    classes, files, headers, bad = _scan(trees)
    return from_files(
        files,
        classes,
        headers,
        bad,
        root,
        root.resolve().name,
        f"folder:{root.resolve()}",
        image_size,
        channels,
        strict,
        in_memory,
        memory_limit,
    )


def from_files(
    files: dict[str, list[tuple[Path | ImageBytes, int]]],
    classes: list[str],
    headers: dict,
    bad: list[tuple[Path | ImageBytes, str]],
    root: Path,
    name: str,
    source: str,
    image_size: int | None = None,
    channels: int | None = None,
    strict: bool = False,
    in_memory: bool = True,
    memory_limit: int | None = None,
) -> ImageData:
    """Labelled image files (per split) as ImageData: the one decode path of folders, csv and parquet.

    files maps train/val/test to (file, label) lists whose headers are in headers; bad holds the
    files already found unreadable (named relative to root). Decoding adds the ones whose pixels
    turn out broken. Splits that would not fit in memory_limit bytes (None: the free memory) stay
    file lists, for the streaming loader.
    """
    if strict and bad:
        raise _refuse_bad_files(bad, root)
    notes: list[str] = []
    channels, image_size = _geometry(headers, image_size, channels, notes)
    in_memory = in_memory and _fits_in_memory(files, channels, image_size, memory_limit, notes)
    if in_memory:
        splits = {
            name: _decode_all(entries, channels, image_size, bad, f"reading {name} images")
            for name, entries in files.items()
        }
    else:
        splits = {
            name: Split(
                labels=torch.tensor([lb for _, lb in entries], dtype=torch.int64),
                files=[p for p, _ in entries],
            )
            for name, entries in files.items()
        }
    if strict and bad:
        raise _refuse_bad_files(bad, root)
    if bad:
        notes.insert(0, _skipped_note(bad, root))
    splits = {name: split for name, split in splits.items() if len(split) or name == "train"}
    counts = torch.bincount(splits["train"].labels, minlength=len(classes)).tolist()
    missing = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if missing:
        raise DataError(
            f"classes {first_few(missing)} have no readable training images in {root}: add some or remove the class"
        )
    if in_memory:
        mean, std = channel_stats(splits["train"].images)
    else:  # estimate from an even sample of the training files rather than decoding them all
        sample = splits["train"].files[:: max(1, len(splits["train"]) // STATS_SAMPLE)]
        sampled = _decode_all([(p, 0) for p in sample], channels, image_size, [], "sampling mean/std")
        mean, std = channel_stats(sampled.images)
    return ImageData(
        name=name,
        classes=classes,
        channels=channels,
        image_size=image_size,
        mean=mean,
        std=std,
        train=splits["train"],
        test=splits.get("test"),
        val=splits.get("val"),
        source=source,
        notes=notes,
    )

"""What a dataset holds: images per split and class, image shape, and pixel statistics.

convtrain data info cifar10 --json
python -c "from convtrain.data.dataset_registry import load_dataset; from convtrain.data.info import *; print(format_info(dataset_info(load_dataset('mnist'))))"
"""

from __future__ import annotations

import torch

from convtrain.data.dataset import ImageData, Split

CHUNK_PIXELS = 1 << 23  # values per step: the int32 copy stays at 32 MB whatever the image size


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 (N, C, H, W) images, on the 0-1 scale.

    Sums of pixel values and of their squares are exact integers (int64), taken over chunks of a
    bounded size: no float copy of the split is ever made."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.int64)
    total_sq = torch.zeros(channels, dtype=torch.int64)
    rows = max(1, CHUNK_PIXELS // max(1, images[0].numel())) if len(images) else 1
    for start in range(0, len(images), rows):
        x = images[start : start + rows].to(torch.int32)  # (B, C, H, W); 255**2 fits in int32
        total += x.sum(dim=(0, 2, 3), dtype=torch.int64)
        total_sq += x.square().sum(dim=(0, 2, 3), dtype=torch.int64)
    count = max(1, images.numel() // channels)
    mean = total.double() / count / 255
    std = (total_sq.double() / count / 255**2 - mean.square()).clamp_min(0).sqrt()
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


def _split_info(split: Split, classes: list[str]) -> dict:
    counts = torch.bincount(split.labels, minlength=len(classes)).tolist()
    return {"images": len(split), "per_class": dict(zip(classes, counts, strict=True))}


def dataset_info(data: ImageData) -> dict:
    """A JSON-ready summary: classes, shape, images per split and class, and pixel mean/std of train."""
    splits = {"train": data.train, "val": data.val, "test": data.test}
    info = {
        "name": data.name,
        "source": data.source,
        "classes": list(data.classes),
        "num_classes": data.num_classes,
        "image_shape": [data.channels, data.image_size, data.image_size],
        "normalize_mean": list(data.mean),
        "normalize_std": list(data.std),
        "splits": {
            name: _split_info(split, data.classes) for name, split in splits.items() if split is not None
        },
        "pixel_mean": None,
        "pixel_std": None,
        "notes": list(data.notes),
    }
    if data.train.images is not None:  # a streamed folder has only file names: decoding it all is not "info"
        mean, std = channel_stats(data.train.images)
        info["pixel_mean"], info["pixel_std"] = list(mean), list(std)
    return info


def _numbers(values: list[float] | None) -> str:
    return (
        " ".join(f"{v:.4f}" for v in values) if values is not None else "(not computed: images are streamed)"
    )


def format_info(info: dict) -> str:
    """dataset_info's dict as a readable text table."""
    c, h, w = info["image_shape"]
    split_names = list(info["splits"])
    lines = [
        f"dataset     {info['name']}",
        f"source      {info['source']}",
        f"images      {c}x{h}x{w} ({'gray' if c == 1 else 'RGB'}), {info['num_classes']} classes",
        f"pixel mean  {_numbers(info['pixel_mean'])}   (train, per channel, 0-1 scale)",
        f"pixel std   {_numbers(info['pixel_std'])}",
        f"normalize   mean {_numbers(info['normalize_mean'])}  std {_numbers(info['normalize_std'])}",
        "",
    ]
    width = max(len("class"), *(len(name) for name in info["classes"]))
    lines.append(f"{'class':<{width}}" + "".join(f"{name:>10}" for name in split_names))
    for name in info["classes"]:
        lines.append(
            f"{name:<{width}}" + "".join(f"{info['splits'][s]['per_class'][name]:>10}" for s in split_names)
        )
    lines.append(f"{'total':<{width}}" + "".join(f"{info['splits'][s]['images']:>10}" for s in split_names))
    lines += [f"note: {note}" for note in info["notes"]]
    return "\n".join(lines)

"""What a dataset holds: images per split and class, image shape, and pixel statistics.

convtrain data info cifar10 --json
python -c "from convtrain.data.registry import load_dataset; from convtrain.data.info import *; print(format_info(dataset_info(load_dataset('mnist'))))"
"""

from __future__ import annotations

import torch

from convtrain.data.dataset import ImageData, Split

CHUNK = 4096  # images per step: bounds the float64 copy to ~100 MB even at 3x64x64


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 (N, C, H, W) images, on the 0-1 scale."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), CHUNK):
        x = images[start : start + CHUNK].to(torch.float64) / 255  # (B, C, H, W)
        total += x.sum(dim=(0, 2, 3))
        total_sq += x.square().sum(dim=(0, 2, 3))
    count = images.numel() // channels
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
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

"""What a run writes and says as it starts: config.yaml and model.json (the model card) in its
folder, the TensorBoard writer, and the first line (device, precision, data, model, what was chosen).

    convtrain train --epochs 1      # the first line: device cpu (fp32, channels_last)  data mnist: ...
"""

from __future__ import annotations

import time
from typing import Any

import torch

from convtrain.base.version import __version__
from convtrain.config.train_config import TrainConfig
from convtrain.data.dataset import ImageData, Split
from convtrain.models.external import model_arguments, split_name
from convtrain.runs.run_dir import RunDir
from convtrain.system import distributed


def record_run(config: TrainConfig, run: RunDir, data: ImageData, weights_origin: dict) -> Any:
    """config.yaml and model.json into the run folder; returns the TensorBoard writer."""
    run.write_config(config)
    run.write_card(model_card(config, data, weights_origin))
    from torch.utils.tensorboard import SummaryWriter  # imports tensorboard (~1 s): only runs that record

    return SummaryWriter(log_dir=str(run.path))


def announce(
    *,
    config: TrainConfig,
    device: torch.device,
    channels_last: bool,
    data: ImageData,
    train_split: Split,
    val_split: Split,
    run: RunDir,
    chosen: list[str],
    notes: list[str],
    started: float,
) -> None:
    """The run's first line: where and how it trains, on what, what was chosen for it (the epochs),
    and where its folder is; then a line per note."""
    world_size = distributed.world()[2]
    print(
        f"device {device} ({config.precision}{', channels_last' if channels_last else ''}"
        f"{', compiled' if config.compile else ''}{f', {world_size} processes' if world_size > 1 else ''})  "
        f"data {data.name}: {len(train_split)} train / {len(val_split)} val"
        f"{f' / {len(data.test)} test' if data.test is not None else ''} images, {data.num_classes} classes "
        f"[{time.perf_counter() - started:.1f}s]  model {config.model}"
        + "".join(f", {words}" for words in chosen)
        + f"  run folder {run.path}"
        + "".join(f"\n{line}" for line in notes if line),
        flush=True,
    )


def model_card(config: TrainConfig, data: ImageData, weights: dict[str, Any] | None = None) -> dict[str, Any]:
    """model.json: what rebuilds the network and preprocesses its input. A timm/torchvision model adds
    its source, name and builder arguments; a warm start adds where its weights came from."""
    external = split_name(config.model)
    library = (
        {
            "source": external[0],
            "name": external[1],
            "arguments": model_arguments(config.model, data.channels, data.num_classes, data.image_size),
        }
        if external
        else {}
    )
    return {
        "architecture": config.model,
        "classes": list(data.classes),
        "in_channels": data.channels,
        "image_size": data.image_size,
        "mean": list(data.mean),
        "std": list(data.std),
        "dataset": data.name,
        "dataset_source": data.source,
        "convtrain_version": __version__,
        **library,
        **({"weights": weights} if weights else {}),
    }

"""Warm starts: weights from a library's cache, from a file, or from an earlier convtrain run.

    --pretrained              the library's weights for timm:NAME / torchvision:NAME (config value 'library'),
                              read from its local cache: the Hugging Face hub cache for timm, torch hub's
                              checkpoints folder for torchvision; downloaded only with --download and network
    --pretrained PATH         a .safetensors, .pth or .pt file (read with weights_only=True)
    --init-from RUN[:last]    a convtrain run's best.pt (or last.pt), same architecture

Tensors are matched by name as timm does: a head of another shape keeps its fresh initialisation (so
does a head trained on other classes, when the source's classes are known), a 3-channel stem is summed
to 1 channel for gray data (a gray one repeated for RGB), and anything else that does not match is
refused, naming the first mismatched tensors. The source's normalisation (its mean/std) becomes the
run's; the model card records where the weights came from.

    convtrain train --model timm:resnet10t --dataset npz:photos.npz --pretrained
    convtrain train --model timm:resnet10t --dataset mnist --pretrained fashion.safetensors
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convtrain.base.errors import CheckpointError, ConfigError, reason
from convtrain.config.train_config import PRETRAINED_LIBRARY, TrainConfig
from convtrain.data.dataset import ImageData
from convtrain.models.external import TIMM_INSTALL, first_conv_name, split_name, timm_module
from convtrain.models.heads import head_keys
from convtrain.runs.run_dir import RunDir


@dataclass(frozen=True)
class Source:
    """Weights to start from, with what is known about how they were trained."""

    state: dict[str, torch.Tensor]
    origin: dict[str, Any]  # recorded in model.json under 'weights'
    mean: tuple[float, ...] | None = None  # None: keep the dataset's normalisation
    std: tuple[float, ...] | None = None
    classes: list[str] | None = None  # the source's class names, when known


@dataclass(frozen=True)
class LibraryWeights:
    """Where a library keeps one model's pretrained weights, and how they expect their input."""

    source: str  # timm or torchvision
    name: str  # hub repo or weights enum, e.g. timm/resnet10t.c3_in1k
    filename: str
    folder: Path  # torch hub checkpoints folder, or the Hugging Face hub cache
    url: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int
    fixed_size: bool  # the network only takes input_size (position embeddings)


# ----- where the library keeps its weights -----


def library_weights(model: str) -> LibraryWeights:
    """The pretrained weights timm or torchvision has for `model`, or a one-line error if none."""
    parts = split_name(model)
    if parts is None:
        raise ConfigError(
            f"--pretrained without a file takes a library's weights, so --model must be timm:NAME or torchvision:NAME, "
            f"not {model!r}; pass --pretrained PATH or --init-from RUN_DIR for {model}"
        )
    source, arch = parts
    if source == "timm":
        cfg = timm_module().models.get_pretrained_cfg(arch)
        if cfg is None or not cfg.hf_hub_id:
            raise ConfigError(
                f"timm has no pretrained weights for {arch!r}; `convtrain models --source timm --pretrained-only` "
                "lists those that have, or pass --pretrained PATH"
            )
        filename = cfg.hf_hub_filename or "model.safetensors"
        repo = cfg.hf_hub_id.split("@")[0]
        return LibraryWeights(
            "timm",
            repo,
            filename,
            _hf_cache(),
            f"https://huggingface.co/{repo}/resolve/main/{filename}",
            tuple(cfg.mean),
            tuple(cfg.std),
            int(cfg.input_size[-1]),
            bool(cfg.fixed_input_size),
        )
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError, AttributeError):
        raise ConfigError(
            f"torchvision has no pretrained weights for {arch!r}; pass --pretrained PATH"
        ) from None
    transform = weights.transforms()
    return LibraryWeights(
        "torchvision",
        f"{type(weights).__name__}.{weights.name}",
        weights.url.rsplit("/", 1)[-1],
        Path(torch.hub.get_dir()) / "checkpoints",
        weights.url,
        tuple(transform.mean),
        tuple(transform.std),
        int(transform.crop_size[0]),
        arch.startswith("vit_"),
    )


def _hf_cache() -> Path:
    # read at call time (huggingface_hub reads its constants once, at import)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = (
        os.environ.get("HF_HOME")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    )
    return Path(home) / "hub"


def library_file(weights: LibraryWeights, download: bool) -> Path:
    """The cached weights file; downloaded first only when allowed. No file: an error naming it and where."""
    place = (
        f"place {weights.filename} from {weights.url} in {weights.folder}"
        if weights.source == "torchvision"
        else f"fill the cache with `hf download {weights.name} {weights.filename} --cache-dir {weights.folder}`"
    )
    missing = f"no cached {weights.source} weights {weights.name} ({weights.filename}); {place} on a machine with network, or pass --pretrained PATH"
    if weights.source == "torchvision":
        path = weights.folder / weights.filename
        if not path.is_file():
            if not download:
                raise CheckpointError(missing + " (downloads are off: --no-download)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(weights.url, str(path), progress=False)
            except Exception as error:  # no network: URLError, socket errors, HTTP errors
                raise CheckpointError(f"{missing} (download failed: {reason(error)[:120]})") from None
        return path
    import huggingface_hub

    cached = huggingface_hub.try_to_load_from_cache(weights.name, weights.filename, cache_dir=weights.folder)
    if isinstance(cached, str):
        return Path(cached)
    if not download:
        raise CheckpointError(missing + " (downloads are off: --no-download)")
    try:
        return Path(huggingface_hub.hf_hub_download(weights.name, weights.filename, cache_dir=weights.folder))
    except Exception as error:  # offline, no such file, hub unreachable
        raise CheckpointError(f"{missing} (download failed: {reason(error)[:120]})") from None


# ----- reading sources -----


def read_weights_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(state_dict, convtrain model card or None) from a .safetensors, .pth/.pt or .bin file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist; pass a .safetensors or .pth file")
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open
            from safetensors.torch import load_file
        except ImportError:
            raise ConfigError(f"reading .safetensors needs safetensors: {TIMM_INSTALL}") from None
        try:
            with safe_open(str(path), framework="pt") as handle:
                card_text = (handle.metadata() or {}).get("convtrain_model_card")
            return load_file(str(path)), json.loads(card_text) if card_text else None
        except Exception as error:  # corrupt header, truncated file, bad JSON
            raise CheckpointError(f"weights file {path} is unreadable ({reason(error)[:120]})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never runs code from the file
    except Exception as error:
        raise CheckpointError(
            f"weights file {path} is unreadable or holds more than tensors ({reason(error)[:120]}); "
            "pass a state_dict saved with torch.save or a .safetensors file"
        ) from None
    for key in ("model", "state_dict"):  # a convtrain checkpoint, or a Lightning-style one
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"weights file {path} is not a state_dict of tensors")
    return state, None


def pretrained_source(config: TrainConfig) -> Source:
    """The weights --pretrained names: the library's (cached) or a file."""
    if config.pretrained == PRETRAINED_LIBRARY:
        weights = library_weights(config.model)
        path = library_file(weights, config.download)
        state, _ = read_weights_file(path)
        origin = {"from": "library", "source": weights.source, "weights": weights.name, "file": str(path)}
        return Source(state, origin, weights.mean, weights.std)
    state, card = read_weights_file(config.pretrained)
    origin = {"from": "file", "file": str(config.pretrained)}
    if card:  # a `convtrain export --format safetensors` file knows its normalisation and classes
        return Source(state, origin, tuple(card["mean"]), tuple(card["std"]), list(map(str, card["classes"])))
    return Source(state, origin)


def run_source(spec: str, model: str) -> Source:
    """--init-from RUN_DIR[:last]: the run's best.pt (or last.pt), refused for another architecture."""
    folder, _, which = spec.rpartition(":")
    if which not in ("best", "last") or not folder:
        folder, which = spec, "best"
    run = RunDir(folder)
    card = run.card
    if card["architecture"] != model:
        raise ConfigError(
            f"--init-from {folder} holds a {card['architecture']} run, not {model}; "
            f"pass --model {card['architecture']} or a run of {model}"
        )
    state = run.load_state(which)
    weights = state["ema"] if state.get("ema") is not None else state["model"]
    origin = {"from": "run", "run": str(run.path), "file": str(run.weights_path(which))}
    return Source(weights, origin, tuple(card["mean"]), tuple(card["std"]), list(card["classes"]))


# ----- loading into the network -----


def load_matching(model: nn.Module, source: Source, classes: list[str], where: str) -> dict[str, str]:
    """Copy the source's tensors into `model` by name; returns what was adapted (head, stem)."""
    own = model.state_dict()
    head = head_keys(model)
    stem = f"{first_conv_name(model)}.weight"
    keep_head = source.classes is None or source.classes == classes  # other classes: a fresh head
    loaded, notes, mismatched = {}, {}, []
    for key, mine in own.items():
        theirs = source.state.get(key)
        if key in head:
            if keep_head and theirs is not None and theirs.shape == mine.shape:
                loaded[key] = theirs
            continue
        if theirs is None and key.endswith("num_batches_tracked"):
            continue  # older checkpoints lack this counter; it steers nothing once momentum is set
        if theirs is None:
            mismatched.append(f"{key} (missing)")
        elif theirs.shape == mine.shape:
            loaded[key] = theirs
        elif (
            key == stem
            and theirs.dim() == 4
            and theirs.shape[0] == mine.shape[0]
            and theirs.shape[2:] == mine.shape[2:]
        ):
            loaded[key] = adapt_stem(theirs, mine.shape[1])
            notes["stem"] = f"{theirs.shape[1]} input channels adapted to {mine.shape[1]}"
        else:
            mismatched.append(f"{key} {tuple(theirs.shape)} in the file, {tuple(mine.shape)} here")
    mismatched += [f"{key} (unexpected)" for key in source.state if key not in own and key not in head]
    if mismatched:
        raise CheckpointError(
            f"{where} does not fit this {type(model).__name__}: {', '.join(mismatched[:3])}"
            f"{f' and {len(mismatched) - 3} more' if len(mismatched) > 3 else ''}; pick the matching --model"
        )
    model.load_state_dict({**own, **loaded})
    notes["head"] = "loaded" if head <= loaded.keys() else "re-initialised"
    return notes


def adapt_stem(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A first-conv weight (O, I, kh, kw) for another input channel count, as timm does: RGB summed
    to gray (the same response to a gray image), gray repeated over RGB and divided by 3."""
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)  # (O, 1, kh, kw)
    if weight.shape[1] == 1:
        return weight.repeat(1, in_channels, 1, 1) / in_channels  # (O, C, kh, kw)
    raise CheckpointError(f"cannot adapt a {weight.shape[1]}-channel stem to {in_channels} channels")


def _per_channel(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    if len(values) == channels:
        return tuple(values)
    if channels == 1:  # gray data into an RGB-trained network: the stem was summed, use the channel mean
        return (sum(values) / len(values),)
    return tuple(values) * channels if len(values) == 1 else tuple(values)


def input_size(config: TrainConfig) -> TrainConfig:
    """The library weights' input size, for networks that take only that size, unless --image-size is given."""
    if config.pretrained != PRETRAINED_LIBRARY or config.image_size or config.resume:
        return config
    weights = library_weights(config.model)
    return config.replace(image_size=weights.input_size) if weights.fixed_size else config


def warm_start(model: nn.Module, data: ImageData, config: TrainConfig, run: RunDir) -> tuple[ImageData, dict]:
    """Load --pretrained / --init-from weights into `model`. Returns the data with the source's
    normalisation and the model card's 'weights' record ({} for a fresh start)."""
    if config.resume:  # last.pt holds the weights; the normalisation is the one the run started with
        card = run.card
        return dataclasses.replace(data, mean=tuple(card["mean"]), std=tuple(card["std"])), card.get(
            "weights", {}
        )
    if not (config.pretrained or config.init_from):
        return data, {}
    source = run_source(config.init_from, config.model) if config.init_from else pretrained_source(config)
    notes = load_matching(model, source, list(data.classes), source.origin["file"])
    if source.mean is not None and config.normalize:
        data = dataclasses.replace(
            data, mean=_per_channel(source.mean, data.channels), std=_per_channel(source.std, data.channels)
        )
    return data, {**source.origin, **notes}

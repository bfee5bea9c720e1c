"""Resolve once: every option a TrainConfig leaves to convtrain ('auto', or unset for the model's own)
becomes a value here, in a new config, and nothing downstream decides again.

    config = resolve(config, device, data, train_images=len(train_split))

What is resolved, and from what:
- batch_size, lr, momentum, weight_decay, label_smoothing left unset: the model's own training
  options, else the generic ones (adam/adamw: lr 1e-3) -- config.with_model_defaults;
- precision 'auto': bf16 on a CUDA GPU that supports it, and on a CPU with bf16 matrix units (AMX,
  AVX512-BF16) for a model registered as gaining from them (cpu_bf16); else fp32. The first line
  says which and why (system/runtime.py: choose_precision);
- (image_size unset for a pretrained library network that takes one input size only, or for any
  timm/torchvision network is its input size, chosen before the data is read, in the set-up,
  since the data is read at it: warm_start.input_size, epochs_and_size.library_size);
- epochs unset: 2, or more for a small dataset: at least 40 optimizer steps and 48,000 images seen;
  augment unset: translate:2 (and flip for RGB) up to 2,000 training images, else none
  (the small-data rule, training/epochs_and_size.py);
- batch_size 'auto': the largest batch a training step fits in GPU memory, at most 4x the model's
  own batch (system/batchsize.py), probed on a fresh copy of the network; on the CPU a size that
  keeps the cores busy;
- compile 'auto': torch.compile on a CUDA GPU, eager elsewhere (on the CPU, compiled fastnets trained
  slower than eager ones: BENCHMARKS.md, "compile on the CPU").
"""

from __future__ import annotations

import torch

from convtrain.config.train_config import TrainConfig, with_model_defaults
from convtrain.data.dataset import ImageData
from convtrain.models import build_model, gains_from_cpu_bf16
from convtrain.system.batchsize import find_batch_size
from convtrain.system.runtime import choose_precision
from convtrain.training.epochs_and_size import resolve_augment, resolve_epochs


def resolve(
    config: TrainConfig, device: torch.device, data: ImageData, train_images: int
) -> tuple[TrainConfig, list[str]]:
    """The config with no 'auto' and no unset training option left (the caller's is not changed), and
    what the run's first line says about the choices it made (precision, epochs)."""
    own_batch = with_model_defaults(config.replace(batch_size=None)).batch_size  # the model's own
    config = with_model_defaults(config)
    precision, precision_note = auto_precision(config, device)
    config = config.replace(precision=precision)
    compile_note = ""
    if config.compile == "auto":
        config = config.replace(compile=device.type == "cuda")
        compile_note = (
            "" if config.compile else "not compiled (auto: compiled on a CUDA GPU only; --compile to choose)"
        )
    if config.batch_size == "auto":
        size, why = _probe_batch_size(config, device, data, train_images, own_batch)
        config = config.replace(batch_size=size)
        print(f"batch size auto: {size} ({why})", flush=True)
    config, epochs_note = resolve_epochs(config, train_images, config.batch_size)
    config, augment_note = resolve_augment(config, train_images, data.channels)
    return config, [note for note in (precision_note, compile_note, epochs_note, augment_note) if note]


def auto_precision(config: TrainConfig, device: torch.device) -> tuple[str, str]:
    """(precision, why) for the config's model on the device: 'auto' resolved, a given one kept
    (why '' then). Training and the data check's fold models resolve it here alike."""
    return choose_precision(config.precision, device, config.model, gains_from_cpu_bf16(config.model))


def _probe_batch_size(
    config: TrainConfig, device: torch.device, data: ImageData, train_images: int, own_batch: int
) -> tuple[int, str]:
    """(size, why): probed on a fresh copy of the network, so training's own starts untouched."""
    probe = None
    if device.type == "cuda":  # on the CPU there is no memory wall to probe: no network needed
        probe = build_model(config.model, data.channels, data.num_classes, data.image_size).to(device)
    return find_batch_size(probe, data, device, config.precision, train_images, own_batch)

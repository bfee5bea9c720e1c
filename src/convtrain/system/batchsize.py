"""`--batch-size auto`: the largest batch whose forward and backward pass fit in GPU memory."""

from __future__ import annotations

import torch
from torch import nn

from convtrain.system.runtime import autocast

CPU_BATCH_SIZE = 256  # no memory wall worth probing on the CPU: a size that keeps the cores busy


def find_batch_size(model: nn.Module, data, device: torch.device, precision: str, train_images: int) -> int:
    """Double the batch from 32 until a training step runs out of memory; keep the last that fit."""
    limit = max(1, min(train_images, 8192))
    if device.type != "cuda":
        return min(CPU_BATCH_SIZE, limit)
    fits, size = 0, 32
    state = {k: v.clone() for k, v in model.state_dict().items()}
    while size <= limit:
        try:
            x = torch.randn(size, data.channels, data.image_size, data.image_size, device=device)
            with autocast(precision, device):
                loss = model(x).float().logsumexp(1).mean()
            loss.backward()
            fits = size
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
        size *= 2
    model.load_state_dict(state)  # the probe's BatchNorm statistics must not leak into training
    if fits == 0:
        raise torch.cuda.OutOfMemoryError("even a batch of 32 images does not fit in GPU memory")
    return fits // 2 if fits >= 64 else fits  # headroom for optimizer state and augmentation

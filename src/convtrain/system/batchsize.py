"""`--batch-size auto`: the largest batch whose training step fits on the GPU, within a limit set by
the model's own batch size.

The rule: double the batch from 32 while a forward and backward pass runs; halve the last one that
ran (headroom for the optimizer state and augmentation); and never go past MAX_MULTIPLE times the
model's own batch. The learning rate stays the model's own, which is tuned for its own batch: a
batch 16 times as large would take 16 times fewer steps at that rate and end less accurate.

    find_batch_size(model, data, torch.device("cuda"), "bf16", 50000, own_batch=512)  # -> (size, note)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from convtrain.base.errors import first_line
from convtrain.system.runtime import autocast

CPU_BATCH_SIZE = 256  # no memory wall worth probing on the CPU: a size that keeps the cores busy
MAX_MULTIPLE = 4  # the chosen batch is at most this many times the model's own batch size
LARGEST_PROBE = 8192
# RuntimeErrors that mean "this batch is too big" rather than a fault: memory, and the cuDNN status
# errors and 32-bit index limits that huge batches hit before memory runs out.
TOO_BIG = ("out of memory", "cudnn_status", "cudnn error", "32-bit index", "canuse32bitindexmath", "int32")


def find_batch_size(
    model: nn.Module, data, device: torch.device, precision: str, train_images: int, own_batch: int
) -> tuple[int, str]:
    """(batch size, a note on what limited it)."""
    cap = MAX_MULTIPLE * own_batch
    if device.type != "cuda":
        size = min(CPU_BATCH_SIZE, cap, max(1, train_images))
        return size, f"the CPU's {CPU_BATCH_SIZE}, at most {MAX_MULTIPLE}x the model's own {own_batch}"
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        fits, failure = largest_fitting(
            lambda size: _training_pass(model, data, device, precision, size),
            max(1, min(train_images, LARGEST_PROBE, 2 * cap)),
        )
    finally:
        model.load_state_dict(state)  # the probe's BatchNorm statistics must not leak into training
    if fits == 0:
        raise torch.cuda.OutOfMemoryError(f"even the smallest batch does not fit on the GPU: {failure}")
    size = min(fits // 2 if fits >= 64 else fits, cap)  # headroom for optimizer state and augmentation
    why = f"{fits} ran, halved for headroom" + (f"; {2 * fits} failed: {failure}" if failure else "")
    if size == cap:
        why = f"capped at {MAX_MULTIPLE}x the model's own batch of {own_batch}, whose lr it keeps"
    return size, why


def largest_fitting(try_batch: Callable[[int], None], limit: int) -> tuple[int, str]:
    """Double the batch from 32 (or `limit`, if smaller) while try_batch(size) runs and size <= limit.
    Returns (the largest that ran, 0 if none; why the next did not, '' when the limit stopped it).
    Errors that do not say "too big" (see TOO_BIG) are faults, and propagate."""
    fits, size = 0, min(32, limit)
    while size <= limit:
        try:
            try_batch(size)
        except RuntimeError as error:  # torch.cuda.OutOfMemoryError is one too
            message = first_line(error)
            if not isinstance(error, torch.cuda.OutOfMemoryError) and not too_big(message):
                raise
            return fits, message[:160]
        fits = size
        size *= 2
    return fits, ""


def too_big(message: str) -> bool:
    return any(marker in message.lower() for marker in TOO_BIG)


def _training_pass(model: nn.Module, data, device: torch.device, precision: str, size: int) -> None:
    try:
        x = torch.randn(size, data.channels, data.image_size, data.image_size, device=device)
        with autocast(precision, device):
            loss = model(x).float().logsumexp(1).mean()
        loss.backward()
        torch.cuda.synchronize(device)  # an asynchronous failure surfaces here, inside the probe
    finally:
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()

"""Where and how the math runs: device choice, mixed precision, memory format, seeding.

>>> from convtrain.system.runtime import pick_device
>>> pick_device("auto")   # CUDA, then MPS, then CPU
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import numpy as np
import torch

from convtrain.base.errors import ConfigError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str) -> torch.device:
    """Resolve 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' to a device that exists here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} asked for, but no CUDA GPU is visible; use --device cpu or auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError("device 'mps' asked for, but MPS is not available; use --device cpu or auto")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return device


CPU_UNITS_ENV = "CONVTRAIN_CPU_BF16_UNITS"  # none, AVX512-BF16 or AMX: what auto believes the CPU has
CPU_UNITS = ("AMX", "AVX512-BF16")


def cpu_bf16_units() -> str | None:
    """The bf16 matrix units this CPU has, as torch reports them: 'AMX', 'AVX512-BF16' or None.

    Asked at run time, never read from the processor's name. (torch.ops.mkldnn's bf16 query says
    only that bf16 runs at all: oneDNN emulates it on any AVX-512 CPU, at a fraction of fp32's speed.)
    $CONVTRAIN_CPU_BF16_UNITS (none, AVX512-BF16 or AMX) answers instead of torch: the test suite runs
    under each value so that what `--precision auto` picks on every CPU kind is tried on any one.
    """
    faked = os.environ.get(CPU_UNITS_ENV)
    if faked is not None:
        if faked == "none":
            return None
        if faked not in CPU_UNITS:
            raise ConfigError(
                f"{CPU_UNITS_ENV}={faked!r} is not a CPU kind; use none, AVX512-BF16 or AMX, or unset it"
            )
        return faked
    for unit, query in zip(CPU_UNITS, ("_is_amx_tile_supported", "_is_avx512_bf16_supported"), strict=True):
        if getattr(torch.cpu, query, lambda: False)():
            return unit
    return None


def choose_precision(
    precision: str, device: torch.device, model: str = "", cpu_bf16: bool = False
) -> tuple[str, str]:
    """(precision, why) for the run's first line: 'auto' becomes bf16 on a CUDA GPU that supports
    it, and on a CPU with bf16 units for a model measured to gain from them (cpu_bf16); else fp32.
    A given precision stays, and why is '' then."""
    if precision != "auto":
        return precision, ""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "bf16 (auto: the GPU has bf16; --precision fp32 to choose)"
        return "fp32", "fp32 (auto: the GPU has no bf16)"
    if device.type != "cpu":
        return "fp32", "fp32 (auto)"
    units = cpu_bf16_units()
    if units is None:
        return "fp32", "fp32 (auto: this CPU has no bf16 matrix units)"
    if not cpu_bf16:
        return (
            "fp32",
            f"fp32 (auto: {model or 'this model'} is not measured to gain from the CPU's {units} bf16 units)",
        )
    return (
        "bf16",
        f"bf16 (auto: this CPU has {units} bf16 units and {model} gains from them; --precision fp32 to choose)",
    )


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse combinations that cannot run, before any work starts."""
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("precision fp16 needs a GPU; on the CPU use --precision bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU does not support bf16; use --precision fp16 or fp32")


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """One autocast path for every precision: a no-op context for fp32."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A scaler that only acts for fp16; for fp32/bf16 it is a pass-through."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def use_channels_last(setting: str, device: torch.device, precision: str) -> bool:
    """auto: on for the CPU (every zoo model trains 1.00x-1.52x as fast as NCHW there, BENCHMARKS.md)
    and for GPUs with reduced precision (tensor cores); off for MPS and fp32 GPUs."""
    if setting == "auto":
        return device.type == "cpu" or (device.type == "cuda" and precision != "fp32")
    return setting == "on"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, torch.Tensor]:
    """Every RNG the training loop draws from, as tensors (safe for weights_only loading)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restore rng_state(). torch takes only CPU byte tensors, wherever the checkpoint was loaded."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        states = [s.cpu() for s in state["cuda"]]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings measure the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def backend_settings(deterministic: bool, device: torch.device) -> Iterator[None]:
    """cuDNN and determinism for one run, put back as they were when it ends.

    deterministic: torch's deterministic algorithms (an op that has none raises instead of running
    nondeterministically), cuDNN's benchmark off and its deterministic convolutions on, and the
    cuBLAS workspace setting that cuBLAS needs for repeatable results (it must be in the environment
    before the first matrix product on the GPU). Otherwise, on CUDA, cuDNN benchmarks the
    convolution algorithms once per input shape and keeps the fastest: the setting airbench uses.
    """
    cudnn = torch.backends.cudnn
    previous = (torch.are_deterministic_algorithms_enabled(), cudnn.benchmark, cudnn.deterministic)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        cudnn.benchmark, cudnn.deterministic = False, True
    elif device.type == "cuda":
        cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        cudnn.benchmark, cudnn.deterministic = previous[1], previous[2]

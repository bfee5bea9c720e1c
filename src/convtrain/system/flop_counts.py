"""How much arithmetic a run does, and how close it comes to what the machine can do.

- training_flops_per_image: the FLOPs of one training step (forward and backward) per image,
  counted once with torch.utils.flop_counter on a small batch;
- measured_peak: the machine's dense matmul rate in a precision, measured by a short probe and
  cached per machine (processor, its flags, threads, torch version), so it is measured once;
- datasheet_peak: a GPU's published dense peak, for the GPUs convtrain is run on.

    flops = training_flops_per_image(model, (1, 28, 28), device)
    peak = measured_peak(device, "fp32", cache_dir)        # {"flops": 3.4e11, "probe": "matmul 2048", ...}
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convtrain.base.atomic_files import write_json_atomic
from convtrain.system.runtime import AUTOCAST_DTYPES, synchronize

PROBE_SIDE = 2048  # matmul (2048 x 2048) @ (2048 x 2048): 17.2 GFLOP, large enough to reach the peak
PROBE_SECONDS = 0.5  # time spent measuring, after one warm-up product
PROBE_STEP_SECONDS = 0.05  # a product slower than this stops the side from growing
PEAK_FILE = "peak_flops.json"

# Dense tensor-core peaks from the vendors' datasheets (FLOP/s, without sparsity), by device name.
DATASHEET_PEAKS = {
    "H100": {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12},
    "H200": {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12},
    "A100": {"fp32": 19.5e12, "bf16": 312e12, "fp16": 312e12},
}


def training_flops_per_image(
    model: nn.Module, input_shape: tuple[int, int, int], device: torch.device, batch: int = 2
) -> float:
    """FLOPs of a forward and backward pass, per image (a throwaway copy of the model is measured,
    so its BatchNorm statistics and gradients are left as they were)."""
    probe = copy.deepcopy(model).to(device).train()
    x = torch.randn(batch, *input_shape, device=device)  # (B, C, H, W)
    with FlopCounterMode(display=False) as counter:
        probe(x).float().sum().backward()
    return counter.get_total_flops() / batch


def machine_key(device: torch.device, precision: str) -> str:
    """What a measured peak belongs to: the processor and its flags (or the GPU), threads, torch."""
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = _cpu_description()
    text = f"{device.type}|{what}|threads {torch.get_num_threads()}|torch {torch.__version__}|{precision}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cpu_description() -> str:
    """The processor's model name and feature flags (Linux: /proc/cpuinfo), else platform's words."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    found = {}
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags") and key not in found:
            found[key] = value.strip()
    return f"{found.get('model name', platform.machine())} [{found.get('flags', '')}]"


def measured_peak(
    device: torch.device, precision: str, cache_dir: str | Path, at_least: float = 0.0
) -> dict[str, Any]:
    """The machine's dense matmul FLOP/s in `precision`, from the cache when this machine (same
    key) was measured before, else measured now (about a second) and cached. A cached peak below
    `at_least` (a run went faster than it: it was measured while the machine was busy) is measured
    again, and the larger value kept."""
    path = Path(cache_dir).expanduser() / PEAK_FILE
    key = machine_key(device, precision)
    cached = _read(path)
    if key in cached and cached[key].get("flops", 0) >= at_least:
        return cached[key]
    before = cached.get(key, {}).get("flops", 0.0)
    entry = {
        "flops": max(before, probe_matmul(device, precision)),
        "probe": f"matmul, side up to {PROBE_SIDE}",
        "device": str(device),
        "precision": precision,
        "threads": torch.get_num_threads(),
        "measured": time.strftime("%Y-%m-%d"),
    }
    write_json_atomic(path, {**_read(path), key: entry})
    return entry


def _read(path: Path) -> dict[str, Any]:
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):  # missing or damaged: measured again
        return {}
    return values if isinstance(values, dict) else {}


def probe_matmul(device: torch.device, precision: str, side: int = PROBE_SIDE) -> float:
    """FLOP/s of square matmuls in the precision's dtype, best of repeated products. The side grows
    from 256 while one product takes under PROBE_STEP_SECONDS, up to `side`: a dtype the processor
    has no fast kernels for (fp16 on most CPUs) is measured small instead of taking minutes."""
    dtype = AUTOCAST_DTYPES.get(precision, torch.float32)
    size = min(256, side)
    while True:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        a @ b  # warm-up: kernel choice, allocation
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        if size >= side or time.perf_counter() - start > PROBE_STEP_SECONDS:
            break
        size *= 2
    best, deadline = float("inf"), time.perf_counter() + PROBE_SECONDS
    while time.perf_counter() < deadline or best == float("inf"):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def datasheet_peak(device: torch.device, precision: str) -> float | None:
    """The GPU's published dense peak in `precision`, when its name is in DATASHEET_PEAKS."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for model, peaks in DATASHEET_PEAKS.items():
        if model in name:
            return peaks.get(precision)
    return None


def arithmetic_summary(
    flops_per_image: float,
    images_per_second: float,
    device: torch.device,
    precision: str,
    cache_dir: str | Path,
) -> dict[str, float]:
    """The numbers results.json's timings keep: FLOPs per image, achieved FLOP/s, the measured peak
    and the fraction of it (and of the datasheet's peak on a known GPU)."""
    achieved = flops_per_image * images_per_second
    peak = measured_peak(device, precision, cache_dir, at_least=achieved)["flops"]
    values = {
        "train_flops_per_image": round(flops_per_image),
        "achieved_flops": round(achieved),
        "peak_flops": round(peak),
        "fraction_of_peak": round(achieved / peak, 4),
    }
    sheet = datasheet_peak(device, precision)
    if sheet:
        values["fraction_of_datasheet_peak"] = round(achieved / sheet, 4)
    return values


def format_arithmetic(values: dict[str, float]) -> str:
    """'126.3 GFLOP/s, 37% of the machine's peak (339 GFLOP/s)' ('' without the figures); the peak
    is the matmul probe's, in the run's precision."""
    if "achieved_flops" not in values:
        return ""
    return (
        f"{values['achieved_flops'] / 1e9:.1f} GFLOP/s, {100 * values['fraction_of_peak']:.0f}% of the "
        f"machine's peak ({values['peak_flops'] / 1e9:.0f} GFLOP/s)"
    )

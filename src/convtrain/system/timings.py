"""Where a run's time goes: start-up, data, model, first step, training, validation, checkpoints,
test, arithmetic (FLOPs and the machine's peak), pictures. Kept as `timings` in results.json, shown in the report and the CLI's last line.

    timings = Timings(); with timings.measure("data"): load(); timings.seconds["data"]

The phases are measured around whole pieces of work (an epoch, a checkpoint write), never per step,
so the bookkeeping costs nothing measurable. On a GPU, the epoch's closing .item() is a sync point,
so work queued on the device is counted in the phase that queued it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from convtrain.system.flop_counts import format_arithmetic

PHASES = (
    "startup",  # process start -> training called: Python, torch and convtrain imports, argument parsing
    "setup",  # device, run folder claim, loaders, TensorBoard, config.yaml and model.json
    "data",  # reading, decoding and splitting the dataset, moving it to the device
    "model",  # building, initialising (and fitting) the network; the optimizer (imports torch._dynamo)
    "first_step",  # the first optimizer step: lazy imports (torch._dynamo), kernel selection, allocation
    "training",  # every other training step
    "validation",  # the per-epoch evaluations (and --eval-before)
    "checkpoints",  # best.pt, last.pt, metrics.csv
    "test",  # the final test evaluation
    "arithmetic",  # FLOPs per training image counted; the machine's peak probed (once per machine)
    "pictures",  # plots/*.png and report.html
)


class Timings:
    """Seconds per phase, summed over every time a phase is measured."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.started = time.perf_counter()

    @contextmanager
    def measure(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds

    def as_dict(self) -> dict[str, float]:
        """Every phase, the total since training was called, and the process's age at that point."""
        values = {phase: round(seconds, 4) for phase, seconds in self.seconds.items()}
        values["total"] = round(self.seconds["startup"] + time.perf_counter() - self.started, 4)
        return values


def seconds_since_process_start() -> float:
    """How long this process has run (Linux: from /proc; elsewhere 0, unknown)."""
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])  # starttime, field 22
        uptime = float(open("/proc/uptime").read().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def format_timings(values: dict[str, float]) -> str:
    """'time 41.2s: startup 7.1s, data 1.3s, ...' for the phases that took at least 0.05 s, then the
    training arithmetic when the run has it ('; training 126.3 GFLOP/s, 37% of the machine's peak ...')."""
    shown = ", ".join(f"{p.replace('_', ' ')} {values[p]:.1f}s" for p in PHASES if values.get(p, 0) >= 0.05)
    arithmetic = format_arithmetic(values)
    return f"time {values.get('total', 0.0):.1f}s: {shown}" + (
        f"; training {arithmetic}" if arithmetic else ""
    )

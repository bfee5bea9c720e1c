"""The default run: a bare `convtrain train` as a new user starts it, in a fresh process per seed.

What `make train` runs, with the venv ready: the default model on the bundled MNIST, plots and the
report included. Each seed is a whole process (`convtrain train --seed S`), timed from start to exit;
the run's own timings (results.json) say where the time went.

    python -m benchmarks.run --only default_run [--quick]
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import CPU_PRECISION, REPO, scratch_dir, table

SEEDS = 3
PHASES = ("startup", "data", "model", "training", "validation", "test", "pictures")


def convtrain_command() -> list[str]:
    """The console script beside this interpreter (what a user types), else `python -m convtrain`."""
    script = Path(sys.executable).with_name("convtrain")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "convtrain"]


def one_process(seed: int, tmp: Path, quick: bool) -> dict:
    out = tmp / f"seed-{seed}"
    command = [*convtrain_command(), "train", "--seed", str(seed), "--out", str(out), "--quiet"]
    if quick:
        command += ["--epochs", "1", "--limit-train", "2000"]
    if CPU_PRECISION["which"] != "fp32":  # a bare run is fp32; auto picks bf16 where the CPU pays
        command += ["--precision", CPU_PRECISION["which"]]
    # An empty data folder: MNIST comes from the copy bundled with convtrain, as on a fresh machine.
    env = {**os.environ, "CONVTRAIN_DATA": str(tmp / "data"), "PYTHONPATH": str(REPO / "src")}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"convtrain train exited with {done.returncode}: {done.stderr[-500:]}")
    results = json.loads((out / "results.json").read_text())
    with open(out / "metrics.csv", newline="") as metrics:
        val = max(float(row["val_acc"]) for row in csv.DictReader(metrics))
    return {"wall": wall, "test_acc": results["test_acc"], "val_acc": val, "timings": results["timings"]}


def run(quick: bool = False) -> str:
    seeds = 1 if quick else SEEDS
    precision = f" --precision {CPU_PRECISION['which']}" if CPU_PRECISION["which"] != "fp32" else ""
    title = (
        f"### The default run (`convtrain train{precision}`, {seeds} seed{'s' if seeds > 1 else ''}, "
        "one whole process each, plots and report included)\n\n"
    )
    with scratch_dir() as tmp:
        results = [one_process(seed, Path(tmp), quick) for seed in range(seeds)]
    body = []
    for seed, result in enumerate(results):
        spent = result["timings"]
        body.append(
            [
                seed,
                f"{100 * result['test_acc']:.2f}",
                f"{100 * result['val_acc']:.2f}",
                f"{result['wall']:.1f}",
                *(f"{spent.get(phase, 0.0):.1f}" for phase in PHASES),
                f"{spent.get('achieved_flops', 0) / 1e9:.1f}",
                f"{100 * spent.get('fraction_of_peak', 0):.0f}% of {spent.get('peak_flops', 0) / 1e9:.0f}",
            ]
        )
    tests = [100 * r["test_acc"] for r in results]
    walls = [r["wall"] for r in results]
    spread = statistics.stdev(tests) if len(tests) > 1 else 0.0
    header = ["seed", "test acc %", "best val acc %", "wall s", *(f"{phase} s" for phase in PHASES)]
    header += ["training GFLOP/s", "of the peak (GFLOP/s)"]
    return (
        title
        + table(header, body)
        + f"\n\ntest accuracy {statistics.mean(tests):.2f} ± {spread:.2f}% (mean ± std), wall "
        f"{statistics.median(walls):.1f} s median, {max(walls):.1f} s at most; phases from each run's "
        "results.json timings (setup and first step, under a second, left out). The runs share an empty "
        "data folder: the first probes the matmul peak as it runs, and the others reuse that peak."
    )

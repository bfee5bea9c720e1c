"""Benchmark: the cost of many runs. A 20-trial sweep and 5 seeds of one-epoch LeNet-5 on MNIST, each
timed as the whole command (process start, imports, dataset, every trial, the report), against the
sum of the trials' own training time (the epochs, as results.json's training_seconds counts them).
Target: wall time <= 1.25x that sum with one worker.

    python -m benchmarks.many_runs                      # 20 trials, 5 seeds, full MNIST
    python -m benchmarks.many_runs --limit-train 10000  # smaller epochs on a busy machine
    python -m benchmarks.run --only many_runs --quick
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.common import REPO, describe_machine, scratch_dir, table

BASE = {"recipe": "lenet5-mnist-fast", "epochs": 1, "val_split": 0.1}  # the recipe holds none out
SPACE = {
    "lr": {"type": "log-float", "low": 3.0e-4, "high": 1.0e-2},
    "weight_decay": {"type": "float", "low": 0.0, "high": 1.0e-3},
}


def timed(command: list[str]) -> float:
    """Wall seconds of a convtrain command in its own process (its output kept out of the table)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "convtrain", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=os.environ,
    )
    if done.returncode:
        raise RuntimeError(
            f"convtrain {' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return time.perf_counter() - started


def run_seconds(run: Path) -> tuple[float, float]:
    """(training seconds, whole-run seconds) of one run folder: its epochs, and everything the run did
    (data, model, epochs, validation, the test pass, checkpoints), from results.json."""
    results = json.loads((run / "results.json").read_text())
    return results["training_seconds"], results["timings"]["total"]


def sweep(root: Path, trials: int, jobs: int, limit_train: int) -> tuple[float, list, float]:
    """(wall, [(training s, run s)] per trial, best value) of one sweep."""
    space = root / "space.yaml"
    base = {**BASE, "limit_train": limit_train} if limit_train else BASE
    space.write_text(yaml.safe_dump({"base": base, "space": SPACE, "trials": trials}))
    out = root / f"sweep-{jobs}"
    wall = timed(["sweep", str(space), "--out", str(out), "--jobs", str(jobs)])
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == trials and all(r["state"] == "COMPLETE" for r in rows)
    best = max(float(r["value"]) for r in rows)
    return wall, [run_seconds(Path(r["run"])) for r in rows], best


def seeds(root: Path, count: int, jobs: int, limit_train: int) -> tuple[float, list, dict]:
    """(wall, [(training s, run s)] per seed, test accuracy summary) of `train --seeds`."""
    out = root / f"seeds-{jobs}"
    extra = ["--limit-train", str(limit_train)] if limit_train else []
    command = ["train", "--recipe", "lenet5-mnist-fast", "--epochs", "1", "--val-split", "0.1", "--no-plots"]
    wall = timed([*command, "--quiet", *extra, "--seeds", str(count), "--jobs", str(jobs), "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    return wall, [run_seconds(Path(run)) for run in summary["runs"]], summary["metrics"]["test_acc"]


def row(what: str, jobs: int, wall: float, runs: list, result: str) -> list:
    training, whole = sum(t for t, _ in runs), sum(w for _, w in runs)
    return [
        what,
        jobs,
        f"{wall:.0f}",
        f"{training:.0f}",
        f"{wall / training:.2f}x",
        f"{whole:.0f}",
        f"{wall / whole:.2f}x",
        f"{(wall - whole) / len(runs):.1f}",
        result,
    ]


def run(quick: bool = False, trials: int = 20, count: int = 5, limit_train: int = 0, jobs: int = 1) -> str:
    if quick:
        trials, count, limit_train = 4, 2, limit_train or 5000
    with scratch_dir() as scratch:
        root = Path(scratch)
        wall, runs, best = sweep(root, trials, jobs, limit_train)
        rows = [row(f"sweep, {trials} trials", jobs, wall, runs, f"best val acc {100 * best:.2f}%")]
        wall, runs, acc = seeds(root, count, jobs, limit_train)
        spread = f"test acc {100 * acc['mean']:.2f} ± {100 * acc['std']:.2f}%"
        rows.append(row(f"--seeds {count}", jobs, wall, runs, spread))
    size = f"--limit-train {limit_train}" if limit_train else "54,000 training and 6,000 validation images"
    header = [
        "what",
        "workers",
        "wall s",
        "training s",
        "wall / training",
        "runs s",
        "wall / runs",
        "sweep overhead s per run",
        "result",
    ]
    return (
        f"### Many runs: one-epoch LeNet-5 (lenet5-mnist-fast) on MNIST, {size}\n\n"
        "wall: the whole command in its own process. training: the sum of every run's epochs "
        "(results.json training_seconds). runs: the sum of every run's whole time (timings.total: data, "
        "model, epochs, validation, the 10,000-image test pass, checkpoints). Sweep overhead per run: "
        "(wall - runs) / number of runs: process start, Optuna's storage, the outputs and report.\n\n"
        + table(header, rows)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.many_runs", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--limit-train", type=int, default=0, help="training images per run (0: all)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(describe_machine(), flush=True)
    print(run(args.quick, args.trials, args.seeds, args.limit_train, args.jobs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

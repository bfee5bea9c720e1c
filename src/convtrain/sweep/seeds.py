"""One config trained with seeds 0..N-1 into one folder, and the spread of its results.

    convtrain train --recipe lenet5-mnist-fast --seeds 5 --jobs 2
    python -c "import convtrain; print(convtrain.train_seeds(convtrain.TrainConfig(epochs=1), seeds=3))"

Every seed is an ordinary run folder (seed-0, seed-1, ...). Their results.json files are summarised in
summary.json and summary.csv (mean, std, 95% CI, min, max of every final number) and a report page.
With jobs > 1 the seeds run in worker processes that share the CPU threads (or one GPU each), each
reading the dataset once.
"""

from __future__ import annotations

import math
import queue
from typing import Any

from convtrain.base.atomic_files import write_json_atomic, write_text_atomic
from convtrain.base.errors import ConfigError, ConvtrainError
from convtrain.config.train_config import TrainConfig
from convtrain.data.memory_cache import keep_datasets
from convtrain.sweep.folders import SeedsDir
from convtrain.sweep.report_pages import write_seeds_report
from convtrain.sweep.stats import summarize
from convtrain.sweep.workers import prefixed, start_workers, worker_device
from convtrain.training.loop import fit

HEADLINE = ("test_acc", "test_loss", "training_seconds")
SUMMARY_LINE = (
    ("test_acc", "test accuracy"),
    ("final_val_acc", "validation accuracy (last epoch)"),
)  # first in summary.csv; then the rest by name


def train_seeds(config: TrainConfig, seeds: int = 5, jobs: int = 1) -> SeedsDir:
    """Train `config` with seeds 0..seeds-1 into config.out (default runs/<dataset>-<model>-seeds),
    `jobs` at a time; returns the folder, with summary.json, summary.csv and report.html written."""
    if seeds < 1 or jobs < 1:
        raise ConfigError(f"--seeds and --jobs must be at least 1, got {seeds} and {jobs}")
    if config.resume:
        raise ConfigError("--seeds cannot be combined with --resume; resume each seed-N folder by itself")
    folder = SeedsDir.new(config.out, config.dataset, config.model)
    configs = [config.replace(seed=seed, out=str(folder.seed_run(seed).path)) for seed in range(seeds)]
    print(
        f"{seeds} seeds of {config.model} on {config.dataset} into {folder.path}, {min(jobs, seeds)} at a time"
    )
    if jobs == 1:
        with keep_datasets():
            results = [_train_one(c, 0) for c in configs]
    else:
        results = _train_in_workers(configs, min(jobs, seeds))
    summary = write_summary(folder, results)
    # the test split's figure, or with --no-test the last epoch's validation accuracy
    name, acc = next(
        ((label, summary["metrics"][key]) for key, label in SUMMARY_LINE if key in summary["metrics"]),
        (None, None),
    )
    if acc and acc["std"] is not None:
        print(
            f"{name} {100 * acc['mean']:.2f} ± {100 * acc['std']:.2f}% over {seeds} seeds "
            f"(95% CI {100 * acc['ci95'][0]:.2f}-{100 * acc['ci95'][1]:.2f}%)  summary: {folder.summary_path}"
        )
    return folder


def _train_one(config: TrainConfig, index: int) -> dict[str, Any]:

    with prefixed(f"[seed {config.seed}] "):
        run = fit(worker_device(config, index))
    if run.results.get("interrupted"):
        raise KeyboardInterrupt
    return {"seed": config.seed, "run": str(run.path), **run.results}


def _train_in_workers(configs: list[TrainConfig], jobs: int) -> list[dict[str, Any]]:
    import multiprocessing

    done = multiprocessing.get_context("spawn").Queue()
    workers = start_workers(jobs, _seed_loop, jobs, configs, done)
    results: dict[int, dict[str, Any]] = {}
    try:
        while len(results) < len(configs):
            try:
                seed, outcome = done.get(timeout=1.0)
            except queue.Empty:
                if done.empty():  # a worker's last result is in the queue before it exits
                    _check_workers(workers, configs, results)
                continue
            if isinstance(outcome, str):  # a worker's one-line error
                raise ConvtrainError(f"seed {seed}: {outcome}")
            results[seed] = outcome
    finally:
        for worker in workers:
            if worker.is_alive() and len(results) < len(configs):
                worker.terminate()
            worker.join()
    return [results[c.seed] for c in configs]


def _check_workers(workers: list, configs: list[TrainConfig], results: dict[int, Any]) -> None:
    """A worker that has exited while seeds it owns are still missing died (killed, out of memory)."""
    for index, worker in enumerate(workers):
        owed = [c.seed for c in configs[index :: len(workers)] if c.seed not in results]
        if owed and not worker.is_alive():
            raise ConvtrainError(
                f"seed worker {index} stopped (exit code {worker.exitcode}) before seed(s) "
                f"{', '.join(map(str, owed))}; see its output above"
            )


def _seed_loop(index: int, jobs: int, configs: list[TrainConfig], done) -> None:
    """Worker `index` trains seeds index, index + jobs, ... (all seeds cost about the same)."""
    for config in configs[index::jobs]:
        try:
            done.put((config.seed, _train_one(config, index)))
        except ConvtrainError as error:
            done.put((config.seed, str(error)))
            return


def write_summary(folder: SeedsDir, results: list[dict[str, Any]]) -> dict[str, Any]:
    """summary.json, summary.csv and report.html from each seed's results; returns the summary."""
    names = [k for k in HEADLINE if _numeric(results, k)]
    names += sorted(k for k in results[0] if k not in names and _numeric(results, k))
    summary = {
        "seeds": [r["seed"] for r in results],
        "runs": [r["run"] for r in results],
        "metrics": {name: summarize([float(r[name]) for r in results]) for name in names},
    }
    write_json_atomic(folder.summary_path, summary)
    header = ["metric", "mean", "std", "ci95_low", "ci95_high", "min", "max", "n"]
    header += [f"seed_{seed}" for seed in summary["seeds"]]
    lines = [",".join(header)]
    for name, s in summary["metrics"].items():
        ci = s["ci95"] or ["", ""]
        cells = [
            s["mean"],
            s["std"] if s["std"] is not None else "",
            *ci,
            s["min"],
            s["max"],
            s["n"],
            *s["values"],
        ]
        lines.append(",".join([name, *(f"{c:.6g}" if isinstance(c, float) else str(c) for c in cells)]))
    write_text_atomic(folder.summary_csv_path, "\n".join(lines) + "\n")

    write_seeds_report(folder, summary)
    return summary


def _numeric(results: list[dict[str, Any]], key: str) -> bool:
    """A number (not a flag) in every seed's results, so it can be averaged."""
    values = [r.get(key) for r in results]
    return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)

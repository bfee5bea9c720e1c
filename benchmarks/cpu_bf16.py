"""bf16 against fp32 on the CPU: accuracy per epoch and at the end, the evidence for `--precision auto`.

Each case trains in fp32 and in bf16 with the same seeds, on a validation split taken from train,
and reads the test split once at the end. The precision rule is chosen on the validation columns.
On a CPU without bf16 units (cpu_bf16_units() is None) oneDNN emulates bf16: the numbers are bf16's,
the speed is not, so this benchmark reports accuracy only; speed is in `peers` and `default_run`.

    python -m benchmarks.run --only cpu_bf16 [--quick]
    python -m benchmarks.cpu_bf16 default,mnist-99.5 0,1,2     # cases and seeds
"""

from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
from typing import Any

import convtrain
from benchmarks.common import SHARED_DATASETS, quiet, table
from convtrain.config.recipes import load_recipe
from convtrain.data.memory_cache import keep_datasets
from convtrain.system.runtime import cpu_bf16_units

CASES: dict[str, dict[str, Any]] = {  # name -> TrainConfig options (val_split 0.1 everywhere)
    "default": {},  # a bare `convtrain train`: fastnet-tiny, 2 epochs
    "mnist-99.5": {"recipe": "mnist-99.5"},  # fastnet-tiny, 5 epochs, translate 2, TTA
    "fashion-mnist-fast": {"recipe": "fashion-mnist-fast"},  # fastnet-small, 8 epochs
}
SEEDS = (0, 1, 2)


def one_run(options: dict[str, Any], precision: str, seed: int) -> tuple[list[float], float]:
    """(validation accuracy per epoch, test accuracy) of one run."""
    recipe = options.get("recipe")
    values = {**(load_recipe(recipe) if recipe else {}), **options, "val_split": 0.1}
    with tempfile.TemporaryDirectory() as tmp, quiet():
        values |= dict(
            data_dir=str(SHARED_DATASETS),
            precision=precision,
            seed=seed,
            plots=False,
            quiet=True,
            out=f"{tmp}/run",
            download=False,
        )
        run = convtrain.train(convtrain.TrainConfig.from_dict(values))
        return [row["val_acc"] for row in run.history], run.results["test_acc"]


def mean_std(values: list[float]) -> str:
    scaled = [100 * v for v in values]
    if len(scaled) == 1:
        return f"{scaled[0]:.2f}"
    return f"{statistics.mean(scaled):.2f} ± {statistics.stdev(scaled):.2f}"


def run(quick: bool = False, cases: list[str] | None = None, seeds: tuple[int, ...] = SEEDS) -> str:
    names = cases or (["default"] if quick else list(CASES))
    seeds = seeds[:1] if quick else seeds
    rows = []
    with keep_datasets():
        for name in names:
            results: dict[str, list] = {"fp32": [], "bf16": []}
            for precision, seed in itertools.product(results, seeds):
                results[precision].append(one_run(CASES[name], precision, seed))
                print(
                    f"  cpu_bf16: {name} {precision} seed {seed}: test {100 * results[precision][-1][1]:.2f}%",
                    flush=True,
                )
            for precision, runs in results.items():
                epochs = len(runs[0][0])
                per_epoch = [mean_std([r[0][e] for r in runs]) for e in range(epochs)]
                first, last = per_epoch[0], per_epoch[-1]
                test = mean_std([r[1] for r in runs])
                rows.append(
                    [name, precision, first, last, test, " / ".join(f"{100 * r[1]:.2f}" for r in runs)]
                )
                print(
                    f"  cpu_bf16: {name} {precision}: val epoch 1 {first}, last {last}, test {test}",
                    flush=True,
                )
    units = cpu_bf16_units() or "none (bf16 emulated by oneDNN: accuracy only)"
    header = ["case", "precision", "val acc % epoch 1", "val acc % last epoch", "test acc %", "test per seed"]
    title = f"### bf16 against fp32 on the CPU (seeds {', '.join(map(str, seeds))}; bf16 units: {units})"
    return f"{title}\n\n" + table(header, rows)


if __name__ == "__main__":
    chosen = sys.argv[1].split(",") if len(sys.argv) > 1 else None
    picked = tuple(int(s) for s in sys.argv[2].split(",")) if len(sys.argv) > 2 else SEEDS
    print(run(cases=chosen, seeds=picked))

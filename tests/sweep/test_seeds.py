"""Seeds: the same summary twice on the CPU, the dataset read once per process, worker processes, and
the Student-t quantile behind the 95% interval checked against scipy."""

from __future__ import annotations

import json
import math

import pytest
import torch

import convtrain.data.memory_cache as memory_cache
import helpers
from convtrain.config.train_config import TrainConfig
from convtrain.sweep import train_seeds
from convtrain.sweep.stats import summarize, t_quantile

TIMING = ("seconds", "images_per_second", "timings")  # wall-clock numbers differ from run to run


def tiny_config(npz, out) -> TrainConfig:
    return helpers.tiny_config(npz, out, epochs=1, lr=0.02, limit_train=256)


def deterministic(summary: dict) -> dict:
    return {k: v["values"] for k, v in summary["metrics"].items() if not any(t in k for t in TIMING)}


def test_seeds_give_the_same_summary_twice_in_one_process_and_in_two(tiny_npz, tmp_path, monkeypatch):
    loads = []
    real_load = memory_cache.load_dataset  # the name load_data calls: patched where it is looked up
    monkeypatch.setattr(memory_cache, "load_dataset", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two workers below has: float sums then match bit for bit
    try:
        first = train_seeds(tiny_config(tiny_npz, tmp_path / "a"), seeds=3)
        assert len(loads) == 1  # three runs, one read of the dataset
        second = train_seeds(tiny_config(tiny_npz, tmp_path / "b"), seeds=3, jobs=2)
    finally:
        torch.set_num_threads(threads)

    a, b = (json.loads(f.summary_path.read_text()) for f in (first, second))
    assert a["seeds"] == [0, 1, 2] and [p.rsplit("/", 1)[1] for p in a["runs"]] == [
        "seed-0",
        "seed-1",
        "seed-2",
    ]
    assert deterministic(a) == deterministic(b)
    values = a["metrics"]["test_acc"]["values"]
    assert len(set(a["metrics"]["test_loss"]["values"])) == 3  # the seeds differ
    acc = a["metrics"]["test_acc"]
    assert acc["mean"] == pytest.approx(sum(values) / 3) and acc["min"] == min(values)
    assert acc["ci95"][0] <= acc["mean"] <= acc["ci95"][1]
    for name in ("test_loss", "training_seconds", "final_val_acc"):
        assert name in a["metrics"]

    rows = first.summary_csv_path.read_text().splitlines()
    assert rows[0] == "metric,mean,std,ci95_low,ci95_high,min,max,n,seed_0,seed_1,seed_2"
    assert rows[1].startswith("test_acc,")
    page = first.report_path.read_text()
    assert page.count("data:image/png;base64,") == 2  # per-seed curves and the strip plot


def test_t_quantile_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 4, 9, 30, 200):
        assert t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-6)


def test_summary_of_one_value_has_no_spread():
    one = summarize([0.5])
    assert one["std"] is None and one["ci95"] is None and one["mean"] == 0.5
    two = summarize([1.0, 3.0])  # by hand: std sqrt(2), half-width 12.706 * sqrt(2) / sqrt(2)
    assert two["std"] == pytest.approx(math.sqrt(2))
    assert two["ci95"] == pytest.approx([2 - 12.7062, 2 + 12.7062], abs=1e-3)

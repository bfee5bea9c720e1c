"""A run's arithmetic: FLOPs per training image against a hand count, and the machine's peak probe,
measured once per machine and precision, cached, and measured again when the machine changes."""

from __future__ import annotations

import json

import pytest
import torch

import convtrain.system.flop_counts as arithmetic
from convtrain.models import build_model
from convtrain.system.flop_counts import arithmetic_summary, measured_peak, training_flops_per_image


def test_training_flops_of_lenet5_match_a_hand_count():
    """LeNet-5 on 28x28: multiply-adds per layer, forward; a training step is the forward, the
    weight gradients (as many) and the input gradients (as many, except for the first layer)."""
    conv1 = 6 * 28 * 28 * (1 * 5 * 5)  # padding 2 keeps 28x28
    conv2 = 16 * 10 * 10 * (6 * 5 * 5)
    fc = 400 * 120 + 120 * 84 + 84 * 10
    forward = conv1 + conv2 + fc
    hand = 2 * (3 * forward - conv1)  # 2 FLOPs per multiply-add
    model = build_model("lenet5", 1, 10, 28)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert training_flops_per_image(model, (1, 28, 28), torch.device("cpu")) == hand == 2_263_920
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # a copy was measured
    assert all(p.grad is None for p in model.parameters())


def test_the_peak_is_measured_once_per_machine_and_again_on_another(tmp_path, monkeypatch):
    probes = []
    monkeypatch.setattr(arithmetic, "probe_matmul", lambda device, precision: probes.append(1) or 1e11)
    cpu = torch.device("cpu")
    first = measured_peak(cpu, "fp32", tmp_path)
    assert first["flops"] == 1e11 and len(probes) == 1
    assert measured_peak(cpu, "fp32", tmp_path) == first and len(probes) == 1  # cached
    measured_peak(cpu, "bf16", tmp_path)  # another precision: its own probe
    assert len(probes) == 2
    monkeypatch.setattr(arithmetic, "_cpu_description", lambda: "another processor [avx512_bf16 amx_bf16]")
    measured_peak(cpu, "fp32", tmp_path)  # the machine changed: measured again
    assert len(probes) == 3
    assert len(json.loads((tmp_path / arithmetic.PEAK_FILE).read_text())) == 3


def test_a_damaged_cache_is_measured_again_and_a_run_faster_than_the_peak_remeasures(tmp_path, monkeypatch):
    values = iter([5e10, 2e11])
    monkeypatch.setattr(arithmetic, "probe_matmul", lambda device, precision: next(values))
    (tmp_path / arithmetic.PEAK_FILE).write_text("{not json")
    cpu = torch.device("cpu")
    assert measured_peak(cpu, "fp32", tmp_path)["flops"] == 5e10
    summary = arithmetic_summary(1e6, 1e5, cpu, "fp32", tmp_path)  # 1e11 achieved > the busy 5e10 probe
    assert summary["peak_flops"] == 2e11 and summary["fraction_of_peak"] == pytest.approx(0.5)
    assert summary["achieved_flops"] == 1e11 and summary["train_flops_per_image"] == 1e6


def test_a_run_records_its_arithmetic_in_results(tiny_run):
    """tiny_run: LeNet-5 on 28x28 gray images of 4 classes, one epoch on the CPU."""
    fc = 400 * 120 + 120 * 84 + 84 * 4
    forward = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + fc
    timings = json.loads((tiny_run / "results.json").read_text())["timings"]
    history = json.loads((tiny_run / "results.json").read_text())
    assert timings["train_flops_per_image"] == 2 * (3 * forward - 6 * 28 * 28 * 25)
    rate = history["final_images_per_second"]
    assert timings["achieved_flops"] == pytest.approx(timings["train_flops_per_image"] * rate, rel=1e-6)
    assert timings["fraction_of_peak"] == pytest.approx(
        timings["achieved_flops"] / timings["peak_flops"], abs=1e-4
    )

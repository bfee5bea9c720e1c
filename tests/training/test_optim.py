"""The lr schedule as a pure function, class weights, and the weight average."""

from __future__ import annotations

import math

import pytest
import torch

from convtrain.training.optim import WeightAverage, class_weights, lr_factor


def test_onecycle_rises_to_the_peak_at_a_quarter_and_ends_at_zero():
    total = 100
    factors = [lr_factor(s, total, 0, "onecycle") for s in range(total + 1)]
    assert factors[0] == pytest.approx(0.04)
    assert max(factors) == pytest.approx(1.0) and factors.index(max(factors)) == 25
    assert factors[-1] == pytest.approx(0.0)


def test_cosine_linear_constant_and_step():
    assert lr_factor(0, 100, 0, "cosine") == pytest.approx(1.0)
    assert lr_factor(50, 100, 0, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(25, 100, 0, "linear") == pytest.approx(0.75)
    assert lr_factor(77, 100, 0, "constant") == 1.0
    # 10 steps per epoch, decay x0.1 every 2 epochs
    assert [lr_factor(s, 100, 0, "step", 10, 2, 0.1) for s in (0, 19, 20, 45)] == pytest.approx(
        [1, 1, 0.1, 0.01]
    )


def test_warmup_is_linear_then_the_schedule_starts_from_the_peak():
    assert [lr_factor(s, 110, 10, "cosine") for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_factor(10, 110, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(60, 110, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(10, 110, 10, "onecycle") == pytest.approx(1.0)


def test_balanced_class_weights_are_inverse_frequency():
    labels = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    weights = class_weights(labels, 3)
    assert weights.tolist() == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    assert (weights[labels].mean()).item() == pytest.approx(1.0)


def test_weight_average_is_the_exponential_moving_average():
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model)
    expected = 0.9 * start + 0.1 * (start + 1.0)
    assert torch.allclose(average.state_dict()["weight"], expected)
    assert not math.isnan(float(average.state_dict()["bias"]))

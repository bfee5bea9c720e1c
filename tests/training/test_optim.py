"""The lr schedule as a pure function, class weights, the weight average and Lookahead."""

from __future__ import annotations

import math

import pytest
import torch

from convtrain.training.optim import Lookahead, WeightAverage, class_weights, lr_factor


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


def test_triangle_starts_at_a_fifth_peaks_at_23_percent_and_ends_at_seven_hundredths():
    total = 100
    factors = [lr_factor(s, total, 0, "triangle") for s in range(total + 1)]
    assert factors[0] == pytest.approx(0.2)
    assert max(factors) == pytest.approx(1.0) and factors.index(max(factors)) == 23
    assert factors[-1] == pytest.approx(0.07)
    rising, falling = factors[:24], factors[23:]
    assert all(a < b for a, b in zip(rising, rising[1:], strict=False))
    assert all(a > b for a, b in zip(falling, falling[1:], strict=False))


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


def _shifted(model: torch.nn.Module, by: float) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(by)


def test_lookahead_moves_every_fifth_step_and_training_goes_on_from_the_average():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    lookahead = Lookahead(model, decay=0.9, total_steps=10)
    start = model[0].weight.detach().clone()
    _shifted(model, 1.0)
    lookahead.update(model, step=4)  # not a fifth step: nothing moves
    assert torch.allclose(model[0].weight, start + 1.0)
    assert torch.allclose(lookahead.state_dict()["0.weight"], start)
    lookahead.update(model, step=10)  # the last step: decay 0.9^5 x 1^3
    rho = 0.9**5
    expected = rho * start + (1 - rho) * (start + 1.0)
    assert torch.allclose(lookahead.state_dict()["0.weight"], expected)
    assert torch.allclose(model[0].weight, expected)  # put back: the live weights are the average


def test_lookahead_barely_averages_early_and_end_epoch_puts_the_weights_back():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    lookahead = Lookahead(model, decay=0.95, total_steps=1000)
    start = model[0].weight.detach().clone()
    _shifted(model, 1.0)
    lookahead.update(model, step=5)  # 0.5% of the run: decay 0.95^5 x 0.005^3, about 1e-7
    assert torch.allclose(model[0].weight, start + 1.0, atol=1e-5)
    _shifted(model, 1.0)  # two steps later the epoch ends: the weights go back to the average
    model[1].num_batches_tracked += 2
    lookahead.end_epoch(model)
    assert torch.allclose(model[0].weight, start + 1.0, atol=1e-5)
    assert lookahead.state_dict()["1.num_batches_tracked"] == model[1].num_batches_tracked == 2


def test_a_plain_average_leaves_the_live_weights_alone_at_the_epoch_end():
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.9)
    _shifted(model, 1.0)
    live = model.weight.detach().clone()
    average.update(model)
    average.end_epoch(model)
    assert torch.equal(model.weight, live)

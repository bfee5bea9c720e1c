"""Runtime choices: which memory format `--channels-last auto` picks, and that training follows it."""

from __future__ import annotations

import pytest
import torch

import convtrain
from convtrain.system.runtime import use_channels_last
from convtrain.training import loop


@pytest.mark.parametrize(
    "setting, device, precision, expected",
    [
        ("auto", "cpu", "fp32", True),  # faster for every zoo model on the CPU (BENCHMARKS.md)
        ("auto", "cuda", "fp32", False),
        ("auto", "cuda", "bf16", True),
        ("auto", "mps", "fp32", False),
        ("off", "cpu", "fp32", False),
        ("on", "cuda", "fp32", True),
    ],
)
def test_channels_last_auto(setting, device, precision, expected):
    assert use_channels_last(setting, torch.device(device), precision) is expected


@pytest.mark.parametrize("setting", ["auto", "off"])
def test_training_on_the_cpu_follows_the_memory_format(tiny_npz, tmp_path, capsys, monkeypatch, setting):
    trained = []  # the network the loop trains (run.model is a plain CPU copy of its weights)
    real_epoch = loop.train_one_epoch

    def epoch(job, *args, **kwargs):
        trained.append(job.model)
        return real_epoch(job, *args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", epoch)
    run = convtrain.train(
        dataset=f"npz:{tiny_npz}",
        model="lenet5",
        epochs=1,
        batch_size=64,
        channels_last=setting,
        out=str(tmp_path / "run"),
        quiet=True,
        plots=False,
    )
    second_conv = [m for m in trained[0].modules() if isinstance(m, torch.nn.Conv2d)][
        1
    ].weight  # (16, 6, 5, 5)
    assert second_conv.is_contiguous(memory_format=torch.channels_last) is (setting == "auto")
    assert ("channels_last" in capsys.readouterr().out) is (setting == "auto")
    assert 0.0 <= run.results["test_acc"] <= 1.0

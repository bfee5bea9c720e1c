"""The GPU's training paths that the CPU can run today: bf16 autocast end to end (with EMA and mixup),
fp16 through a real GradScaler (unscale, clip, step, saved and resumed), and torch.compile with one
graph that is not recompiled after the first epoch."""

from __future__ import annotations

import math

import pytest
import torch

import convtrain
from convtrain.runs.run_dir import RunDir
from convtrain.training import loop, setup
from helpers import tiny_config


def tiny(npz, out, **options):
    return tiny_config(npz, out, **{"lr": 0.05, **options})


def finite(run) -> bool:
    return all(math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]) for row in run.history)


def test_bf16_trains_end_to_end_with_ema_and_mixup(tiny_npz, tmp_path, monkeypatch):
    dtypes = []
    real_step = loop.train_step

    def step(net, criterion, optimizer, scaler, x, y, precision, grad_clip=0.0):
        loss, logits = real_step(net, criterion, optimizer, scaler, x, y, precision, grad_clip)
        dtypes.append((logits.dtype, y.dim()))
        return loss, logits

    monkeypatch.setattr(loop, "train_step", step)
    config = tiny(tiny_npz, tmp_path / "run", epochs=2, precision="bf16", ema=0.9, augment="flip,mixup:0.2")
    run = convtrain.train(config)
    assert set(dtypes) == {(torch.bfloat16, 2)}  # autocast ran, on mixed soft targets (B, K)
    assert finite(run) and len(run.history) == 2
    state = torch.load(run.last_path, weights_only=True)
    assert state["ema"] is not None
    assert not all(torch.equal(state["ema"][k], v) for k, v in state["model"].items())
    assert 0.0 <= run.results["test_acc"] <= 1.0
    reloaded, _ = RunDir(run.path).load_model()
    assert all(p.dtype == torch.float32 for p in reloaded.parameters())  # weights stay fp32


def test_fp16_uses_a_real_grad_scaler_and_resumes_it(tiny_npz, tmp_path, monkeypatch):
    # fp16 is refused on the CPU (no speed to gain there); this test lifts the refusal to run the path.
    monkeypatch.setattr(setup, "check_precision", lambda precision, device: None)
    calls = {"unscale_": 0, "load_state_dict": []}
    real_unscale, real_load = torch.amp.GradScaler.unscale_, torch.amp.GradScaler.load_state_dict

    def unscale(self, optimizer):
        calls["unscale_"] += 1
        return real_unscale(self, optimizer)

    def load(self, state):
        calls["load_state_dict"].append(dict(state))
        return real_load(self, state)

    monkeypatch.setattr(torch.amp.GradScaler, "unscale_", unscale)
    monkeypatch.setattr(torch.amp.GradScaler, "load_state_dict", load)
    config = tiny(tiny_npz, tmp_path / "run", epochs=2, precision="fp16", grad_clip=1.0, test=False)
    run = convtrain.train(config)
    steps = run.history and torch.load(run.last_path, weights_only=True)["step"]
    assert finite(run) and calls["unscale_"] == steps  # clipping unscaled every step
    saved = torch.load(run.last_path, weights_only=True)["scaler"]
    assert saved and saved["scale"] > 0

    resumed = convtrain.train(run.config.replace(resume=str(run.path), epochs=3))
    assert [state["scale"] for state in calls["load_state_dict"]] == [saved["scale"]]
    assert finite(resumed) and len(resumed.history) == 3
    assert torch.load(run.last_path, weights_only=True)["scaler"]["scale"] > 0


@pytest.mark.slow
def test_compile_makes_one_graph_and_no_recompiles_after_the_first_epoch(tiny_npz, tmp_path, monkeypatch):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    after_epoch = []
    real_epoch = loop.train_one_epoch

    def epoch(*args, **kwargs):
        result = real_epoch(*args, **kwargs)
        after_epoch.append((counters["stats"]["unique_graphs"], sum(counters["recompiles"].values())))
        return result

    monkeypatch.setattr(loop, "train_one_epoch", epoch)
    run = convtrain.train(tiny(tiny_npz, tmp_path / "run", epochs=2, compile=True, test=False))
    assert finite(run)
    assert after_epoch[0][0] == 1  # the whole network is one graph
    assert after_epoch[1] == after_epoch[0]  # epoch 2 compiled nothing new
    torch._dynamo.reset()

"""The CUDA path, proven on the CPU: each fault a read of the GPU code found, with the GPU-only part
faked (a device that reports CUDA, a patched device count, a probe that raises cuDNN errors, spies
on torch's RNG, optimizers and host syncs)."""

from __future__ import annotations

import io
import math
import os
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import convtrain
from convtrain.cli import main
from convtrain.config.train_config import TrainConfig, with_model_defaults
from convtrain.evaluation.scoring import loader_sums
from convtrain.runs.run_dir import RunDir
from convtrain.system import batchsize, progress
from convtrain.system.batchsize import find_batch_size
from convtrain.system.runtime import backend_settings
from convtrain.training import loop
from convtrain.training.optim import WeightAverage, build_optimizer
from helpers import tiny_config

tiny = tiny_config  # LeNet-5 on tiny_npz (tests/helpers.py)


# ----- crashes -----


def test_resume_hands_torch_only_cpu_rng_state(tiny_npz, tmp_path, monkeypatch):
    run = convtrain.train(tiny(tiny_npz, tmp_path / "run", epochs=1, test=False))
    devices, locations = [], []
    real_set, real_load = torch.set_rng_state, torch.load

    def set_rng_state(state):
        devices.append(state.device.type)
        return real_set(state)

    def load(*args, **kwargs):
        locations.append(kwargs.get("map_location"))
        return real_load(*args, **kwargs)

    real_prepare = loop.prepare_job

    def on_a_gpu(config, **kwargs):
        job = real_prepare(config, **kwargs)
        # What a GPU run resumes with. No epoch is left to train, so only the resume sees it: a
        # load onto this device fails on a machine without CUDA, as set_rng_state fails on one with.
        job.device = torch.device("cuda")
        return job

    monkeypatch.setattr(torch, "set_rng_state", set_rng_state)
    monkeypatch.setattr(torch, "load", load)
    monkeypatch.setattr(loop, "prepare_job", on_a_gpu)
    resumed = convtrain.train(run.config.replace(resume=str(run.path)))
    assert devices == ["cpu"]
    assert locations and all(torch.device(where).type == "cpu" for where in locations)
    assert len(resumed.history) == 1


def test_a_process_without_its_gpu_is_refused_in_one_line(tiny_npz, tmp_path, monkeypatch, capsys):
    # --nproc 2 on a machine with one GPU: torchrun starts rank 1 with LOCAL_RANK=1
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    args = ["train", "--dataset", f"npz:{tiny_npz}", "--device", "cuda", "--out", str(tmp_path / "r")]
    assert main([*args, "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "needs GPU 1, but there are 1" in error and "--nproc 1" in error


TOO_BIG = [
    RuntimeError(
        "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous input."
    ),
    RuntimeError("CUDNN_STATUS_INTERNAL_ERROR"),
    RuntimeError(
        "Expected canUse32BitIndexMath(input) && canUse32BitIndexMath(output) to be true, but got false."
    ),
    RuntimeError("upsample_nearest2d only supports output tensors with less than INT_MAX elements: int32"),
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
]


def fake_probe(monkeypatch, failure: BaseException | None, from_size: int) -> list[int]:
    """The probe's training pass replaced: sizes from `from_size` up raise `failure`."""
    tried = []

    def training_pass(model, data, device, precision, size):
        tried.append(size)
        if failure is not None and size >= from_size:
            raise failure

    monkeypatch.setattr(batchsize, "_training_pass", training_pass)
    return tried


GPU = torch.device("cuda")  # never touched: the probe's pass is faked
DATA = SimpleNamespace(channels=1, image_size=8)


@pytest.mark.parametrize("failure", TOO_BIG, ids=lambda e: str(e)[:20])
def test_batch_size_probe_treats_cudnn_and_index_errors_as_too_big(monkeypatch, failure):
    fake_probe(monkeypatch, failure, from_size=1024)
    size, why = find_batch_size(nn.Linear(4, 2), DATA, GPU, "bf16", 50_000, own_batch=512)
    assert size == 256  # 512 ran, halved for headroom
    assert str(failure).split()[0] in why  # the note says what stopped it


def test_batch_size_probe_lets_other_errors_through(monkeypatch):
    fake_probe(monkeypatch, RuntimeError("mat1 and mat2 shapes cannot be multiplied (8x4 and 3x2)"), 64)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        find_batch_size(nn.Linear(4, 2), DATA, GPU, "bf16", 50_000, own_batch=128)


@pytest.mark.parametrize("own_batch", [128, 256, 512])
def test_batch_size_auto_stays_within_four_times_the_models_own(monkeypatch, own_batch):
    tried = fake_probe(monkeypatch, None, from_size=0)  # a large GPU: every size fits
    size, why = find_batch_size(nn.Linear(4, 2), DATA, GPU, "bf16", 1_000_000, own_batch=own_batch)
    assert size == 4 * own_batch and "capped" in why
    assert max(tried) == 8 * own_batch  # the probe stops once halving would pass the cap


def test_batch_size_auto_on_the_cpu_keeps_the_cap():
    assert find_batch_size(nn.Linear(4, 2), DATA, torch.device("cpu"), "fp32", 10_000, own_batch=32)[0] == 128
    assert (
        find_batch_size(nn.Linear(4, 2), DATA, torch.device("cpu"), "fp32", 10_000, own_batch=512)[0] == 256
    )


# ----- silently wrong -----


@pytest.mark.parametrize("test", [False, True])
def test_run_model_is_a_cpu_copy_of_the_tested_weights(tiny_npz, tmp_path, test):
    run = convtrain.train(tiny(tiny_npz, tmp_path / "run", epochs=3, ema=0.9, lr=0.05, test=test))
    model = run.model
    reloaded, _ = RunDir(run.path).load_model()  # best.pt's averaged weights
    remembered = model.state_dict()
    assert all(torch.equal(remembered[k], v) for k, v in reloaded.state_dict().items())
    raw = torch.load(run.last_path, weights_only=True)["model"]  # the live network's last weights
    assert not all(torch.equal(remembered[k], v) for k, v in raw.items())
    # on the CPU, in plain layout (training used channels_last on the CPU), in eval mode
    assert all(t.device.type == "cpu" and t.is_contiguous() for t in remembered.values())
    assert not model.training
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 4)


def test_deterministic_sets_cudnn_cublas_and_puts_them_back(monkeypatch):
    cudnn = torch.backends.cudnn
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), cudnn.benchmark, cudnn.deterministic)
    with backend_settings(True, GPU):
        assert torch.are_deterministic_algorithms_enabled()
        assert not cudnn.benchmark and cudnn.deterministic
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert (torch.are_deterministic_algorithms_enabled(), cudnn.benchmark, cudnn.deterministic) == before
    with backend_settings(False, GPU):  # a CUDA run picks the fastest convolutions
        assert cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
    with backend_settings(False, torch.device("cpu")):
        assert cudnn.benchmark == before[1]
    assert cudnn.benchmark == before[1]


def test_deterministic_flag_reaches_the_training_loop(tiny_npz, tmp_path, monkeypatch):
    seen = []
    real_epoch = loop.train_one_epoch

    def epoch(*args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", epoch)
    out = tmp_path / "run"
    args = ["train", "--dataset", f"npz:{tiny_npz}", "--model", "lenet5", "--batch-size", "64"]
    assert main([*args, "--epochs", "1", "--deterministic", "--out", str(out), "--quiet", "--no-plots"]) == 0
    assert seen == [True]
    assert RunDir(out).config.deterministic
    assert not torch.are_deterministic_algorithms_enabled()  # put back when the run ends


def test_fold_models_in_fp16_train_through_a_gradient_scaler(tiny_npz, tmp_path, monkeypatch):
    from convtrain.datacheck import check, crossval

    with pytest.raises(convtrain.ConvtrainError, match="fp16 needs a GPU"):  # refused on the CPU
        check(
            f"npz:{tiny_npz}",
            labels=True,
            folds=2,
            model="lenet5",
            train_options={"precision": "fp16"},
            out=tmp_path / "refused",
            quiet=True,
        )
    monkeypatch.setattr(crossval, "check_precision", lambda precision, device: None)  # the test only
    updates = []
    real_update = torch.amp.GradScaler.update

    def update(self, *args, **kwargs):
        updates.append(self.is_enabled())
        return real_update(self, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "update", update)
    options = {"epochs": 1, "batch_size": 64, "precision": "fp16", "lr": 0.05}
    check(
        f"npz:{tiny_npz}",
        labels=True,
        folds=2,
        model="lenet5",
        train_options=options,
        out=tmp_path / "c",
        quiet=True,
    )
    assert updates and all(updates)  # every fold step went through an enabled scaler


# ----- slow -----


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


SYNCS = ("item", "tolist", "__int__", "__float__", "__bool__")


def count_syncs(monkeypatch, functions: tuple[str, ...]) -> list[str]:
    """Every read-back of a tensor to the host made directly by one of `functions`."""
    calls = []
    for name in SYNCS:
        real = getattr(torch.Tensor, name)

        def spy(self, *args, _real=real, _name=name, **kwargs):
            if sys._getframe(1).f_code.co_name in functions:
                calls.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


@pytest.mark.parametrize("batch_size", [8, 16])
def test_the_progress_bar_makes_no_host_sync_per_step(tiny_npz, tmp_path, monkeypatch, batch_size):
    monkeypatch.setattr(sys, "stderr", FakeTerminal())  # a terminal: the bar is on
    monkeypatch.setattr(progress, "REDRAW_SECONDS", math.inf)  # the timer never fires in this test
    calls = count_syncs(monkeypatch, ("train_one_epoch", "_check_finite"))
    config = tiny(tiny_npz, tmp_path / "run", epochs=1, batch_size=batch_size, quiet=False, test=False)
    run = convtrain.train(config)
    monkeypatch.undo()
    steps = 432 // batch_size  # 54 or 27 steps
    assert run.history and steps >= 27
    assert len(calls) == 2, calls  # the epoch's end: the finite check and the totals, whatever the steps


def test_the_progress_bar_redraws_on_its_timer(monkeypatch):
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    monkeypatch.setattr(progress, "REDRAW_SECONDS", 0.0)
    bar = progress.Progress(total=5, title="epoch 1/1", enabled=True)
    assert bar.bar is not None and all(bar.wants_update(step) for step in range(1, 6))
    bar.close()


def test_ema_keeps_its_tensors_and_gives_the_per_tensor_result(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 36, 3))
    average = WeightAverage(model, decay=0.9)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(5):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        model(torch.randn(4, 1, 8, 8))  # BatchNorm statistics and its batch count change too
        average.update(model)
        for key, value in nn.Module.state_dict(model).items():
            if value.is_floating_point():
                reference[key].lerp_(value, 0.1)
            else:
                reference[key].copy_(value)
        if step == 0:  # from now on, no state_dict() per step: the tensor lists are kept
            monkeypatch.setattr(model, "state_dict", lambda *a, **k: pytest.fail("state_dict per step"))
    assert all(torch.equal(average.state_dict()[k], v) for k, v in reference.items())


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimizers_are_fused_on_cuda_only(monkeypatch, name):
    made = []

    class Recorder:
        def __init__(self, params, **options):
            made.append(options)

    for kind in ("SGD", "Adam", "AdamW"):
        monkeypatch.setattr(torch.optim, kind, Recorder)
    config = with_model_defaults(TrainConfig(model="lenet5", optimizer=name))
    build_optimizer(nn.Linear(3, 2), config, GPU)
    build_optimizer(nn.Linear(3, 2), config, torch.device("cpu"))
    assert made[0]["fused"] is True and made[1]["fused"] is None


def test_confusion_matrix_is_counted_without_bincount(monkeypatch):
    monkeypatch.setattr(torch, "bincount", lambda *a, **k: pytest.fail("bincount reads min/max back"))
    logits = torch.tensor([[3.0, 0, 0], [0, 3, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0]])
    labels = torch.tensor([0, 1, 0, 2, 2])
    model = nn.Linear(3, 3, bias=False)
    nn.init.eye_(model.weight)
    batches = [(logits[:3], labels[:3]), (logits[3:], labels[3:])]
    sums = loader_sums(model, batches, num_classes=3)
    expected = torch.zeros(3, 3, dtype=torch.int64)
    for true, predicted in zip(labels.tolist(), logits.argmax(1).tolist(), strict=True):
        expected[true, predicted] += 1
    assert torch.equal(sums["confusion"], expected)


def test_first_step_time_waits_for_the_device(tiny_npz, tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(loop, "synchronize", lambda device: waits.append(device.type))
    convtrain.train(tiny(tiny_npz, tmp_path / "run", epochs=2, test=False))
    assert waits == ["cpu", "cpu"]  # once per epoch, at its first step: not per step

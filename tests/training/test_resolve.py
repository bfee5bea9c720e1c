"""Resolve once: resolve() fills every unset or 'auto' option, never changes the caller's config, and
the job and its messages carry the resolved values (tiny synthetic data, CPU)."""

from __future__ import annotations

import pytest
import torch

from convtrain.base.errors import ConvtrainError
from convtrain.config.train_config import GENERIC_TRAINING, TrainConfig
from convtrain.data.dataset_registry import load_dataset
from convtrain.models import own_training
from convtrain.system import runtime
from convtrain.training import loop
from convtrain.training.resolve import resolve


@pytest.fixture(scope="module")
def tiny_data(tiny_npz):
    return load_dataset(f"npz:{tiny_npz}")


def test_resolve_fills_the_models_own_options_and_precision_and_leaves_the_callers_config(
    tiny_data, monkeypatch
):
    monkeypatch.setattr(runtime, "cpu_bf16_units", lambda: None)  # a CPU without bf16 units, any day
    given = TrainConfig(dataset="npz:x", model="fastnet-tiny", precision="auto")
    resolved, notes = resolve(given, torch.device("cpu"), tiny_data, train_images=400)
    assert given.precision == "auto" and given.lr is None  # a new config; the caller's is unchanged
    assert resolved.precision == "fp32"  # auto on a CPU without bf16 units
    own = own_training("fastnet-tiny")
    assert {name: getattr(resolved, name) for name in GENERIC_TRAINING} == {**GENERIC_TRAINING, **own}
    # 400 images: 120 epochs to see 48,000 (more than 40 steps of one a epoch), and shifts; each said
    assert (
        resolved.epochs == 120
        and resolved.augment == "translate:2"
        and notes
        == [
            "fp32 (auto: this CPU has no bf16 matrix units)",
            "120 epochs (auto: 400 images at batch 256; --epochs to choose)",
            "augment translate:2 (auto: 400 images, up to 2000; --augment none to turn off)",
        ]
    )
    assert resolve(resolved, torch.device("cpu"), tiny_data, 400) == (resolved, [])  # twice changes nothing


def test_batch_size_auto_on_the_cpu_is_capped_by_the_training_images(tiny_data, capsys):
    config = TrainConfig(model="lenet5", batch_size="auto")
    assert resolve(config, torch.device("cpu"), tiny_data, train_images=100)[0].batch_size == 100
    assert resolve(config, torch.device("cpu"), tiny_data, train_images=5000)[0].batch_size == 256
    assert "batch size auto: 256" in capsys.readouterr().out


def test_out_of_gpu_memory_names_the_resolved_batch_size(tiny_npz, tmp_path, monkeypatch):
    """--batch-size left to the model: the message gives the batch that ran out, never 'None'."""

    def out_of_memory(job, on_epoch=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(loop, "_fit", out_of_memory)
    config = TrainConfig(dataset=f"npz:{tiny_npz}", model="fastnet-tiny", epochs=1, out=str(tmp_path / "run"))
    assert config.batch_size is None
    with pytest.raises(ConvtrainError, match=r"out of GPU memory at batch size 256;"):
        loop.fit(config.replace(quiet=True, plots=False))


def test_compile_auto_compiles_on_a_cuda_gpu_only_and_says_so_elsewhere(tiny_data):
    given = TrainConfig(dataset="npz:x", model="fastnet-tiny", precision="fp32", epochs=1, augment="none")
    on_cpu, notes = resolve(given.replace(compile="auto"), torch.device("cpu"), tiny_data, 400)
    assert on_cpu.compile is False
    assert notes == ["not compiled (auto: compiled on a CUDA GPU only; --compile to choose)"]
    on_gpu, notes = resolve(given.replace(compile="auto"), torch.device("cuda"), tiny_data, 400)
    assert on_gpu.compile is True and notes == []  # resolving touches no GPU: none is needed here
    assert resolve(given.replace(compile=True), torch.device("cpu"), tiny_data, 400)[0].compile is True


def test_compile_refuses_a_value_that_is_not_true_false_or_auto():
    with pytest.raises(ConvtrainError, match="compile must be true, false or auto; got 'yes'"):
        TrainConfig(compile="yes")

"""The GPU paths: bf16/fp16 autocast, channels_last, torch.compile, --batch-size auto, the on-device
loader. Marked `gpu`: skipped (by conftest.py) where there is no CUDA device, as in CI.

    python -m pytest -q -m gpu        # on a machine with a GPU
"""

from __future__ import annotations

import pytest
import torch

import convtrain
from convtrain.data.augment import parse_augment
from convtrain.data.dataset_registry import load_dataset
from convtrain.data.loader import make_loader
from convtrain.runs.run_dir import RunDir

pytestmark = pytest.mark.gpu


def tiny_train(tiny_npz, tmp_path, **options):
    settings = dict(
        dataset=f"npz:{tiny_npz}",
        model="lenet5-bn",
        epochs=3,
        batch_size=64,
        lr=0.05,
        device="cuda",
        out=str(tmp_path / "run"),
        quiet=True,
        plots=False,
    )
    return convtrain.train(**(settings | options))


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_precision_learns_the_tiny_task_and_loads_on_the_cpu(tiny_npz, tmp_path, precision):
    run = tiny_train(tiny_npz, tmp_path, precision=precision)
    assert run.config.precision == precision
    assert all(row["train_loss"] == row["train_loss"] for row in run.history)  # no NaN
    assert run.results["test_acc"] >= 0.9  # 4 well-separated classes
    model, _ = RunDir(run.path).load_model(device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    if precision == "fp16":  # the scaler acted: its state was saved with a scale
        scaler = torch.load(run.last_path, weights_only=True)["scaler"]
        assert scaler and scaler["scale"] > 0


def test_auto_precision_is_bf16_with_channels_last(tiny_npz, tmp_path, capsys):
    run = tiny_train(tiny_npz, tmp_path, precision="auto", epochs=1)
    assert run.config.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    if run.config.precision == "bf16":
        assert "channels_last" in capsys.readouterr().out


def test_compiled_training_matches_eager_closely(tiny_npz, tmp_path):
    eager = tiny_train(tiny_npz, tmp_path / "eager", epochs=2, precision="fp32")
    compiled = tiny_train(tiny_npz, tmp_path / "compiled", epochs=2, precision="fp32", compile=True)
    assert compiled.results["test_acc"] == pytest.approx(eager.results["test_acc"], abs=0.05)
    assert compiled.history[-1]["train_loss"] == pytest.approx(eager.history[-1]["train_loss"], rel=0.2)


def test_batch_size_auto_probes_a_power_of_two(tiny_npz, tmp_path):
    run = tiny_train(tiny_npz, tmp_path, batch_size="auto", epochs=1)
    size = run.config.batch_size
    assert isinstance(size, int) and size >= 32 and size & (size - 1) == 0


def test_device_loader_keeps_batches_on_the_gpu_and_replays_an_epoch(tiny_npz):
    data = load_dataset(f"npz:{tiny_npz}")
    augment = parse_augment("flip,translate:2,cutout:4")

    def epoch(loader):
        loader.set_epoch(3)
        return [(x.cpu(), y.cpu()) for x, y in loader]

    loader = make_loader(
        data.train, data, 64, "cuda", train=True, augment=augment, seed=7, channels_last=True
    )
    first = epoch(loader)
    x, y = next(iter(loader))
    assert x.device.type == "cuda" and y.device.type == "cuda"
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    again = epoch(make_loader(data.train, data, 64, "cuda", train=True, augment=augment, seed=7))
    for (a, la), (b, lb) in zip(first, again, strict=True):
        assert torch.equal(la, lb) and torch.allclose(a, b)

"""The fast recipes: mnist-fast reaches 99% on the real MNIST test set after one CPU epoch, and
cifar10-fast runs end to end on official-format CIFAR-10 files with the groups and options it promises.

    .venv/bin/python -m pytest tests/config/test_fast_recipes.py -q            # -m "not slow" skips the MNIST epoch
"""

from __future__ import annotations

import pytest
import torch

import convtrain
from cifar_files import write_cifar10
from convtrain.config.recipes import load_recipe
from convtrain.config.train_config import TrainConfig
from convtrain.models import build_model
from convtrain.models.hooks import FitsToData
from convtrain.system import runtime

FAST_RECIPES = ("mnist-fast", "fashion-mnist-fast", "cifar10-fast", "cifar10-cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small nets: see conftest.py


@pytest.mark.parametrize("name", FAST_RECIPES)
def test_fast_recipes_are_valid_configs_for_fastnet_models(name):
    config = TrainConfig.from_dict(load_recipe(name), source=name)
    assert config.model.startswith("fastnet")
    assert config.optimizer == "sgd" and config.nesterov and config.label_smoothing == 0.2
    channels, size = (3, 32) if config.dataset == "cifar10" else (1, 28)
    assert isinstance(build_model(config.model, channels, 10, size), FitsToData)


@pytest.mark.cpu_precision
def test_cifar10_fast_runs_on_official_format_files(tmp_path):
    write_cifar10(tmp_path / "data", per_batch=40)  # 200 train + 40 test images, synthetic pixels
    options = load_recipe("cifar10-fast") | {
        "data_dir": str(tmp_path / "data"),
        "batch_size": 64,
        "max_steps": 3,
        "out": str(tmp_path / "run"),
        "quiet": True,
        "plots": False,
    }
    run = convtrain.train(**options)
    assert run.results["stop_reason"].startswith("reached --max-steps 3")
    assert run.results["test_images"] == 40 and 0.0 <= run.results["test_acc"] <= 1.0
    config = run.config
    # the recipe's 'auto', as resolved on this CPU kind (real, or $CONVTRAIN_CPU_BF16_UNITS in .ci/run)
    assert config.precision == ("fp32" if runtime.cpu_bf16_units() is None else "bf16")
    assert config.compile is False  # compile 'auto': on a CUDA GPU only
    assert config.tta and config.ema == 0.95 and config.augment == "altflip,translate:2"
    assert not torch.equal(run.model.whiten.weight[:12].reshape(12, 12).abs(), torch.eye(12))  # fitted
    groups = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    weights, biases = groups
    assert (weights["initial_lr"], biases["initial_lr"]) == (1.5, 1.5 * 64)
    assert weights["momentum"] == 0.85 and weights["nesterov"]
    assert weights["weight_decay"] * 1.5 == pytest.approx(biases["weight_decay"] * 96)


@pytest.mark.slow
def test_mnist_fast_reaches_99_percent_after_one_cpu_epoch(tmp_path):
    # The bundled MNIST is the real one: 60,000 training and 10,000 test images.
    options = load_recipe("mnist-fast") | {
        "device": "cpu",
        "out": str(tmp_path / "run"),
        "quiet": True,
        "plots": False,
    }
    run = convtrain.train(**options)
    assert run.results["epochs"] == 1
    assert run.results["test_images"] == 10000
    assert run.results["test_acc"] >= 0.990, f"test accuracy {run.results['test_acc']:.4f} after one epoch"

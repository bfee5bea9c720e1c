"""Packaged recipes: listed, valid, faithful to their tutorials, runnable, overridable.

Every recipe runs two steps on tiny data: official-format CIFAR-10 files with synthetic pixels
(tests/cifar_files.py) or the bundled MNIST. The LeNet/MNIST recipe also runs in full (slow).

    python -m pytest tests/config/test_recipes.py -q -m "not slow"
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import convtrain
from cifar_files import write_cifar10
from convtrain.base.errors import ConfigError
from convtrain.cli import build_parser, main
from convtrain.cli.train_commands import config_from_args
from convtrain.config.recipes import load_recipe, recipe_names
from convtrain.config.train_config import TrainConfig, with_model_defaults
from convtrain.models import build_model
from convtrain.training.optim import build_optimizer
from helpers import NAMED_RECIPES, REPO

RECIPE_DIR = REPO / "src" / "convtrain" / "config" / "recipes"
REAL_DATASETS = REPO.parent / "shared" / "datasets"

# What each tutorial fixes, as the issue states it; the recipe must carry exactly these values.
TUTORIALS = {
    "lenet5-mnist": dict(
        dataset="mnist", model="lenet5", optimizer="adam", lr=0.001, weight_decay=0.0,
        schedule="constant", batch_size=64, epochs=5, log_every=100, val_split=0, test_weights="last",
    ),
    "twoconv-cifar10": dict(
        dataset="cifar10", model="twoconv-cnn", normalize=False, optimizer="sgd", lr=0.001,
        momentum=0.9, nesterov=False, weight_decay=0.0, schedule="constant", batch_size=32,
        epochs=10, epoch_eval="test", val_split=0, test_weights="last",
    ),
    "sixconv-cifar10": dict(
        dataset="cifar10", model="sixconv-cnn", normalize=False, val_split=5000, optimizer="adam",
        lr=0.001, weight_decay=0.0, schedule="constant", epochs=10, test_weights="last", eval_before=True,
    ),
    "lenet5-bn-cifar10": dict(
        dataset="cifar10", model="lenet5-bn", normalize=False, loader="device", epoch_eval="test",
        test_weights="last",
    ),
    "fourconv-cifar10": dict(
        dataset="cifar10", model="fourconv-cnn", val_split=0.2, batch_size=30,
        augment="flip,rotate:20", init="normal", optimizer="adam", lr=0.001, weight_decay=0.0,
        schedule="constant", epochs=60, monitor="val_loss", test_weights="best",
    ),
}  # fmt: skip


def recipe_config(name: str) -> TrainConfig:
    return TrainConfig.from_dict(load_recipe(name), source=name)


# ----- listing and loading -----


def test_recipes_command_lists_every_yaml_file_once_with_its_description(capsys):
    on_disk = sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == on_disk == recipe_names()
    for line, name in zip(lines, on_disk, strict=True):
        description = yaml.safe_load((RECIPE_DIR / f"{name}.yaml").read_text())["description"]
        assert line.split(None, 1)[1] == description


def test_every_tutorial_has_a_recipe_and_its_fast_variants_exist():
    names = set(recipe_names())
    assert set(TUTORIALS) <= names
    for fast in (
        "lenet5-mnist-fast",
        "twoconv-cifar10-fast",
        "sixconv-cifar10-fast",
        "fourconv-cifar10-fast",
    ):
        assert fast in names
        base = recipe_config(fast.removesuffix("-fast"))
        quick = recipe_config(fast)
        assert (quick.model, quick.dataset) == (base.model, base.dataset)  # the same network and data
        assert quick.epochs < base.epochs and quick.batch_size > base.batch_size


@pytest.mark.parametrize("name", recipe_names())
def test_recipe_loads_into_a_valid_config_with_its_info_lines(name):
    raw = yaml.safe_load((RECIPE_DIR / f"{name}.yaml").read_text())
    for key in ("description", "published"):
        assert isinstance(raw.get(key), str) and raw[key].strip() and "\n" not in raw[key], key
    options = load_recipe(name)
    assert "description" not in options and "published" not in options
    config = recipe_config(name)
    for key, value in options.items():
        assert getattr(config, key) == value, key


@pytest.mark.parametrize("name", sorted(TUTORIALS))
def test_recipe_carries_the_tutorials_settings(name):
    config = recipe_config(name)
    for key, value in TUTORIALS[name].items():
        assert getattr(config, key) == value, key


@pytest.mark.parametrize("name", sorted(TUTORIALS))
def test_recipe_builds_the_tutorials_optimizer(name):
    """The optimizer the engine builds equals one made by hand from the tutorial's settings."""
    config = recipe_config(name)
    model = build_model(
        config.model, 1 if config.dataset == "mnist" else 3, 10, 28 if config.dataset == "mnist" else 32
    )
    built = build_optimizer(model, with_model_defaults(config))
    params = list(model.parameters())
    if config.optimizer == "sgd":
        reference = torch.optim.SGD(params, lr=config.lr, momentum=0.9)  # plain momentum, no decay
    else:
        reference = torch.optim.Adam(params, lr=0.001)  # PyTorch's defaults: betas (0.9, 0.999), no decay
    assert type(built) is type(reference)
    group, expected = built.param_groups[0], reference.param_groups[0]
    for key, value in expected.items():
        if key != "params":
            assert group[key] == value, key


# ----- command-line precedence and errors -----


def test_flags_override_recipe_values_and_the_rest_stays():
    args = build_parser().parse_args(
        ["train", "--recipe", "twoconv-cifar10", "--lr", "0.01", "--batch-size", "16", "--normalize"]
    )
    config = config_from_args(args)
    assert (config.lr, config.batch_size, config.normalize) == (0.01, 16, True)
    assert (config.optimizer, config.momentum, config.nesterov, config.epochs) == ("sgd", 0.9, False, 10)
    assert config.recipe == "twoconv-cifar10"


def test_unknown_recipe_is_a_one_line_error_exit_2(capsys):
    assert main(["train", "--recipe", "no-such-recipe"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "unknown recipe 'no-such-recipe'" in err[0] and "lenet5-mnist" in err[0]


def test_the_python_api_applies_a_recipe_under_its_other_arguments(tmp_path):
    """`convtrain.train(recipe=...)` trains with the recipe's options, as `--recipe` does, and the
    other keyword arguments override them."""
    run = convtrain.train(
        recipe="lenet5-mnist",
        lr=0.02,
        epochs=1,
        max_steps=2,
        limit_train=256,
        test=False,
        plots=False,
        quiet=True,
        out=str(tmp_path / "run"),
    )
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    recipe = recipe_config("lenet5-mnist")
    assert (saved["recipe"], saved["model"], saved["optimizer"]) == (
        "lenet5-mnist",
        "lenet5",
        recipe.optimizer,
    )
    assert saved["model"] != convtrain.TrainConfig().model  # the recipe's, not the default model
    assert (saved["lr"], saved["epochs"]) == (0.02, 1)
    assert run.results["epochs"] == 1


def test_an_unknown_recipe_in_the_python_api_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown recipe 'no-such-recipe'.*mnist-fast"):
        convtrain.train(recipe="no-such-recipe")


# ----- every recipe runs -----


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, per_batch=120)  # 600 train + 120 test: two steps of the largest batch (256) fit
    return root


def smoke_args(name: str, cifar_root: Path, tmp_path: Path) -> list[str]:
    """Two steps of one epoch on tiny data; CPU-only settings swapped for ones this machine runs."""
    config = recipe_config(name)
    if config.dataset == "cifar10":
        data_dir = cifar_root
    elif config.dataset == "mnist":
        data_dir = tmp_path / "no-data"  # empty: the bundled MNIST is used
    elif (REAL_DATASETS / "FashionMNIST" / "raw").is_dir():  # fashion-mnist (SMOKE_DATASETS)
        data_dir = REAL_DATASETS  # the real files: two steps read them as fast as tiny ones
    else:
        pytest.skip(f"the real Fashion-MNIST files are not at {REAL_DATASETS}")
    args = [
        "train",
        "--recipe",
        name,
        "--data-dir",
        str(data_dir),
        "--no-download",
        "--out",
        str(tmp_path / "run"),
    ]
    epochs = str(config.freeze_epochs + 1)  # a recipe that freezes needs an epoch after the frozen ones
    args += ["--epochs", epochs, "--max-steps", "2", "--limit-train", "512", "--quiet", "--no-plots"]
    args += ["--device", "cpu"]
    if config.val_split >= 1:  # a count such as 5000 is more than the tiny set holds; keep it a count
        args += ["--val-split", "20"]
    if config.precision != "fp32" or config.compile or config.batch_size == "auto":
        args += ["--precision", "fp32", "--no-compile", "--batch-size", "64"]
    if config.dataset == "mnist":
        args += ["--log-every", "1"]  # a running line per step: checks the printed running figures
    return args


SMOKE_DATASETS = ("cifar10", "mnist", "fashion-mnist")  # what smoke_args gives data for


def smoke_recipes() -> list[str]:
    return [name for name in recipe_names() if recipe_config(name).dataset in SMOKE_DATASETS]


def test_every_recipe_runs_two_steps_in_one_of_the_two_smoke_tests():
    named = {p if isinstance(p, str) else p.values[0] for p in NAMED_RECIPES}  # data/test_dataset_registry.py
    assert sorted(named | set(smoke_recipes())) == recipe_names() and not named & set(smoke_recipes())


@pytest.mark.parametrize("name", smoke_recipes())
def test_recipe_runs_two_steps(name, cifar_root, tmp_path, capsys):
    assert main(smoke_args(name, cifar_root, tmp_path)) == 0
    run = tmp_path / "run"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["recipe"] == name
    for key in ("model", "optimizer", "lr", "schedule", "augment", "normalize", "epoch_eval", "monitor"):
        assert saved[key] == getattr(with_model_defaults(recipe_config(name)), key), key
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2
    results = json.loads((run / "results.json").read_text())
    assert results["test_images"] == (120 if saved["dataset"] == "cifar10" else 10000)
    assert 0.0 <= results["test_acc"] <= 1.0
    if saved["log_every"]:
        assert "step 2/" in capsys.readouterr().out


# ----- the LeNet/MNIST recipe on real MNIST -----


@pytest.mark.slow
def test_lenet5_mnist_recipe_learns_the_digits_in_its_first_epoch(tmp_path):
    """The tutorial's recipe on the bundled (real) MNIST, on the CPU, cut to its first epoch: 937
    steps of batch 64 with the running lines every 100 steps, then the test split. One epoch reaches
    97.8-97.9% (1 and 2 threads, 2026-12-03); the five epochs' figure in README is measured by
    running the recipe whole, which takes a minute and a half of `make test` on 2 cores."""
    env = {**os.environ, "CONVTRAIN_DATA": str(tmp_path / "empty-data-root")}
    out = tmp_path / "lenet5-mnist"
    command = [sys.executable, "-m", "convtrain", "train", "--recipe", "lenet5-mnist", "--out", str(out)]
    done = subprocess.run(
        [*command, "--epochs", "1", "--device", "cpu", "--no-plots", "--no-download"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("step 900/937") == 1  # 60,000 // 64 = 937 whole batches each epoch
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 1 and results["test_images"] == 10000
    assert results["test_acc"] >= 0.97, results

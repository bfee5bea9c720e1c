"""Every zoo model trains a few batches on every kind of dataset: MNIST, Fashion-MNIST, CIFAR-10/100
(official file format, synthetic pixels), a folder of real photos and an npz file."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifar_files import write_cifar10, write_cifar100
from convtrain.config.train_config import TrainConfig, with_model_defaults
from convtrain.data.augment import parse_augment
from convtrain.data.dataset_registry import load_dataset
from convtrain.data.loader import make_loader
from convtrain.models import build_model, model_names
from convtrain.training.optim import build_optimizer

pytestmark = pytest.mark.xdist_group("zoo-datasets")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, shared_datasets, tiny_rgb_npz):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, per_batch=16)
    write_cifar100(root, per_batch=16)
    return {
        "mnist": load_dataset("mnist", download=False),
        "fashion-mnist": load_dataset("fashion-mnist", str(shared_datasets), download=False),
        "cifar10": load_dataset("cifar10", str(root), download=False),
        "cifar100": load_dataset("cifar100", str(root), download=False),
        "folder": load_dataset(f"folder:{shared_datasets / 'cifar10-sample'}"),
        "npz": load_dataset(f"npz:{tiny_rgb_npz}"),
    }


@pytest.mark.parametrize("model_name", model_names())
def test_model_trains_two_batches_on_every_dataset(datasets, model_name):
    for name, data in datasets.items():
        torch.manual_seed(0)
        model = build_model(model_name, data.channels, data.num_classes, data.image_size)
        if hasattr(model, "fit_to_data"):
            model.fit_to_data(data.train.images[:256].float() / 255)
        optimizer = build_optimizer(model, with_model_defaults(TrainConfig(lr=0.01)))
        loader = make_loader(
            data.train.subset(torch.arange(16)),
            data,
            batch_size=8,
            device="cpu",
            train=True,
            augment=parse_augment("flip,crop:2"),
        )
        loader.set_epoch(0)
        steps = 0
        for x, y in loader:  # (8, C, H, W), (8,)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            assert torch.isfinite(loss), f"{model_name} on {name}: loss {loss}"
            steps += 1
        assert steps == 2, f"{model_name} on {name}"
        with torch.no_grad():
            assert model.eval()(x).shape == (8, data.num_classes), f"{model_name} on {name}"

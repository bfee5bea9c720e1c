"""fastnet: the whitening layer whitens, the frozen parts stay frozen, Dirac convs start as identities,
the optimizer groups follow the recipe's rules, and the network trains through convtrain on CPU.

    .venv/bin/python -m pytest tests/models/test_fastnet.py -q
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convtrain
from convtrain.models import build_model
from convtrain.models.fastnet import FastNet, FrozenScaleBatchNorm, PatchWhitening, dirac_conv
from convtrain.models.hooks import FitsToData, HasParameterGroups

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small nets: see conftest.py


def correlated_images(n: int = 64, channels: int = 3, size: int = 12, seed: int = 0) -> torch.Tensor:
    """Images whose neighbouring pixels and channels are strongly correlated, with non-zero mean."""
    g = torch.Generator().manual_seed(seed)
    smooth = F.avg_pool2d(torch.randn(n, channels, size + 2, size + 2, generator=g), 3, stride=1)
    mix = torch.eye(channels) + 0.5  # correlate the channels too
    mixed = torch.einsum("dc,nchw->ndhw", mix, smooth)  # (N, C, H, W)
    return 2.0 + 3.0 * mixed + 0.3 * torch.randn(n, channels, size, size, generator=g)


def test_whitened_patches_have_zero_mean_and_identity_covariance():
    images = correlated_images()
    layer = PatchWhitening(3, patch=2)
    layer.fit(images)
    dim = 3 * 2 * 2
    # The patches again, by an independent route: F.unfold orders each column as the conv weight does.
    patches = F.unfold(images.double(), kernel_size=2).transpose(1, 2).reshape(-1, dim)  # (M, 12)
    before = torch.cov(patches.T, correction=0)
    assert (before - torch.diag(before.diag())).abs().max() > 1.0  # the input really is correlated
    filters = layer.weight[:dim].double().view(dim, dim)
    whitened = patches @ filters.T + layer.bias[:dim].double()  # (M, 12)
    assert whitened.mean(0).abs().max() < 1e-6
    # Eigenvalues here are >= 0.09, so the eps of 5e-4 moves the diagonal by < 0.6%.
    covariance = torch.cov(whitened.T, correction=0)
    assert torch.allclose(covariance, torch.eye(dim, dtype=torch.float64), atol=6e-3)


def test_whitening_filters_are_scaled_eigenvectors_and_come_in_opposite_pairs():
    images = correlated_images(seed=1)
    layer = PatchWhitening(3, patch=2, eps=0.0)
    layer.fit(images)
    patches = F.unfold(images.double(), kernel_size=2).transpose(1, 2).reshape(-1, 12)
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(patches.T, correction=0))
    filters = layer.weight[:12].double().view(12, 12)
    # Each filter is +-(eigenvector / sqrt(eigenvalue)): the sign of an eigenvector is arbitrary.
    expected = eigenvectors.T / eigenvalues.sqrt()[:, None]
    signs = torch.sign((filters * expected).sum(1))[:, None]
    assert torch.allclose(filters, signs * expected, rtol=1e-3, atol=1e-4)
    assert torch.equal(layer.weight[12:], -layer.weight[:12])
    assert torch.equal(layer.bias[12:], -layer.bias[:12])


def test_forward_is_the_conv_of_the_fitted_filters():
    images = correlated_images(n=4, seed=2)
    layer = PatchWhitening(3)
    layer.fit(images)
    out = layer(images.float())  # (4, 24, 11, 11)
    assert out.shape == (4, 24, 11, 11)
    reference = F.conv2d(images.float(), layer.weight, layer.bias)
    assert torch.allclose(out, reference)


def test_unfitted_whitening_is_the_identity_on_each_patch_pixel():
    x = torch.randn(2, 1, 5, 5)
    out = PatchWhitening(1)(x)  # (2, 8, 4, 4): the 4 patch pixels, then their negatives
    assert torch.equal(out[:, 0], x[:, 0, :4, :4]) and torch.equal(out[:, 3], x[:, 0, 1:, 1:])
    assert torch.equal(out[:, 4:], -out[:, :4])


@pytest.mark.parametrize("name,whiten_bias_trains", [("fastnet-tiny", False), ("fastnet-small", True)])
def test_whitening_and_batchnorm_scales_are_frozen_and_biases_train(name, whiten_bias_trains):
    torch.manual_seed(0)
    model = build_model(name, 1, 10, 28)
    model.fit_to_data(torch.randn(32, 1, 28, 28))
    trainable = {id(p) for p in model.parameters()}
    assert id(model.whiten.weight) not in trainable  # a buffer: never seen by an optimizer
    assert (id(model.whiten.bias) in trainable) == whiten_bias_trains
    norms = [m for m in model.modules() if isinstance(m, FrozenScaleBatchNorm)]
    assert len(norms) == 6 and all(id(m.weight) not in trainable and id(m.bias) in trainable for m in norms)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert before["features.0.bias"].abs().sum() > 0  # set by the fit, trained or not
    optimizer = torch.optim.SGD(model.parameter_groups(lr=0.1, weight_decay=5e-4), lr=0.1, momentum=0.9)
    for _ in range(3):
        loss = F.cross_entropy(model(torch.randn(16, 1, 28, 28)), torch.randint(0, 10, (16,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    assert torch.equal(after["features.0.weight"], before["features.0.weight"])
    assert torch.equal(after["features.0.bias"], before["features.0.bias"]) != whiten_bias_trains
    for key, value in after.items():
        if key.endswith("norm1.weight") or key.endswith("norm2.weight"):
            assert torch.equal(value, torch.ones_like(value)), key
    assert not torch.equal(after["features.2.norm1.bias"], before["features.2.norm1.bias"])


def test_a_frozen_whitening_bias_spares_the_first_conv_its_input_gradient():
    """With nothing trainable before the first block, backward never asks that conv for the gradient
    of its input (the largest in the network); a trained bias does."""
    frozen = FastNet(1, 10, widths=(16, 32, 64), train_whiten_bias=False)
    trained = FastNet(1, 10, widths=(16, 32, 64), train_whiten_bias=True)
    x = torch.randn(4, 1, 28, 28)
    seen = []
    for model in (frozen, trained):
        first = model.features[2].conv1
        first.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].requires_grad))
        model(x).sum().backward()
    assert seen == [False, True]


def test_a_checkpoint_with_a_trained_whitening_bias_loads_into_the_frozen_one():
    """Runs saved while fastnet-tiny still trained its whitening bias keep the same state_dict keys."""
    trained = FastNet(1, 10, widths=(16, 32, 64), train_whiten_bias=True)
    with torch.no_grad():
        trained.whiten.bias.add_(0.5)
    model = build_model("fastnet-tiny", 1, 10, 28)
    model.load_state_dict(trained.state_dict())  # strict: the same keys
    assert torch.equal(model.whiten.bias, trained.whiten.bias)


@pytest.mark.cpu_precision
def test_resuming_a_run_saved_while_the_whitening_bias_trained_is_one_line(
    tiny_npz, tmp_path, monkeypatch, capsys
):
    """A run started before fastnet-tiny froze its whitening bias has one more parameter in its
    optimizer state: --resume refuses it in one line that says what to do, and --init-from takes
    its weights."""
    from convtrain.cli import main
    from convtrain.models import fastnet as fastnet_module

    run = tmp_path / "old"
    args = ["train", "--dataset", f"npz:{tiny_npz}", "--model", "fastnet-tiny", "--batch-size", "64"]
    args += ["--quiet", "--no-plots", "--no-test", "--max-steps", "2"]
    with monkeypatch.context() as old:  # the network as it was: the bias trained
        real = fastnet_module.FastNet.__init__
        old.setattr(
            fastnet_module.FastNet,
            "__init__",
            lambda self, *a, **k: real(self, *a, **{**k, "train_whiten_bias": True}),
        )
        assert main([*args, "--epochs", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    saved = (run / "last.pt").read_bytes(), (run / "metrics.csv").read_text()
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 2
    assert ((run / "last.pt").read_bytes(), (run / "metrics.csv").read_text()) == saved  # nothing lost
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "optimizer state does not fit" in err[0] and "--init-from" in err[0]
    assert main([*args, "--epochs", "1", "--init-from", f"{run}:last", "--out", str(tmp_path / "new")]) == 0


def test_dirac_conv_passes_its_input_through_on_the_first_channels():
    x = torch.randn(3, 8, 7, 7)
    conv = dirac_conv(8, 20)
    with torch.no_grad():
        out = conv(x)  # (3, 20, 7, 7)
    assert torch.allclose(out[:, :8], x, atol=1e-6)
    assert out[:, 8:].abs().sum() > 0  # the remaining filters start random, not zero
    assert torch.allclose(dirac_conv(8, 8)(x), x, atol=1e-6)


def test_parameter_groups_scale_bias_lr_and_keep_lr_times_decay():
    model = FastNet(3, 10, widths=(8, 16, 16), bias_lr_scale=64.0)
    assert isinstance(model, HasParameterGroups) and isinstance(model, FitsToData)  # the declared hooks
    weights, biases = model.parameter_groups(lr=0.5, weight_decay=0.002)
    assert weights["lr"] == 0.5 and biases["lr"] == 32.0
    assert weights["lr"] * weights["weight_decay"] == pytest.approx(biases["lr"] * biases["weight_decay"])
    grouped = [id(p) for group in (weights, biases) for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each exactly once
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, FrozenScaleBatchNorm)}
    assert {id(p) for p in biases["params"]} == bn_biases


@pytest.mark.parametrize(
    "name,channels,size,features", [("fastnet", 3, 32, (256, 3, 3)), ("fastnet-tiny", 1, 28, (64, 3, 3))]
)
def test_output_and_feature_shapes(name, channels, size, features):
    model = build_model(name, channels, 10, size).eval()
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        assert model.features(x).shape == (2, *features)  # 32 -> 31 -> 15 -> 7 -> 3; 28 -> 27 -> 13 -> 6 -> 3
        logits = model(x)
    assert logits.shape == (2, 10)
    head = model.head[-1]
    expected = F.linear(F.adaptive_max_pool2d(model.features(x), 1).flatten(1), head.weight) * (1 / 9)
    assert torch.allclose(logits, expected, atol=1e-6)  # the head is scaled by 1/9


@pytest.mark.cpu_precision
def test_fastnet_trains_through_convtrain_and_is_fitted_to_the_data(tiny_npz, tmp_path):
    run = convtrain.train(
        dataset=f"npz:{tiny_npz}",
        model="fastnet-tiny",
        epochs=3,
        batch_size=32,
        lr=0.1,
        momentum=0.85,
        weight_decay=1e-3,
        label_smoothing=0.2,
        out=str(tmp_path / "run"),
        quiet=True,
        plots=False,
    )
    losses = [row["train_loss"] for row in run.history]
    assert losses[-1] < losses[0]
    assert run.results["test_acc"] > 0.9  # 4 separable classes
    # fit_to_data ran: the filters are no longer the unfitted +-identity.
    assert not torch.equal(run.model.whiten.weight[:4].reshape(4, 4).abs(), torch.eye(4))

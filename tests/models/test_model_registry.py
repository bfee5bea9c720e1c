"""The model zoo: every registered network builds, runs forward and backward at several sizes, and its
parameter and FLOP counts match hand computations.

    .venv/bin/python -m pytest tests/models/test_model_registry.py -q
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from convtrain.base.errors import ConfigError
from convtrain.models import (
    build_model,
    init_weights,
    model_description,
    model_min_size,
    model_names,
    register_model,
    registered_model,
)
from convtrain.models.summary import count_flops, count_parameters, format_model_table, model_table, summarize

SIZES = [(1, 28), (3, 32), (3, 64)]  # (channels, image side)


def test_the_zoo_holds_every_promised_model():
    expected = {
        "lenet5",
        "lenet5-bn",
        "twoconv-cnn",
        "sixconv-cnn",
        "fourconv-cnn",
        "resnet9",
        "resnet18",
        "mnist-cnn",
    }
    assert expected <= set(model_names())
    assert model_names() == sorted(model_names())
    for name in model_names():
        assert model_description(name).strip()


@pytest.mark.parametrize("channels,size", SIZES)
@pytest.mark.parametrize("name", model_names())
def test_forward_backward_shapes_and_finite_grads(name, channels, size):
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels, num_classes=7, image_size=size).train()
    x = torch.randn(2, channels, size, size)  # (B, C, H, W); batch 2 keeps resnet18 at 64px cheap
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.tensor([0, 6])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: {param_name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: {param_name} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", model_names())
def test_odd_and_minimum_sizes_build_and_run(name):
    # Odd sides exercise the floor in every pool; the minimum side must still give one pixel at the end.
    for size in (37, model_min_size(name)):
        model = build_model(name, in_channels=3, num_classes=5, image_size=size).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, size, size)).shape == (1, 5)
    with pytest.raises(ConfigError, match=f"at least {model_min_size(name)}x{model_min_size(name)}"):
        build_model(name, 3, 5, model_min_size(name) - 1)


def test_lenet5_parameters_by_hand():
    # 1x28x28 with padding 2: 28 -> conv5 28 -> pool 14 -> conv5 10 -> pool 5, so 16*5*5 = 400 features.
    conv1 = 1 * 6 * 5 * 5 + 6  # 156
    conv2 = 6 * 16 * 5 * 5 + 16  # 2,416
    fc1 = 400 * 120 + 120  # 48,120
    fc2 = 120 * 84 + 84  # 10,164
    fc3 = 84 * 10 + 10  # 850
    assert conv1 + conv2 + fc1 + fc2 + fc3 == 61_706
    assert count_parameters(build_model("lenet5", 1, 10, 28)) == 61_706
    # 3x32x32 without padding: 32 -> 28 -> 14 -> 10 -> 5, the same 400 features; conv1 sees 3 channels.
    assert count_parameters(build_model("lenet5", 3, 10, 32)) == 61_706 - 156 + (3 * 6 * 25 + 6)
    # lenet5-bn: the second conv loses its 16 biases, the BatchNorm adds 16 weights + 16 biases.
    assert count_parameters(build_model("lenet5-bn", 1, 10, 28)) == 61_706 - 16 + 32


def test_lenet5_flattens_400_features_at_28_and_32():
    for channels, size in [(1, 28), (3, 32)]:
        model = build_model("lenet5", channels, 10, size)
        assert model.features(torch.zeros(1, channels, size, size)).shape == (1, 16, 5, 5)


def test_twoconv_cnn_has_the_8192_to_512_layer_at_32px():
    model = build_model("twoconv-cnn", 3, 10, 32)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert (linears[0].in_features, linears[0].out_features) == (32 * 16 * 16, 512) == (8192, 512)
    conv1 = 3 * 32 * 9 + 32  # 896
    conv2 = 32 * 32 * 9 + 32  # 9,248
    fc1 = 8192 * 512 + 512  # 4,194,816
    fc2 = 512 * 10 + 10  # 5,130
    assert count_parameters(model) == conv1 + conv2 + fc1 + fc2 == 4_210_090
    # The fc input follows the image side: 64px -> 32 * 32 * 32.
    assert [m for m in build_model("twoconv-cnn", 3, 10, 64).modules() if isinstance(m, nn.Linear)][
        0
    ].in_features == 32768


def test_resnet18_matches_the_known_cifar_size():
    assert count_parameters(build_model("resnet18", 3, 10, 32)) == 11_173_962


def test_count_flops_by_hand_and_mode_restored():
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),  # 5x5 out: 4*5*5 outputs x 2*3*3 MACs = 1,800
        nn.BatchNorm2d(4),  # not counted
        nn.Conv2d(4, 6, 3, stride=2, groups=2),  # 2x2 out: 6*2*2 outputs x (4/2)*3*3 MACs = 432
        nn.Flatten(),
        nn.Linear(24, 3),  # 24*3 = 72 MACs
    )
    net.train()
    net[1].eval()  # a partly frozen model must come back exactly as it was
    assert count_flops(net, (2, 5, 5)) == 2 * (1800 + 432 + 72)
    assert net.training and net[0].training and not net[1].training


def test_mnist_cnn_flops_by_hand():
    macs = 28 * 28 * 32 * (1 * 9) + 14 * 14 * 64 * (32 * 9) + 7 * 7 * 128 * (64 * 9) + 128 * 10
    assert count_flops(build_model("mnist-cnn", 1, 10, 28), (1, 28, 28)) == 2 * macs == 14_904_832


@pytest.mark.parametrize("name", ["lenet5-bn", "resnet18"])
def test_summary_lists_every_layer_and_the_totals(name):
    model = build_model(name, 3, 10, 32)
    text = summarize(model, (3, 32, 32))
    for layer_name, module in model.named_modules():
        if layer_name and not list(module.children()):
            assert layer_name in text
    assert f"Total params: {count_parameters(model):,}" in text
    assert f"FLOPs per image: {count_flops(model, (3, 32, 32)):,}" in text


def test_model_table_counts_match_real_models():
    rows = model_table(in_channels=1, image_size=28, num_classes=10)
    assert [row["name"] for row in rows] == model_names()
    for row in rows:
        if row["name"] in ("lenet5", "mnist-cnn", "fourconv-cnn"):
            model = build_model(row["name"], 1, 10, 28)
            assert row["params"] == count_parameters(model)
            assert row["flops"] == count_flops(model, (1, 28, 28))
    lenet = next(row for row in rows if row["name"] == "lenet5")
    # conv1 28*28 outputs x 6 maps x 25 taps, conv2 10*10 x 16 x (6*25), then the three fc layers
    assert lenet["flops"] == 2 * (28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10)
    text = format_model_table(rows)
    assert all(name in text for name in model_names()) and "61,706" in text


def test_model_table_marks_models_too_big_for_tiny_images():
    rows = {row["name"]: row for row in model_table(3, 8, 10)}
    assert rows["lenet5"]["params"] is None and "12px" in rows["lenet5"]["description"]
    assert rows["mnist-cnn"]["params"] == count_parameters(build_model("mnist-cnn", 3, 10, 8))


def test_init_normal_gives_std_002_zero_biases_and_unit_norms():
    model = build_model("lenet5-bn", 3, 10, 64)  # fc1 has 16*13*13*120 = 324,480 weights
    bn = model.features[4]
    nn.init.constant_(bn.weight, 3.0)
    nn.init.constant_(bn.bias, 2.0)
    init_weights(model, "normal")
    fc1 = model.head[1]
    assert abs(fc1.weight.std().item() - 0.02) < 0.0005
    assert abs(fc1.weight.mean().item()) < 0.0005
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear) and module.bias is not None:
            assert torch.all(module.bias == 0)
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_init_kaiming_and_xavier_scales():
    torch.manual_seed(0)
    linear = build_model("sixconv-cnn", 3, 10, 32).head[1]  # Linear(4096, 1024)
    model = nn.Sequential(linear)
    init_weights(model, "kaiming")
    assert abs(linear.weight.std().item() - (2 / 4096) ** 0.5) < 0.0005  # He: sqrt(2 / fan_in)
    init_weights(model, "xavier")
    bound = (6 / (4096 + 1024)) ** 0.5  # Glorot uniform on [-bound, bound], std = bound / sqrt(3)
    assert linear.weight.abs().max().item() <= bound * (1 + 1e-6)  # the bound, rounded to float32
    assert abs(linear.weight.std().item() - bound / 3**0.5) < 0.0005
    assert torch.all(linear.bias == 0)


def test_init_default_leaves_weights_alone_and_bad_scheme_is_refused():
    model = build_model("mnist-cnn", 1, 10, 28)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    init_weights(model, "default")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError, match="init must be one of"):
        init_weights(model, "orthogonal")


def test_fourconv_cnn_applies_its_own_normal_init():
    from convtrain.models.tutorial_cnns import FOURCONV_WEIGHT_STD

    model = build_model("fourconv-cnn", 3, 10, 32)
    fc1 = model.head[1]  # Linear(8192, 512): 4.2M weights, a tight std estimate
    assert abs(fc1.weight.std().item() - FOURCONV_WEIGHT_STD) < FOURCONV_WEIGHT_STD * 0.02
    assert all(torch.all(m.bias == 0) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear))


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(ConfigError, match="unknown model 'lenet7'") as error:
        build_model("lenet7")
    assert all(name in str(error.value) for name in model_names())
    with pytest.raises(ConfigError, match="unknown model"):
        model_description("lenet7")


def toy(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, num_classes))


def test_a_new_family_registers_through_the_decorator():
    with registered_model("toy-net", toy, "a linear probe", min_size=20):
        assert "toy-net" in model_names() and model_description("toy-net") == "a linear probe"
        assert build_model("toy-net", 1, 4, 20)(torch.zeros(3, 1, 20, 20)).shape == (3, 4)
        with pytest.raises(ConfigError, match="at least 20x20"):
            build_model("toy-net", 1, 4, 16)
        with pytest.raises(ValueError, match="registered twice"):
            register_model("toy-net", "another")(lambda c, n, s: nn.Identity())
    assert "toy-net" not in model_names()  # gone with the block
    with pytest.raises(ValueError, match="registered twice"), registered_model("lenet5", toy):
        pass  # a zoo model's name is refused, and the zoo model stays
    assert model_description("lenet5") != ""

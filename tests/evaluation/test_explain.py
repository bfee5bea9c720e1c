"""Heat maps: Grad-CAM finds the evidence, differs from a random network's, fits every zoo model, refuses bad input.

    python -m pytest -q tests/evaluation/test_explain.py

The localisation and sanity tests share one small network trained on squares: the class of an
image is decided only by where a bright square sits over noise, so the right map is known.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from PIL import Image
from torch import nn

from convtrain.evaluation.explain import (
    ExplainError,
    conv_layer_names,
    default_layer,
    explain,
    overlay,
    plot_explanation,
    plot_explanation_grid,
)
from convtrain.models import build_model, model_min_size, model_names

needs_captum = pytest.mark.skipif(importlib.util.find_spec("captum") is None, reason="needs captum")

SIZE, SIDE = 16, 6  # image and square sides (pixels)
CORNERS = [(1, 1), (1, 9), (9, 1), (9, 9)]  # where each class's square starts, before a +-1 px jitter
MODEL = "twoconv-cnn"


# ----- the square dataset and its network -----


def square_images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images (N, 1, S, S) of noise with one bright square, labels (N,), square masks (N, S, S)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % len(CORNERS)
    images = torch.randint(0, 140, (count, 1, SIZE, SIZE), generator=g)
    masks = torch.zeros(count, SIZE, SIZE, dtype=torch.bool)
    jitter = torch.randint(-1, 2, (count, 2), generator=g)
    for i, (label, (dy, dx)) in enumerate(zip(labels.tolist(), jitter.tolist(), strict=True)):
        y, x = CORNERS[label][0] + dy, CORNERS[label][1] + dx
        masks[i, y : y + SIDE, x : x + SIDE] = True
    images[masks[:, None]] += 110  # the square: as bright as the brightest noise plus a margin
    return images.clamp(0, 255).to(torch.uint8), labels, masks


def normalise(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - 0.35) / 0.25  # (N, 1, S, S), about the data's mean and std


@pytest.fixture(scope="module")
def squares() -> dict:
    """twoconv-cnn trained for 3 epochs on 512 square images, and 128 test images with their masks.

    twoconv-cnn's last conv keeps the full 16 px, so its map can be sharp enough to score. Networks
    whose last conv map is 4x4 and sees the whole image (mnist-cnn, lenet5) learn the squares just
    as well, but their Grad-CAM spreads over most of the image: that measures the layer, not the code.
    """
    torch.manual_seed(0)
    images, labels, _ = square_images(512, seed=1)
    model = build_model(MODEL, in_channels=1, num_classes=len(CORNERS), image_size=SIZE)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = normalise(images)
    for _ in range(3):
        for batch in torch.randperm(len(x)).split(32):
            loss = nn.functional.cross_entropy(model(x[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    test_images, test_labels, masks = square_images(128, seed=2)
    with torch.no_grad():
        accuracy = (model(normalise(test_images)).argmax(1) == test_labels).float().mean().item()
    return {
        "model": model,
        "x": normalise(test_images),
        "labels": test_labels,
        "masks": masks,
        "acc": accuracy,
    }


def mass_inside(heat: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of each map's total (N, H, W) that lies inside its mask."""
    return (heat * masks).flatten(1).sum(1) / heat.flatten(1).sum(1).clamp_min(1e-12)  # (N,)


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks of a 1-D tensor, ties sharing their mean rank (as Spearman's rho needs: maps have flat zeros)."""
    unique, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return ((ends - counts + ends - 1) / 2)[inverse]


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = average_ranks(a.flatten()), average_ranks(b.flatten())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


def test_spearman_matches_a_hand_computation():
    # ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4]; of [1, 3, 2, 4] are [1, 3, 2, 4]: rho = 4.5 / sqrt(4.5 * 5)
    assert spearman(torch.tensor([1.0, 2, 2, 3]), torch.tensor([1.0, 3, 2, 4])) == pytest.approx(
        4.5 / (4.5 * 5) ** 0.5
    )
    assert spearman(torch.arange(9.0), -torch.arange(9.0)) == pytest.approx(-1)


@needs_captum
def test_gradcam_puts_most_of_its_mass_on_the_square(squares):
    assert squares["acc"] >= 0.95, "the network did not learn the squares; the maps would mean nothing"
    heat = explain(squares["model"], squares["x"], "gradcam")  # (N, S, S), the predicted classes
    inside = mass_inside(heat, squares["masks"])
    assert (inside > 0.5).float().mean() >= 0.9, f"median share inside the square: {inside.median():.2f}"


@needs_captum
@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_maps_of_a_randomised_network_differ(squares, method):
    """Adebayo et al. 2018: a map that survives randomising the weights does not explain the training."""
    torch.manual_seed(1)
    random = build_model(MODEL, in_channels=1, num_classes=len(CORNERS), image_size=SIZE)
    x, labels = squares["x"][:64], squares["labels"][:64]
    trained = explain(squares["model"], x, method, target=labels)
    randomised = explain(random, x, method, target=labels)
    rho = [spearman(a, b) for a, b in zip(trained, randomised, strict=True)]
    assert sum(rho) / len(rho) < 0.5


# ----- every zoo model, every method, 1 and 3 channels -----


@needs_captum
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", model_names())
def test_heat_maps_have_the_input_size_for_every_zoo_model(name, channels):
    side = max(SIZE, model_min_size(name))
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels, num_classes=3, image_size=side)
    x = torch.randn(2, channels, side, side)
    layer = default_layer(model, x[:1])
    assert layer in dict(model.named_modules())
    for method in ("gradcam", "saliency"):
        heat = explain(model, x, method)
        assert heat.shape == (2, side, side)
        assert torch.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    assert model.training, "explain must give the model back in the mode it found it"


@needs_captum
def test_integrated_gradients_and_a_non_square_input():
    model = build_model("mnist-cnn", in_channels=3, num_classes=4, image_size=16).eval()
    x = torch.randn(3, 3, 12, 20)
    for method in ("ig", "saliency", "gradcam"):
        heat = explain(model, x, method, target=1)
        assert heat.shape == (3, 12, 20)
        peaks = heat.flatten(1).amax(1).tolist()  # each map scaled to its own peak
        # a Grad-CAM map is all zero when nothing in the image speaks for the class (its ReLU)
        assert peaks == [1.0] * 3 if method != "gradcam" else set(peaks) <= {0.0, 1.0}


def test_default_layer_is_the_last_conv_map_before_pooling():
    model = build_model("lenet5", in_channels=1, num_classes=10, image_size=28)
    assert default_layer(model, torch.randn(1, 1, 28, 28)) == "features.4"  # the ReLU after conv 2
    for name in ("mnist-cnn", "resnet18", "fastnet-tiny"):
        model = build_model(name, in_channels=3, num_classes=10, image_size=32)
        assert default_layer(model, torch.randn(1, 3, 32, 32)) == "features"


@needs_captum
def test_explain_works_inside_inference_mode_and_with_a_chosen_layer():
    model = build_model("lenet5", in_channels=1, num_classes=4, image_size=16)
    with torch.inference_mode():
        x = torch.randn(2, 1, 16, 16)
        heat = explain(model, x, "gradcam", layer="features.0")
    assert heat.shape == (2, 16, 16) and not heat.is_inference()


# ----- bad input -----


@needs_captum
def test_bad_methods_layers_and_images_are_one_line_errors():
    model = build_model("lenet5", in_channels=1, num_classes=4, image_size=16)
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(ExplainError, match="choose one of: gradcam, saliency, ig"):
        explain(model, x, "lime")
    with pytest.raises(ExplainError, match=r"no layer 'conv9'.*features\.0, features\.3"):
        explain(model, x, "gradcam", layer="conv9")
    with pytest.raises(ExplainError, match=r"layer 'head\.1' gives output \(1, 120\), not a feature map"):
        explain(model, x, "gradcam", layer="head.1")
    with pytest.raises(ExplainError, match="gradcam only"):
        explain(model, x, "saliency", layer="features.0")
    with pytest.raises(ExplainError, match=r"float images \(N, C, H, W\)"):
        explain(model, x[0], "saliency")
    with pytest.raises(ExplainError, match=r"float images"):
        explain(model, (x * 50).to(torch.uint8), "saliency")
    with pytest.raises(ExplainError, match=r"cannot take images of shape \(2, 3, 16, 16\)"):
        explain(model, torch.randn(2, 3, 16, 16), "gradcam")
    with pytest.raises(ExplainError, match="target has 3 classes for 2 images"):
        explain(model, x, "saliency", target=torch.tensor([0, 1, 2]))
    for error in (ExplainError("x"),):
        assert "\n" not in str(error)


@needs_captum
def test_a_network_without_convolutions_gets_grad_cam_refused_and_saliency_suggested():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ExplainError, match="no convolutional layer for Grad-CAM; use --explain saliency"):
        explain(mlp, x, "gradcam")
    with pytest.raises(ExplainError, match="no convolutional layer"):
        explain(mlp, x, "gradcam", layer="1")
    assert explain(mlp, x, "saliency").shape == (2, 8, 8)
    assert conv_layer_names(mlp) == []


def test_missing_captum_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "captum", None)  # makes `import captum...` raise ImportError
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    model = build_model("lenet5", in_channels=1, num_classes=4, image_size=16)
    with pytest.raises(ExplainError, match=r"pip install 'convtrain\[explain\]'"):
        explain(model, torch.randn(1, 1, 16, 16), "gradcam")


# ----- pictures -----


def test_overlay_leaves_cold_pixels_alone_and_colours_hot_ones():
    images = torch.full((2, 1, 8, 8), 100, dtype=torch.uint8)
    heat = torch.zeros(2, 8, 8)
    heat[:, :4] = 1.0
    tiles = overlay(images, heat)  # (2, 8, 8, 3)
    assert tiles.shape == (2, 8, 8, 3)
    assert torch.allclose(tiles[:, 4:], torch.full_like(tiles[:, 4:], 100 / 255))
    assert (tiles[:, :4] - 100 / 255).abs().amax() > 0.2
    with pytest.raises(ExplainError, match="heat maps must be"):
        overlay(images, heat[0])


@pytest.mark.parametrize("channels", [1, 3])
def test_explanation_pictures_are_written_for_gray_and_colour_images(tmp_path, channels):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, channels, 16, 16), generator=g, dtype=torch.uint8)
    heat = torch.rand(5, 16, 16, generator=g)
    single = plot_explanation(
        images[0],
        heat[0],
        [("cat", 0.8), ("dog", 0.15), ("a very long label", 0.05)],
        tmp_path / "one.png",
        title="gradcam",
    )
    grid = plot_explanation_grid(
        images,
        heat,
        [f"class {i}\ntrue: {i}" for i in range(5)],
        tmp_path / "grid.png",
        colors=["#1a7f37"] * 5,
        title="what the network looks at",
    )
    for path in (single, grid):
        with Image.open(path) as picture:
            assert picture.format == "PNG" and picture.width > 200
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


@needs_captum
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["mnist-cnn", "resnet9", "fastnet-tiny"])
def test_heat_maps_on_the_gpu_match_the_cpu(name):
    torch.manual_seed(0)
    model = build_model(name, in_channels=3, num_classes=4, image_size=SIZE).eval()
    x = torch.randn(3, 3, SIZE, SIZE)
    for method in ("gradcam", "saliency", "ig"):
        on_cpu = explain(model, x, method, target=1)
        on_gpu = explain(model.cuda(), x.cuda(), method, target=1)
        model.cpu()
        assert on_gpu.device.type == "cpu" and on_gpu.shape == (3, SIZE, SIZE)
        # cuDNN may use TF32 convolutions: close, not equal
        assert torch.allclose(on_gpu, on_cpu, atol=1e-2), method

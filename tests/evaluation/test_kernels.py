"""convtrain kernels: kernel and pooling arithmetic against hand computation, and the figures it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from convtrain.base.errors import ConfigError
from convtrain.cli import main
from convtrain.evaluation.report.kernels import (
    KERNELS,
    apply_kernel,
    conv_layers,
    feature_maps,
    parse_kernel,
    pool2,
    run_figures,
)
from convtrain.models import build_model


def write_run(run: Path, dataset: str, channels: int, size: int, classes: int) -> torch.nn.Module:
    """A run folder as training leaves it, minus the training: card, config and (untrained) best.pt."""
    torch.manual_seed(0)
    model = build_model("lenet5", channels, classes, size).eval()
    run.mkdir(parents=True)
    torch.save({"model": model.state_dict()}, run / "best.pt")
    card = {
        "architecture": "lenet5",
        "classes": [str(c) for c in range(classes)],
        "in_channels": channels,
        "image_size": size,
        "mean": [0.25] * channels,
        "std": [0.3] * channels,
    }
    (run / "model.json").write_text(json.dumps(card))
    (run / "config.yaml").write_text(yaml.safe_dump({"dataset": dataset}))
    return model


@pytest.fixture()
def gray_png(tmp_path) -> Path:
    x = np.zeros((40, 48), dtype=np.uint8)
    x[:, 24:] = 200  # dark left half, bright right half: one vertical edge
    path = tmp_path / "edge.png"
    Image.fromarray(x).save(path)
    return path


def test_named_and_custom_kernels_parse():
    name, sobel = parse_kernel("Sobel-X")
    assert name == "sobel-x" and sobel.tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert parse_kernel("sobel-y")[1].tolist() == sobel.T.tolist()
    assert parse_kernel("gaussian-blur")[1].shape == (5, 5)
    for blur in ("box-blur", "gaussian-blur"):
        assert float(KERNELS[blur].sum()) == pytest.approx(1.0)  # blurs keep the brightness
    name, custom = parse_kernel("1,0,-1;2,0,-2;1,0,-1")
    assert name == "custom 3x3" and torch.equal(custom, -sobel)
    for bad in ("1,2;3", "edge", "a,b;c,d", ";".join([",".join(["1"] * 16)] * 16)):
        with pytest.raises(ConfigError):
            parse_kernel(bad)


def test_apply_kernel_and_pooling_match_hand_computation():
    image = torch.arange(20, dtype=torch.float32).view(4, 5) ** 1.5
    kernel = torch.tensor([[1.0, 2, 0], [-1, 3, 1], [0, 1, -2]])
    padded = np.pad(image.numpy(), 1, mode="edge")  # edge pixels repeated
    expected = np.zeros((4, 5))
    for i in range(4):
        for j in range(5):
            expected[i, j] = (padded[i : i + 3, j : j + 3] * kernel.numpy()).sum()  # cross-correlation
    assert np.allclose(apply_kernel(image, kernel).numpy(), expected, rtol=1e-5)

    square = torch.tensor([[1.0, 5, 2, 0], [3, 4, 8, 6], [0, 0, 1, 1], [7, 0, 1, 3]])
    max_pooled, avg_pooled = pool2(square)
    assert max_pooled.tolist() == [[5, 8], [7, 3]]
    assert avg_pooled.tolist() == [[13 / 4, 16 / 4], [7 / 4, 6 / 4]]


def test_sobel_x_responds_where_brightness_rises_to_the_right(gray_png):
    from convtrain.evaluation.report.kernels import load_gray

    image = load_gray(gray_png)
    out = apply_kernel(image, KERNELS["sobel-x"])
    assert float(out[:, 23:25].min()) > 0  # the edge
    assert (
        float(out[:, :20].abs().max()) == 0 and float(out[:, 28:].abs().max()) == 0
    )  # flat areas, borders too


def test_kernels_command_writes_the_figure_for_an_image(shared_datasets, tmp_path, capsys):
    image = shared_datasets / "cifar10-sample" / "cat" / "10.png"
    args = [
        "kernels",
        str(image),
        "--kernel",
        "sobel-x",
        "--kernel",
        "1,0,-1;2,0,-2;1,0,-1",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    figure = tmp_path / "10-kernels.png"
    assert f"wrote {figure}" in capsys.readouterr().out
    two_rows = Image.open(figure)
    assert main(["kernels", str(image), "--out", str(tmp_path / "all")]) == 0  # every named kernel: six rows
    six_rows = Image.open(tmp_path / "all" / "10-kernels.png")
    assert two_rows.width > 600 and six_rows.height > 2.5 * two_rows.height


def test_feature_maps_are_the_conv_outputs(tmp_path):
    model = write_run(tmp_path / "run", "mnist", 1, 28, 10)
    x = torch.randn(1, 1, 28, 28)
    maps, logits = feature_maps(model, x)
    assert [name for name, _ in maps] == [name for name, _ in conv_layers(model)]
    first = conv_layers(model)[0][1]
    expected = F.conv2d(x, first.weight, first.bias, padding=first.padding)[0]  # (6, 28, 28)
    assert torch.allclose(maps[0][1], expected, atol=1e-5)
    assert maps[1][1].shape == (16, 10, 10)
    assert torch.allclose(logits, model(x)[0].detach(), atol=1e-6)


def test_kernels_on_a_run_write_filters_and_feature_maps(tiny_npz, gray_png, tmp_path, capsys):
    run = tmp_path / "run"
    write_run(run, f"npz:{tiny_npz}", 1, 28, 4)
    assert main(["kernels", str(gray_png), "--run", str(run), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    for name in ("edge-kernels.png", "filters.png", "feature-maps.png"):
        assert f"wrote {tmp_path / 'out' / name}" in printed
    # without an image: the run's first test image, written into the run folder
    written = run_figures(run)
    assert [p.name for p in written] == ["filters.png", "feature-maps.png"] and written[0].parent == run
    filters = np.array(Image.open(run / "filters.png").convert("L"))
    assert filters.std() > 10  # six filters drawn, not a blank page


def test_kernels_bad_input_is_one_line(tmp_path, capsys):
    assert main(["kernels"]) == 2
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["kernels", str(tmp_path / "notes.txt")]) == 2
    assert main(["kernels", str(tmp_path / "missing.png")]) == 2
    assert main(["kernels", str(tmp_path / "notes.txt"), "--kernel", "1,2;3"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("error: ") for line in lines)
    assert (
        "cannot read image" in lines[1]
        and "does not exist" in lines[2]
        and "same number of values" in lines[3]
    )

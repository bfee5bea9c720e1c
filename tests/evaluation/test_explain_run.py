"""Heat maps of a trained run: predict --explain, evaluate --explain and the report's section.

    python -m pytest -q tests/evaluation/test_explain_run.py

Uses the shared `reported_run` (lenet5 on tiny RGB patterns, trained with plots); tests that
write into a run folder copy it first.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convtrain
from convtrain.cli import main
from convtrain.evaluation.report.run_pictures import make_run_pictures
from helpers import copy_run

needs_captum = pytest.mark.skipif(importlib.util.find_spec("captum") is None, reason="needs captum")


@pytest.fixture(scope="module")
def images(tiny_rgb_npz, tmp_path_factory) -> Path:
    """Three test images of the run's dataset as PNG files."""
    folder = tmp_path_factory.mktemp("images")
    for i, pixels in enumerate(np.load(tiny_rgb_npz)["x_test"][:3]):
        Image.fromarray(pixels).save(folder / f"image {i}.png")
    return folder


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        return picture.size


@needs_captum
def test_predict_explain_writes_one_picture_per_image_into_the_folder(reported_run, images, tmp_path, capsys):
    out = tmp_path / "why"
    assert main(["predict", str(reported_run), str(images), "--explain", "gradcam", "--out", str(out)]) == 0
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["image 0.png", "image 1.png", "image 2.png"]
    assert all(png_size(out / name)[0] > 300 for name in written)
    assert f"gradcam pictures in {out}" in capsys.readouterr().err


@needs_captum
def test_predict_explain_puts_pictures_beside_the_table_and_in_the_json(reported_run, tmp_path):
    table = tmp_path / "preds.json"
    assert (
        main(["predict", str(reported_run), "--index", "0:3", "--explain", "saliency", "--out", str(table)])
        == 0
    )
    rows = json.loads(table.read_text())
    assert [Path(r["explanation"]) for r in rows] == [
        tmp_path / "preds-saliency" / f"test-{i}.png" for i in range(3)
    ]
    assert all(Path(r["explanation"]).is_file() for r in rows)


@needs_captum
def test_predict_api_takes_explain(reported_run, images, tmp_path):
    rows = convtrain.predict(reported_run, images, topk=2, explain="ig", explain_dir=tmp_path, device="cpu")
    assert len(rows) == 3 and all(Path(r["explanation"]).parent == tmp_path for r in rows)


@needs_captum
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--explain", "lime", "--out", "x"], "unknown explanation method 'lime'; choose one of: gradcam"),
        (
            ["--explain", "gradcam", "--layer", "conv9", "--out", "x"],
            "no layer 'conv9' in LeNet5; conv layers",
        ),
        (["--explain", "gradcam"], "give --out FOLDER"),
        (["--layer", "features.0"], "add --explain gradcam"),
        (["--explain", "saliency", "--layer", "features.0", "--out", "x"], "gradcam only"),
    ],
)
def test_bad_explain_options_exit_2_with_one_line(reported_run, images, tmp_path, capsys, extra, message):
    extra = [str(tmp_path / e) if e == "x" else e for e in extra]
    assert main(["predict", str(reported_run), str(images), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "x").exists()


@needs_captum
def test_evaluate_explain_draws_the_top_losses_and_right_predictions(reported_run, tmp_path, capsys):
    run = copy_run(reported_run, tmp_path / "run")
    assert main(["evaluate", str(run), "--explain", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for name in ("explain_mistakes_test.png", "explain_correct_test.png"):
        assert str(run / "plots" / name) in printed
        width, height = png_size(run / "plots" / name)
        assert width > 300 and height > 100


@needs_captum
def test_report_shows_what_the_network_looks_at(reported_run):
    html = (reported_run / "report.html").read_text()
    assert "<h2>What the network looks at</h2>" in html and "<img id='explain'" in html


def test_report_without_captum_says_so(reported_run, tmp_path, monkeypatch):
    run = copy_run(reported_run, tmp_path / "run")
    monkeypatch.setitem(sys.modules, "captum", None)  # makes `import captum...` raise ImportError
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    html = make_run_pictures(run, device="cpu").read_text()
    assert "What the network looks at" not in html
    assert "no &#x27;what the network looks at&#x27; section: heat maps need Captum" in html
    assert "pip install &#x27;convtrain[explain]&#x27;" in html


@needs_captum
def test_same_named_images_of_two_folders_get_two_pictures(reported_run, images, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(images / "image 0.png", tmp_path / folder / "x.png")
    rows = convtrain.predict(
        reported_run,
        [tmp_path / "a", tmp_path / "b"],
        explain="saliency",
        explain_dir=tmp_path / "why",
        batch_size=1,  # one image per batch: the names must stay apart across batches too
        device="cpu",
    )
    assert [Path(r["explanation"]).name for r in rows] == ["x.png", "x-2.png"]

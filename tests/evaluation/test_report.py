"""Pictures and report.html: made at the end of training, readable PNGs, and robust to missing splits."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convtrain.cli import main
from convtrain.evaluation.report.plots import (
    RIGHT,
    WRONG,
    plot_confusion,
    plot_curves,
    plot_per_class,
    plot_predictions,
)
from convtrain.evaluation.report.run_pictures import make_run_pictures
from helpers import copy_run

PICTURES = {"curves", "confusion", "per_class", "predictions", "mistakes", "batch", "filters"}
if importlib.util.find_spec("captum"):  # "what the network looks at" needs convtrain[explain]
    PICTURES.add("explain")


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.array(image.convert("RGB"))


def colour_pixels(pixels: np.ndarray, hex_colour: str) -> int:
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels.astype(int) - target).sum(-1) < 30).sum())


def embedded_images(html: str) -> dict[str, np.ndarray]:
    found = re.findall(r"<img id='(\w+)' alt='[^']*' src='data:image/png;base64,([^']+)'>", html)
    return {key: np.array(Image.open(io.BytesIO(base64.b64decode(data)))) for key, data in found}


def test_training_with_plots_writes_every_picture_and_a_self_contained_report(reported_run):
    assert {p.stem for p in (reported_run / "plots").glob("*.png")} == PICTURES
    html = (reported_run / "report.html").read_text()
    images = embedded_images(html)
    assert set(images) == PICTURES
    assert all(image.shape[0] > 100 and image.shape[1] > 100 for image in images.values())
    assert len(re.findall(r"<img ", html)) == len(images)  # every image is inline, none points elsewhere
    assert not re.search(r"(src|href)=['\"](?!data:)", html)
    evaluation = json.loads((reported_run / "evaluation_test.json").read_text())
    assert f"{100 * evaluation['top1']:.2f}%" in html and "test top-1 (best.pt)" in html
    before = json.loads((reported_run / "results.json").read_text())["before_val_accuracy"]
    assert f"val accuracy before training</div><div class='big'>{100 * before:.2f}%" in html
    for row in evaluation["per_class"]:
        assert f"<td>{row['class']}</td><td class='n'>{row['precision']:.3f}</td>" in html
    assert "<td>model</td><td>&quot;lenet5&quot;</td>" in html  # the resolved config
    for section in (
        "Training curves",
        "Confusion matrix",
        "Sample predictions",
        "Worst mistakes",
        "Configuration",
    ):
        assert f"<h2>{section}</h2>" in html


def test_report_without_test_split_uses_validation_and_without_either_still_renders(
    reported_run, tiny_rgb_npz, tmp_path, capsys
):
    arrays = np.load(tiny_rgb_npz)
    train_only = tmp_path / "train_only.npz"
    np.savez(train_only, x_train=arrays["x_train"], y_train=arrays["y_train"])
    run = copy_run(reported_run, tmp_path / "run")
    config = run / "config.yaml"
    config.write_text(config.read_text().replace(str(tiny_rgb_npz), str(train_only)))

    shutil.rmtree(run / "plots")
    assert main(["plot", str(run)]) == 0  # the command remakes every picture and the page
    assert f"wrote {run / 'report.html'}" in capsys.readouterr().out
    assert {p.stem for p in (run / "plots").glob("*.png")} == PICTURES
    html = (run / "report.html").read_text()
    assert "Per-class metrics (val split)" in html and "no test evaluation" in html
    evaluation = json.loads((run / "evaluation_val.json").read_text())
    assert evaluation["images"] == len(json.loads((run / "split.json").read_text())["val"])

    (run / "split.json").write_text(json.dumps({"train": list(range(256)), "val": []}))
    shutil.rmtree(run / "plots")
    html = make_run_pictures(run, device="cpu").read_text()
    assert "no val evaluation" in html and "Per-class metrics" not in html
    assert set(embedded_images(html)) == {"curves", "batch", "filters"}


def test_report_survives_a_dataset_that_moved_and_a_run_without_epochs(reported_run, tmp_path):
    run = copy_run(reported_run, tmp_path / "run")
    shutil.rmtree(run / "plots")
    config = run / "config.yaml"
    config.write_text(re.sub(r"dataset: npz:.*", "dataset: npz:/nonexistent/moved.npz", config.read_text()))
    (run / "metrics.csv").write_text(
        "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_second\n"
    )
    html = make_run_pictures(run, device="cpu").read_text()
    assert "the dataset could not be read" in html and "moved.npz" in html
    assert "metrics.csv has no epochs yet" in html
    assert set(embedded_images(html)) == {"filters"}


def test_curves_confusion_and_bars_are_readable_pngs(tmp_path):
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_acc": 0.5 + e / 20,
            "val_loss": math.nan,
            "val_acc": math.nan,
        }
        for e in range(1, 4)
    ]
    curves = png(plot_curves(history, tmp_path / "curves.png"))
    assert colour_pixels(curves, "#1f6feb") > 50  # the train line is drawn; no validation line exists
    assert colour_pixels(curves, "#d97706") == 0

    classes = [f"class {i}" for i in range(12)]
    confusion = torch.randint(0, 30, (12, 12))
    pixels = png(plot_confusion(confusion, classes, tmp_path / "confusion.png"))
    assert pixels.shape[0] > 300 and pixels.std() > 10
    big = png(
        plot_confusion(torch.eye(100, dtype=torch.long), [str(i) for i in range(100)], tmp_path / "big.png")
    )
    assert big.shape[0] <= 1800  # a 100-class matrix stays a picture, not a poster

    per_class = [{"class": c, "accuracy": a} for c, a in zip(classes[:3], (0.9, 0.2, 0.7), strict=True)]
    bars = png(plot_per_class(per_class, tmp_path / "bars.png", overall=0.6))
    assert colour_pixels(bars, RIGHT) > 100 and colour_pixels(bars, WRONG) > 100


def test_prediction_grid_colours_right_green_and_wrong_red(tmp_path):
    images = torch.full((4, 3, 16, 16), 128, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1])
    right = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    all_right = png(plot_predictions(images, labels, right, ["cat", "dog"], tmp_path / "right.png"))
    assert colour_pixels(all_right, RIGHT) > 20 and colour_pixels(all_right, WRONG) == 0
    wrong = right.flip(1)
    all_wrong = png(plot_predictions(images, labels, wrong, ["cat", "dog"], tmp_path / "wrong.png"))
    assert colour_pixels(all_wrong, WRONG) > 20 and colour_pixels(all_wrong, RIGHT) == 0


def test_the_report_evaluates_the_weights_the_run_tested(reported_run, tmp_path):
    run = copy_run(reported_run, tmp_path / "run")
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("test_weights: best", "test_weights: last"))
    html = make_run_pictures(run, device="cpu").read_text()
    assert "test top-1 (last.pt)" in html
    assert json.loads((run / "evaluation_test.json").read_text())["checkpoint"] == "last.pt"


def test_the_report_draws_from_the_final_test_pass_instead_of_scoring_again(
    tiny_rgb_npz, tmp_path, monkeypatch
):
    import convtrain
    import convtrain.evaluation.report.run_pictures
    import convtrain.evaluation.scoring

    calls = []
    real = convtrain.evaluation.scoring.split_logits
    counted = lambda *a, **k: calls.append(1) or real(*a, **k)  # noqa: E731
    for module in (
        convtrain.evaluation.scoring,
        convtrain.evaluation.report.run_pictures,
    ):  # wherever the name is looked up
        monkeypatch.setattr(module, "split_logits", counted)
    small = {
        "dataset": f"npz:{tiny_rgb_npz}",
        "model": "lenet5",
        "epochs": 1,
        "batch_size": 32,
        "quiet": True,
    }
    run = convtrain.train(out=str(tmp_path / "once"), **small)
    assert calls == []  # one pass over the test split: the run's own
    evaluation = json.loads(run.evaluation_paths("test")[0].read_text())
    assert evaluation["images"] == run.results["test_images"] == 64
    assert evaluation["top1"] == run.results["test_acc"]
    assert evaluation["loss"] == pytest.approx(run.results["test_loss"], rel=1e-5)
    # the same pictures as a report made afterwards from the folder alone, which scores the split itself
    again = copy_run(run.path, tmp_path / "again")
    make_run_pictures(again)
    assert len(calls) == 1
    assert json.loads((again / "evaluation_test.json").read_text())["top1"] == evaluation["top1"]
    # TTA changes the test pass's logits: the report then scores the plain images itself
    convtrain.train(out=str(tmp_path / "tta"), tta=True, **small)
    assert len(calls) == 2

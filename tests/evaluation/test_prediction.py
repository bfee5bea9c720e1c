"""convtrain predict: every file of a folder, the training preprocessing, and files that are not images."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import convtrain
from convtrain.base.errors import ImageError
from convtrain.cli import main
from convtrain.evaluation.prediction import SkippedImageWarning, predict_paths, predict_tensor
from convtrain.runs.run_dir import RunDir


@pytest.fixture(scope="module")
def cifar_run(shared_datasets, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cifar") / "run"
    convtrain.train(
        dataset=f"folder:{shared_datasets / 'cifar10-sample'}",
        model="lenet5",
        epochs=1,
        batch_size=32,
        out=str(out),
        quiet=True,
        plots=False,
    )
    return out


@pytest.fixture(scope="module")
def sample_png(shared_datasets) -> Path:
    return shared_datasets / "cifar10-sample" / "airplane" / "116.png"


def hand_probabilities(run: Path, rgb: np.ndarray) -> torch.Tensor:
    """Softmax of the model on an (H, W, 3) uint8 array normalised by hand with the card's mean/std."""
    model, card = RunDir(run).load_model()
    x = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255  # (1, 3, H, W)
    x = (x - torch.tensor(card["mean"]).view(1, 3, 1, 1)) / torch.tensor(card["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x).softmax(1)[0]


def test_predict_lists_every_file_of_the_folder(cifar_run, shared_datasets, tmp_path, capsys):
    folder = shared_datasets / "cifar10-sample"
    out = tmp_path / "preds.csv"
    assert (
        main(["predict", str(cifar_run), str(folder), "--topk", "3", "--out", str(out), "--device", "cpu"])
        == 0
    )
    printed = capsys.readouterr()
    rows = list(csv.DictReader(out.open()))
    expected = sorted(str(p) for p in folder.rglob("*.png"))
    assert len(expected) == 200 and sorted(r["path"] for r in rows) == expected
    assert len(printed.out.strip().splitlines()) == 200 and "200 images predicted" in printed.err
    classes = json.loads((cifar_run / "model.json").read_text())["classes"]
    for row in rows:
        probs = [float(row[f"probability_{i}"]) for i in (1, 2, 3)]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert {row["label_1"], row["label_2"], row["label_3"]} <= set(classes)


def test_predictions_match_a_hand_preprocessing(cifar_run, sample_png):
    [prediction] = predict_paths(cifar_run, [sample_png], topk=10, device="cpu")
    expected = hand_probabilities(cifar_run, np.array(Image.open(sample_png).convert("RGB")))
    classes = json.loads((cifar_run / "model.json").read_text())["classes"]
    by_label = dict(zip(prediction["labels"], prediction["probabilities"], strict=True))
    assert [by_label[name] for name in classes] == pytest.approx(expected.tolist(), abs=1e-6)
    assert prediction["labels"][0] == classes[int(expected.argmax())]


def test_gray_rgba_and_larger_images_are_converted_as_in_training(cifar_run, sample_png, tmp_path):
    from convtrain.data.formats.image_folder import read_folder

    gray = Image.open(sample_png).convert("L")
    gray.save(tmp_path / "gray.png")
    gray.convert("RGB").save(tmp_path / "gray-as-rgb.png")  # what converting gray to RGB must give
    rgb = Image.open(sample_png).convert("RGB")
    rgb.convert("RGBA").save(tmp_path / "rgba.png")
    (tmp_path / "dataset" / "a").mkdir(parents=True)
    (tmp_path / "dataset" / "b").mkdir()
    rgb.resize((80, 64), Image.BICUBIC).save(tmp_path / "dataset" / "a" / "big.png")
    rgb.save(tmp_path / "dataset" / "b" / "small.png")
    found = {Path(p["path"]).name: p for p in predict_paths(cifar_run, [tmp_path], topk=10, device="cpu")}

    assert found["gray.png"]["probabilities"] == pytest.approx(
        found["gray-as-rgb.png"]["probabilities"], abs=1e-6
    )
    assert found["gray.png"]["labels"] == found["gray-as-rgb.png"]["labels"]
    [original] = predict_paths(cifar_run, sample_png, topk=10, device="cpu")
    assert found["rgba.png"]["labels"] == original["labels"]
    assert found["rgba.png"]["probabilities"] == pytest.approx(original["probabilities"], abs=1e-6)
    # an 80x64 image becomes exactly the pixels a training run at 32x32 would have read from it
    trained_pixels = read_folder(tmp_path / "dataset", image_size=32, channels=3).train.images[
        0
    ]  # (3, 32, 32)
    expected = hand_probabilities(cifar_run, trained_pixels.permute(1, 2, 0).numpy())
    classes = json.loads((cifar_run / "model.json").read_text())["classes"]
    by_label = dict(zip(found["big.png"]["labels"], found["big.png"]["probabilities"], strict=True))
    assert [by_label[name] for name in classes] == pytest.approx(expected.tolist(), abs=1e-6)


def test_predict_tensor_takes_uint8_batches_only(cifar_run, sample_png):
    model, card = RunDir(cifar_run).load_model()
    pixels = torch.from_numpy(np.array(Image.open(sample_png).convert("RGB"))).permute(2, 0, 1)  # (3, 32, 32)
    probs = predict_tensor(model, card, torch.stack([pixels, pixels.flip(2)]))
    assert probs.shape == (2, 10) and torch.allclose(probs.sum(1), torch.ones(2))
    assert torch.allclose(probs[0], hand_probabilities(cifar_run, pixels.permute(1, 2, 0).numpy()), atol=1e-6)
    with pytest.raises(ImageError, match="uint8"):
        predict_tensor(model, card, pixels.float())


def test_unreadable_files_are_named_and_skipped(cifar_run, sample_png, tmp_path, capsys):
    folder = tmp_path / "mixed"
    (folder / "empty").mkdir(parents=True)
    Image.open(sample_png).save(folder / "good.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = predict_paths(
            cifar_run, [folder, tmp_path / "missing.png", str(tmp_path / "*.jpg")], device="cpu"
        )
    assert [Path(r["path"]).name for r in results] == ["good.png"]
    skipped = " ".join(str(w.message) for w in caught if w.category is SkippedImageWarning)
    for name in ("notes.txt", "broken.png", "missing.png", "*.jpg"):
        assert name in skipped

    out = tmp_path / "preds.json"
    assert main(["predict", str(cifar_run), str(folder), "--out", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "notes.txt" in err and "broken.png" in err and "1 image predicted, 2 skipped" in err
    assert [Path(p["path"]).name for p in json.loads(out.read_text())] == ["good.png"]


def test_nothing_readable_is_an_error_in_one_line(cifar_run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a.txt").write_text("text")
    assert (
        main(["predict", str(cifar_run), str(tmp_path / "empty"), str(tmp_path / "a.txt"), "--device", "cpu"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no readable images")
    assert any("empty folder" in line for line in err) and any("a.txt" in line for line in err)
    assert main(["predict", str(cifar_run), str(tmp_path), "--out", str(tmp_path / "preds.txt")]) == 2
    assert "must end in .csv or .json" in capsys.readouterr().err
    with pytest.raises(ImageError):
        predict_paths(cifar_run, [tmp_path / "empty"], device="cpu")


def test_convtrain_predict_stays_the_function_after_its_module_is_imported(cifar_run, sample_png):
    import convtrain.evaluation.prediction  # noqa: F401  (a submodule named like the function would replace it)

    for _ in range(2):
        [prediction] = convtrain.predict(cifar_run, [sample_png], topk=2, device="cpu")
        assert len(prediction["labels"]) == 2


# ----- predicting images of the run's own dataset by position -----


def test_predict_by_index_gives_the_true_label_and_the_models_answer(tiny_run, tiny_npz, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    assert main(["predict", str(tiny_run), "--index", "5,0:3", "--topk", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert [line.split()[0] for line in lines] == ["test[5]", "test[0]", "test[1]", "test[2]"]
    saved = np.load(tiny_npz)
    model, card = RunDir(tiny_run).load_model()
    x = torch.from_numpy(saved["x_test"][[5, 0, 1, 2]]).permute(0, 3, 1, 2).float() / 255  # (4, 1, 28, 28)
    x = (x - card["mean"][0]) / card["std"][0]
    with torch.no_grad():
        expected = model(x).argmax(1).tolist()
    for line, label, truth in zip(lines, expected, saved["y_test"][[5, 0, 1, 2]], strict=True):
        assert f"true {card['classes'][truth]}  predicted {card['classes'][label]} " in line
    assert "4 test images predicted" in printed.err
    rows = out.read_text().splitlines()
    assert rows[0] == "path,true,label_1,probability_1,label_2,probability_2" and len(rows) == 5


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--index", "96"], "--index 96 is outside the split's 96 images (0..95)"),
        (["--index", "a:b"], "--index 'a:b' is not an index"),
        (["digit.png", "--index", "0"], "give image paths or --index, not both"),
        ([], "give image files, folders or globs, or --index N"),
    ],
)
def test_bad_index_requests_are_refused_in_one_line(tiny_run, capsys, extra, message):
    assert main(["predict", str(tiny_run), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1

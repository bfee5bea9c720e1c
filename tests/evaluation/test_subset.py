"""`convtrain evaluate RUN --subset FILE.npy`: a part of a split scored on its own (CIFAR-10's bit-exact
test images are one), with the split's own image indices in what it reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from convtrain.cli import main
from convtrain.evaluation.metrics import metrics_from_logits
from convtrain.evaluation.scoring import evaluate, run_logits
from helpers import copy_run


@pytest.fixture
def run(tiny_run, tmp_path) -> Path:
    return copy_run(tiny_run, tmp_path / "run")


def test_a_mask_and_an_index_list_score_exactly_those_images(run, tmp_path, tiny_npz):
    whole = run_logits(run, "test", device="cpu")
    labels = np.load(tiny_npz)["y_test"]
    mask = np.zeros(len(labels), dtype=bool)
    mask[[3, 10, 11, 40, 95]] = True
    mask[labels == 2] = True  # a whole class too, so per-class rows are not all empty
    np.save(tmp_path / "picked.npy", mask)
    np.save(tmp_path / "indices.npy", np.flatnonzero(mask)[::-1].copy())  # order and repeats do not matter

    from_mask = evaluate(run, "test", device="cpu", subset=tmp_path / "picked.npy")
    from_indices = evaluate(run, "test", device="cpu", subset=tmp_path / "indices.npy", write=False)
    keep = torch.from_numpy(np.flatnonzero(mask))
    by_hand = metrics_from_logits(whole.logits[keep], whole.labels[keep], ["0", "1", "2", "3"])
    assert from_mask["images"] == from_indices["images"] == int(mask.sum())
    for key in ("loss", "top1", "macro_f1"):
        assert from_mask[key] == pytest.approx(by_hand[key], abs=1e-6)
        assert from_indices[key] == pytest.approx(by_hand[key], abs=1e-6)
    # top-loss indices are the split's, so `predict --index` shows the same image
    for item in from_mask["top_losses"]:
        assert mask[item["index"]] and int(labels[item["index"]]) == int(item["true"])
    # its files sit beside the whole split's, named after the subset file
    written = json.loads((run / "evaluation_test-picked.json").read_text())
    assert written["subset"].endswith("picked.npy") and written["images"] == int(mask.sum())
    assert (run / "per_class_test-picked.csv").is_file() and not (run / "evaluation_test.json").exists()


def _save(path: Path, array) -> Path:
    np.save(path, np.asarray(array))
    return path


@pytest.mark.parametrize(
    "picked, expected",
    [
        (np.ones(95, dtype=bool), "mask of 95 values, but the split has 96 images"),
        (np.array([0, 5, 96]), "indexes image 96, outside the split's 0..95"),
        (np.array([-1, 5]), "indexes image -1"),
        (np.array([0.5, 1.0]), "holds float64 values"),
        (np.zeros((2, 3), dtype=bool), "2-d array"),
        (np.zeros(96, dtype=bool), "picks no image"),
    ],
)
def test_a_bad_subset_file_is_one_line_naming_it(run, tmp_path, capsys, picked, expected):
    path = _save(tmp_path / "bad.npy", picked)
    assert main(["evaluate", str(run), "--device", "cpu", "--subset", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and str(path) in err and expected in err and "\n" not in err
    assert not list(run.glob("evaluation_*"))


def test_a_missing_or_unreadable_subset_file_and_explain_with_a_subset(run, tmp_path, capsys):
    for path in (tmp_path / "nowhere.npy", tmp_path / "text.npy"):
        if path.name == "text.npy":
            path.write_text("not an array")
        assert main(["evaluate", str(run), "--device", "cpu", "--subset", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert str(path) in err and "\n" not in err
    mask = _save(tmp_path / "some.npy", np.arange(10))
    assert main(["evaluate", str(run), "--device", "cpu", "--subset", str(mask), "--explain"]) == 2
    assert "without --subset" in capsys.readouterr().err


def test_a_bad_subset_file_is_refused_before_the_dataset_loads(run, tmp_path, capsys, monkeypatch):
    from convtrain.evaluation import scoring

    def no_loading(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the subset file was checked")

    monkeypatch.setattr(scoring, "load_run_data", no_loading)
    for picked in (np.zeros((2, 3), dtype=bool), np.array([0.5])):
        path = _save(tmp_path / "early.npy", picked)
        assert main(["evaluate", str(run), "--device", "cpu", "--subset", str(path)]) == 2
        assert str(path) in capsys.readouterr().err
    assert main(["evaluate", str(run), "--device", "cpu", "--subset", str(tmp_path / "none.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_terminal_table_names_the_subset(run, tmp_path, capsys):
    mask = _save(tmp_path / "exact_mask_test.npy", np.arange(0, 96, 2))
    assert main(["evaluate", str(run), "--device", "cpu", "--subset", str(mask)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert f"split test (subset {mask})  48 images" in first

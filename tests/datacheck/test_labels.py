"""The label check's review list (--top) and its scoring models: planted test flips ranked first by
models trained on train, the same order in check.json, ranking.csv and check.html, and fold/scoring
models that train without label smoothing or mixup."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import torch

from conftest import make_pattern_images
from convtrain.cli.app import main
from convtrain.datacheck import check
from convtrain.datacheck.crossval import fold_config, without_mixing
from convtrain.datacheck.labels import rank_suspicious
from convtrain.models import own_training

FLIPPED_TEST = 6


@pytest.fixture(scope="module")
def test_flips_npz(tmp_path_factory):
    """A learnable 4-class 16x16 dataset (bands); 6 test labels flipped at known places."""
    rng = np.random.default_rng(0)

    x_train, y_train = make_pattern_images(320, 4, 16, 1, seed=1)
    x_test, y_test = make_pattern_images(80, 4, 16, 1, seed=2)
    flipped = rng.choice(80, size=FLIPPED_TEST, replace=False)
    y_test[flipped] = (y_test[flipped] + 1 + rng.integers(0, 3, size=FLIPPED_TEST)) % 4
    path = tmp_path_factory.mktemp("test_flips") / "test_flips.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path, set(flipped.tolist())


def test_rank_suspicious_orders_by_trust_and_suggests_the_likeliest_other_label():
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.2, 0.1, 0.7], [0.5, 0.4, 0.1], [0.05, 0.15, 0.8]])
    labels = torch.tensor([0, 0, 0, 2])
    ranked = rank_suspicious(probs, labels, top=3)
    assert ranked.indices.tolist() == [1, 2, 3]  # p_given 0.2, 0.5, 0.8
    assert ranked.suggested.tolist() == [2, 1, 1]  # image 2 is trusted as 0: its best other is 1
    assert ranked.confidence.tolist() == pytest.approx([0.7, 0.4, 0.15])
    assert len(rank_suspicious(probs, labels, top=10)) == 4  # no more than the split holds


def test_scoring_models_train_without_label_smoothing_or_mixup():
    assert own_training("fastnet-tiny")["label_smoothing"] == 0.2  # the model's own default...
    assert fold_config(None, None, None).label_smoothing == 0.0  # ...is not what the check trains with
    assert fold_config(None, "fastnet-small", None).label_smoothing == 0.0
    assert fold_config("fashion-mnist-fast", None, None).label_smoothing == 0.0  # recipe says 0.2
    assert without_mixing("flip,translate:2,mixup:0.2") == "flip,translate:2"
    assert without_mixing("cutmix:1.0") == "none"
    assert fold_config(None, None, {"augment": "mixup:0.2"}).augment == "mixup:0.2"  # asked for: kept


OPTIONS = {"epochs": 2, "batch_size": 32, "lr": 0.05, "augment": "none"}  # tiny 16x16 bands: no shifts


def test_top_ranks_planted_test_flips_first_in_json_csv_and_page(test_flips_npz, tmp_path, capsys):
    path, flipped = test_flips_npz
    check(
        f"npz:{path}",
        split="test",
        labels=True,
        model="mnist-cnn",
        train_options=OPTIONS,
        top=10,
        out=tmp_path,
    )
    assert "scoring model 1/1 trained on all 320 training images" in capsys.readouterr().out
    labels = json.loads((tmp_path / "check.json").read_text())["labels"]
    assert labels["scoring"] == "full_train" and labels["label_smoothing"] == 0.0
    ranked = labels["ranked"]
    assert [item["rank"] for item in ranked] == list(range(1, 11))
    assert {item["index"] for item in ranked[:FLIPPED_TEST]} == flipped
    order = [(item["index"], item["given"], item["suggested"]) for item in ranked]
    rows = list(csv.DictReader((tmp_path / "ranking.csv").open()))
    assert [(int(r["index"]), r["given"], r["suggested"]) for r in rows] == order
    page = (tmp_path / "check.html").read_text()
    section = page[page.index("Ranked for review") :]
    shown = re.findall(
        r"#(\d+) <span class='given'>(\w+)</span> &rarr; <span class='suggested'>(\w+)</span>", section
    )
    assert [(int(n), g, s) for n, g, s in shown] == [
        (item["rank"], g, s) for item, (_, g, s) in zip(ranked, order, strict=True)
    ]


@pytest.mark.cpu_precision
def test_train_and_test_checked_use_folds_and_rank_both(test_flips_npz, tmp_path):
    path, flipped = test_flips_npz
    result = check(
        f"npz:{path}", labels=True, folds=2, model="mnist-cnn", train_options=OPTIONS, top=8, quiet=True
    )
    labels = result.summary["labels"]
    assert labels["scoring"] == "folds" and labels["out_of_fold_accuracy"] > 0.8
    assert [item["split"] for item in labels["ranked"]] == ["train"] * 8 + ["test"] * 8
    assert {i["index"] for i in labels["ranked"] if i["split"] == "test"} >= flipped


@pytest.mark.parametrize(
    "argv, words", [(["--top", "-1"], "--top"), (["--scoring-models", "0"], "--scoring-models")]
)
def test_bad_top_or_scoring_models_exit_2_with_one_line(test_flips_npz, tmp_path, capsys, argv, words):
    path, _ = test_flips_npz
    assert main(["data", "check", f"npz:{path}", "--labels", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err


def test_the_check_folder_names_its_files_and_refuses_an_unfinished_check(tmp_path):
    from convtrain.base.errors import ConfigError
    from convtrain.datacheck.check_dir import CheckDir

    folder = CheckDir(tmp_path / "check")
    assert [
        p.name for p in (folder.json_path, folder.issues_path, folder.ranking_path, folder.page_path)
    ] == [
        "check.json",
        "issues.csv",
        "ranking.csv",
        "check.html",
    ]
    with pytest.raises(ConfigError, match="holds no finished check"):
        folder.summary()


# ----- the scoring models' recipe follows the dataset's kind -----


@pytest.mark.parametrize(
    "name, channels, family, recipe",
    [
        ("cifar10", 3, "photos", "cifar10-fast"),
        ("npz:/data/shots.npz", 3, "photos", "cifar10-fast"),
        ("fashion-mnist", 1, "clothes", "fashion-mnist-fast"),
        ("mnist", 1, "digits", "mnist-fast"),
        ("folder:/data/scans", 1, "digits", "mnist-fast"),
    ],
)
def test_each_kind_of_dataset_gets_its_recipe(name, channels, family, recipe):
    from convtrain.datacheck.crossval import dataset_family

    assert dataset_family(name, channels)[0] == family
    config = fold_config(None, None, None, family)
    assert config.recipe == recipe and config.label_smoothing == 0.0
    assert config.epochs == (3 if family == "digits" else own_recipe_epochs(recipe))
    assert fold_config("mnist-fast", None, None, family).recipe == "mnist-fast"  # --recipe wins


def own_recipe_epochs(recipe: str) -> int:
    from convtrain.config.recipes import load_recipe

    return load_recipe(recipe)["epochs"]


def test_a_photo_dataset_is_scored_with_the_photo_recipe_and_says_so(tiny_rgb_npz, capsys):
    result = check(f"npz:{tiny_rgb_npz}", split="test", labels=True, train_options={"epochs": 1}, top=5)
    out = capsys.readouterr().out
    line = "scoring models train with recipe cifar10-fast, fastnet, 1 epochs, weights averaged (ema 0.95), "
    assert line + "test-time views (photos: 3-channel images" in out
    assert result.summary["labels"]["recipe"] == "cifar10-fast"
    assert result.summary["settings"]["recipe"] == "cifar10-fast"


def test_a_small_training_set_gets_the_small_data_rule_s_epochs():
    from convtrain.datacheck.crossval import epochs_for_set
    from convtrain.training.epochs_and_size import epochs_for

    photos = fold_config(None, None, None, "photos")  # cifar10-fast: 10 epochs at batch 1024
    assert epochs_for_set(photos, 50000) == (photos, "")  # its own dataset's size: the recipe's epochs
    config, words = epochs_for_set(photos, 500)
    assert config.epochs == epochs_for(500, 1024, drop_last=True) > photos.epochs
    assert words == "not the recipe's 10, for 500 training images (--epochs to choose)"


def test_the_first_labels_line_says_a_small_set_trains_longer(tiny_rgb_npz, monkeypatch, capsys, tmp_path):
    from convtrain.datacheck import audit

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop  # the line is said before any model trains

    monkeypatch.setattr(audit, "_labels", stop)
    with pytest.raises(Stop):
        check(f"npz:{tiny_rgb_npz}", split="test", labels=True)
    with pytest.raises(Stop):  # K-fold: each model trains on (K-1)/K of the 256
        check(f"npz:{tiny_rgb_npz}", labels=True, folds=4, train_options={"batch_size": 64})
    with pytest.raises(Stop):  # asked for: kept
        main(
            [
                "data",
                "check",
                f"npz:{tiny_rgb_npz}",
                "--split",
                "test",
                "--labels",
                "--epochs",
                "3",
                "--out",
                str(tmp_path),
            ]
        )
    lines = [line for line in capsys.readouterr().out.splitlines() if "scoring models train" in line]
    assert lines[0].endswith(
        "fastnet, 188 epochs, weights averaged (ema 0.95), test-time views (photos: 3-channel images; --recipe to choose); "
        "not the recipe's 10, for 256 training images (--epochs to choose)"
    )
    assert lines[1].endswith(
        "250 epochs, weights averaged (ema 0.95), test-time views (photos: 3-channel images; --recipe to choose); "
        "not the recipe's 10, for 192 training images (--epochs to choose)"
    )
    assert (
        "3 epochs, weights averaged (ema 0.95), test-time views (photos" in lines[2]
        and "not the recipe's" not in lines[2]
    )

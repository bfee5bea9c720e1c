"""The data check: confident learning against hand computations, duplicates planted at known places,
broken files in a folder, an end-to-end check with flipped labels, bad input and Ctrl-C."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_pattern_images
from convtrain.base.errors import ConvtrainError
from convtrain.data.loader import make_loader
from convtrain.datacheck import audit, check, crossval
from convtrain.datacheck.duplicates import find_duplicates
from convtrain.datacheck.file_health import scan_folder
from convtrain.datacheck.labels import find_label_issues, per_class_thresholds
from convtrain.datacheck.source import SplitImages, pixel_hash

# ----- confident learning, against numbers worked out by hand -----

PROBS = torch.tensor(
    [
        [0.9, 0.1, 0.0],  # labelled 0, confident 0
        [0.7, 0.2, 0.1],  # labelled 0, confident 0
        [0.1, 0.8, 0.1],  # labelled 0, but confidently 1: an issue
        [0.2, 0.7, 0.1],  # labelled 1, confident 1
        [0.1, 0.9, 0.0],  # labelled 1, confident 1
        [0.0, 0.2, 0.8],  # labelled 2, confident 2
        [0.6, 0.0, 0.4],  # labelled 2: p2 0.4 < t2 0.6, p0 0.6 >= t0 0.567: confidently 0, an issue
        [0.5, 0.4, 0.1],  # labelled 1: p1 0.4 < t1, p0 0.5 < t0: no confident class
    ]
)
LABELS = torch.tensor([0, 0, 0, 1, 1, 2, 2, 1])


def test_thresholds_are_mean_self_confidence():
    expected = torch.tensor([(0.9 + 0.7 + 0.1) / 3, (0.7 + 0.9 + 0.4) / 3, (0.8 + 0.4) / 2])
    assert torch.allclose(per_class_thresholds(PROBS.double(), LABELS).float(), expected)


def test_confident_joint_and_issues_match_the_hand_computation():
    found = find_label_issues(PROBS, LABELS)
    joint = torch.tensor([[2, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert torch.equal(found.joint, joint)
    assert found.indices.tolist() == [2, 6]  # ranked by self-confidence: 0.1 then 0.4
    assert found.suggested.tolist() == [1, 0]
    assert torch.allclose(found.scores, torch.tensor([0.1, 0.4]))
    margin = find_label_issues(PROBS, LABELS, rank_by="normalized_margin")
    assert margin.indices.tolist() == [2, 6]  # margins 0.1-0.8 = -0.7 and 0.4-0.6 = -0.2
    assert torch.allclose(margin.scores, torch.tensor([-0.7, -0.2]))


def test_prune_by_noise_rate_takes_the_largest_margins():
    found = find_label_issues(PROBS, LABELS, method="prune_by_noise_rate")
    # calibrated joint: row 0 = [2, 1, 0] / 3 * 3 images, row 2 = [1, 0, 1] / 2 * 2: one image each
    assert sorted(found.indices.tolist()) == [2, 6]


# ----- duplicates planted at known places -----


def _blobs(count: int, size: int, seed: int) -> torch.Tensor:
    """Distinct smooth gray images (random low-resolution noise, upsampled): (N, 1, size, size) uint8."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((count, 1, 5, 5), generator=g) * 200 + 20
    up = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return up.round().clamp(0, 255).to(torch.uint8)


def _split(name: str, images: torch.Tensor) -> SplitImages:
    labels = torch.arange(len(images)) % 3
    return SplitImages(name, images, labels, [pixel_hash(i) for i in images])


def test_planted_duplicates_are_found_in_groups_with_counts_per_split_pair():
    train, test = _blobs(150, 24, 0), _blobs(50, 24, 1)
    x = train[:4].float()
    resized = torch.nn.functional.interpolate(
        torch.nn.functional.interpolate(x, size=(18, 18), mode="bilinear", antialias=True),
        size=(24, 24),
        mode="bilinear",
    )
    copies = {
        "exact": train[0],
        "brighter": (x[1] * 0.8 + 30).round().to(torch.uint8),
        "shifted": torch.roll(train[2], shifts=(1, 2), dims=(1, 2)),
        "resized": resized[3].round().clamp(0, 255).to(torch.uint8),
    }
    test = torch.cat([test, torch.stack(list(copies.values()))])  # test 50..53 copy train 0..3
    train = torch.cat([train, train[10:11]])  # train 150 copies train 10
    report = find_duplicates({"train": _split("train", train), "test": _split("test", test)})
    groups = {frozenset(g.members): g for g in report.groups}
    for k in range(4):
        assert frozenset({("test", 50 + k), ("train", k)}) in groups, list(copies)[k]
    assert groups[frozenset({("test", 50), ("train", 0)})].kind == "exact"
    assert groups[frozenset({("train", 10), ("train", 150)})].kind == "exact"
    assert len(report.groups) == 5  # no distinct image was grouped
    assert report.pairs["train/test"] == {"groups": 4, "images": 4}
    assert report.pairs["train/train"] == {"groups": 1, "images": 2}
    assert report.pairs["test/test"] == {"groups": 0, "images": 0}
    assert sorted(report.flagged())[:1] == [("train", 0, groups[frozenset({("test", 50), ("train", 0)})].id)]


# ----- files -----


def _png(path, size=(16, 16), mode="RGB", value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 50, 200 - value)).save(path, format="PNG")


@pytest.fixture
def messy_folder(tmp_path):
    root = tmp_path / "messy"
    for c in ("cat", "dog"):
        for k in range(6):
            _png(root / c / f"{k}.png", value=20 * k + (0 if c == "cat" else 7))
    (root / "cat" / "empty.png").write_bytes(b"")
    (root / "cat" / "garbage.png").write_bytes(b"not an image at all")
    _png(root / "dog" / "photo.txt")  # a PNG the reader skips for its name
    Image.new("RGB", (16, 16), (1, 2, 3)).save(root / "dog" / "jpeg.png", format="JPEG")  # read anyway
    _png(root / "dog" / "big.png", size=(20, 20), value=33)
    _png(root / "dog" / "gray.png", mode="L", value=90)
    _png(root / "dog" / "copy.png", value=20)  # the same pixels as dog/1.png? no: cat/1.png (value 20)
    return root


def test_files_check_names_each_problem(messy_folder):
    report = scan_folder(messy_folder)
    kinds = {(i.kind, i.path.rsplit("/", 1)[-1]) for i in report.issues}
    assert kinds == {
        ("zero-byte", "empty.png"),
        ("unreadable", "garbage.png"),
        ("misnamed", "photo.txt"),
        ("misnamed", "jpeg.png"),
        ("odd-size", "big.png"),
        ("odd-mode", "gray.png"),
    }
    assert report.broken_paths() == {str(messy_folder / "cat" / f) for f in ("empty.png", "garbage.png")}


def test_check_of_a_folder_writes_every_file(messy_folder, tmp_path):
    out = tmp_path / "out"
    result = check(f"folder:{messy_folder}", out=out, quiet=True)
    summary = json.loads((out / "check.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    assert list(summary) == [
        "convtrain_check",
        "dataset",
        "source",
        "classes",
        "channels",
        "image_size",
        "splits",
        "settings",
        "files",
        "duplicates",
        "labels",
        "balance",
        "seconds",
    ]
    assert summary["files"]["counts"] == {
        "misnamed": 2,
        "odd-mode": 1,
        "odd-size": 1,
        "unreadable": 1,
        "zero-byte": 1,
    }
    (group,) = [g for g in summary["duplicates"]["groups"] if g["kind"] == "exact"]
    assert {m["path"].rsplit("/", 2)[-2] + "/" + m["path"].rsplit("/", 1)[-1] for m in group["members"]} == {
        "cat/1.png",
        "dog/copy.png",
    }
    rows = list(csv.DictReader((out / "issues.csv").open()))
    assert len(rows) == 6 + 1 and {r["check"] for r in rows} == {"files", "duplicates"}
    page = (out / "check.html").read_text()
    assert "garbage.png" in page and page.count("data:image/png;base64,") >= 2


# ----- label issues end to end, with flipped labels -----


@pytest.fixture(scope="module")
def flipped_npz(tmp_path_factory):
    """A learnable 4-class 16x16 dataset (bands) with 8 training labels flipped at known places."""
    rng = np.random.default_rng(0)

    x_train, y_train = make_pattern_images(320, 4, 16, 1, seed=1)
    x_test, y_test = make_pattern_images(80, 4, 16, 1, seed=2)
    flipped = rng.choice(320, size=8, replace=False)
    y_train = y_train.copy()
    y_train[flipped] = (y_train[flipped] + 1 + rng.integers(0, 3, size=8)) % 4
    path = tmp_path_factory.mktemp("flipped") / "flipped.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path, set(flipped.tolist())


def test_flipped_labels_are_found(flipped_npz, tmp_path, monkeypatch):
    path, flipped = flipped_npz
    options = {"epochs": 3, "batch_size": 32, "lr": 0.05, "label_smoothing": 0.0, "augment": "none"}
    served = []  # (images served, address of the images they are served from) per loader

    def spy(split, *args, **kwargs):
        loader = make_loader(split, *args, **kwargs)
        served.append((loader.size, loader.images.data_ptr()))
        return loader

    monkeypatch.setattr(crossval, "make_loader", spy)
    result = check(
        f"npz:{path}",
        labels=True,
        folds=2,
        model="mnist-cnn",
        train_options=options,
        out=tmp_path,
        quiet=True,
    )
    # One data pipeline: per fold a training loader and one on the held-out half (about 160 images
    # each, 320 together) and one on test (80), all indexing the same two copies of train and test.
    sizes = sorted(size for size, _ in served)
    assert sizes[:2] == [80, 80] and sum(sizes[2:]) == 2 * 320 and len(sizes) == 6
    assert len({address for _, address in served}) == 2
    found = {i["index"] for i in result.summary["labels"]["issues"] if i["split"] == "train"}
    assert len(found & flipped) >= 7  # recall
    assert len(found - flipped) <= 2  # false positives on clean, learnable data
    assert result.summary["labels"]["counts"]["test"] <= 2
    rows = [r for r in csv.DictReader((tmp_path / "issues.csv").open()) if r["check"] == "labels"]
    assert len(rows) == len(result.summary["labels"]["issues"])


# ----- bad input and Ctrl-C -----


def test_bad_input_is_one_line(tiny_npz, tmp_path):
    cases = [
        (dict(dataset=f"npz:{tiny_npz}", split="valid"), "unknown split"),
        (dict(dataset=f"npz:{tiny_npz}", labels=True, folds=1), "--folds"),
        (dict(dataset=f"npz:{tiny_npz}", split="val"), "no val split"),
        # the test split is scored by models trained on train (score_held_out), refused before any training
        (
            dict(dataset=f"npz:{tiny_npz}", split="test", labels=True, train_options={"precision": "fp16"}),
            "fp16",
        ),
    ]
    one_class = tmp_path / "one.npz"
    np.savez(one_class, x_train=np.zeros((8, 8, 8), np.uint8), y_train=np.zeros(8, np.int64))
    cases.append((dict(dataset=f"npz:{one_class}"), "class"))
    unreadable = tmp_path / "unreadable"
    for c in ("a", "b"):
        (unreadable / c).mkdir(parents=True)
        (unreadable / c / "x.png").write_bytes(b"junk")
    cases.append((dict(dataset=f"folder:{unreadable}"), "no readable images"))
    for kwargs, words in cases:
        with pytest.raises(ConvtrainError, match=words) as error:
            check(**kwargs, quiet=True)
        assert "\n" not in str(error.value)


def test_interrupted_check_leaves_no_check_json(tiny_npz, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(audit, "render_page", interrupted)
    with pytest.raises(KeyboardInterrupt):
        check(f"npz:{tiny_npz}", out=tmp_path, quiet=True)
    assert list(tmp_path.iterdir()) == []

"""Edited copies: a training image shifted, recoloured, rescaled, cropped or JPEG'd into test is found
beside its original; different images of the same class are not."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from convtrain.datacheck.duplicates import find_duplicates
from convtrain.datacheck.edited_copies import EDITED_THRESHOLD, edited_pairs
from convtrain.datacheck.source import SplitImages, pixel_hash


def _scenes(count: int, seed: int) -> torch.Tensor:
    """Made-up photos, (N, 3, 32, 32) uint8: a smooth random colour field, three boxes and a disc of
    random colours and places, a little texture, softened."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    fields = F.interpolate(torch.rand(count, 3, 6, 6, generator=g), size=(32, 32), mode="bicubic")
    images = []
    for field in fields:
        image = field.clone()  # (3, 32, 32)
        for _ in range(3):
            y0, x0 = torch.randint(0, 24, (2,), generator=g).tolist()
            h, w = torch.randint(5, 16, (2,), generator=g).tolist()
            image[:, y0 : y0 + h, x0 : x0 + w] = torch.rand(3, 1, 1, generator=g)
        cy, cx, r = (
            torch.rand(3, generator=g) * torch.tensor([32.0, 32.0, 8.0]) + torch.tensor([0, 0, 3])
        ).tolist()
        disc = (ys - cy) ** 2 + (xs - cx) ** 2 < r**2
        image = torch.where(disc, torch.rand(3, 1, 1, generator=g), image)
        image = image + 0.05 * torch.rand(3, 32, 32, generator=g)
        images.append(image)
    x = F.avg_pool2d(F.pad(torch.stack(images), (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return (x * 230 + 10).round().clamp(0, 255).to(torch.uint8)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray(x.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=quality)
    return torch.from_numpy(np.asarray(Image.open(buffer).convert("RGB")).copy()).permute(2, 0, 1)


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    padded = F.pad(x[None].float(), (4, 4, 4, 4), mode="replicate")[0]
    return padded[:, 4 + dy : 36 + dy, 4 + dx : 36 + dx].round().to(torch.uint8)


EDITS = {
    "shifted 3 px right, 2 down": lambda x: _shifted(x, -2, -3),
    "recoloured": lambda x: TF.adjust_contrast(TF.adjust_brightness(TF.adjust_hue(x, 0.08), 1.2), 0.8),
    "rescaled 20 -> 32 px": lambda x: TF.resize(
        TF.resize(x, [20, 20], antialias=True), [32, 32], antialias=True
    ),
    "cropped to 27 px": lambda x: TF.resized_crop(x, 3, 1, 27, 27, [32, 32], antialias=True),
    "JPEG quality 30": lambda x: _jpeg(x, 30),
    "all of them": lambda x: _jpeg(
        TF.resized_crop(_shifted(TF.adjust_hue(x, -0.05), 1, 2), 2, 2, 28, 28, [32, 32]), 40
    ),
}


def _split(name: str, images: torch.Tensor, labels: torch.Tensor) -> SplitImages:
    return SplitImages(name, images, labels, [pixel_hash(i) for i in images])


@pytest.fixture(scope="module")
def planted():
    train = _scenes(60, seed=0)
    train_labels = torch.arange(60) % 3
    copies = torch.stack([edit(train[k]) for k, edit in enumerate(EDITS.values())])  # of train 0..5
    unrelated = _scenes(6, seed=1)  # new scenes, labelled as the copies' originals are
    test = torch.cat([copies, unrelated])
    test_labels = torch.cat([train_labels[: len(EDITS)], train_labels[: len(EDITS)]])
    report = find_duplicates(
        {"train": _split("train", train, train_labels), "test": _split("test", test, test_labels)}
    )
    return report, len(EDITS)


@pytest.mark.parametrize("k, edit", list(enumerate(EDITS)))
def test_an_edited_copy_in_test_is_grouped_with_its_training_original(planted, k, edit):
    report, _ = planted
    group = next((g for g in report.groups if ("test", k) in g.members), None)
    assert group is not None, f"{edit}: not found"
    assert ("train", k) in group.members, f"{edit}: grouped with {group.members}, not train[{k}]"
    assert group.kind in ("near", "edited")


def test_unrelated_images_of_the_same_class_are_not_grouped(planted):
    report, copies = planted
    grouped = {member for g in report.groups for member in g.members}
    assert not {("test", copies + k) for k in range(copies)} & grouped
    assert all(len(g.members) == 2 for g in report.groups), [g.members for g in report.groups]
    assert report.pairs["train/test"]["images"] == copies
    assert report.pairs["train/train"]["groups"] == 0


def test_the_stricter_the_threshold_the_fewer_edited_copies():
    train = _scenes(30, seed=2)
    copies = torch.stack([EDITS["cropped to 27 px"](train[k]) for k in range(3)])
    labels = torch.zeros(30, dtype=torch.long)
    splits = {"train": _split("train", train, labels), "test": _split("test", copies, labels[:3])}
    report = find_duplicates(splits)
    strict = find_duplicates(splits, edited_threshold=0.9999).pairs["train/test"]["images"]
    assert report.pairs["train/test"]["images"] == 3 and strict < 3
    assert {g.kind for g in report.groups} == {"edited"}  # a crop is beyond the pixel-level search


def test_edited_pairs_scores_a_copy_above_the_threshold_and_different_images_below():
    images = _scenes(20, seed=3)
    images = torch.cat([images, EDITS["cropped to 27 px"](images[4])[None]])  # 20 copies 4
    pairs, scores = edited_pairs(images)
    assert (pairs[:, 0] < pairs[:, 1]).all() and len(set(map(tuple, pairs.tolist()))) == len(pairs)
    copy = (pairs == torch.tensor([4, 20])).all(1)
    assert copy.sum() == 1 and scores[copy].item() >= EDITED_THRESHOLD
    assert (scores[~copy] < EDITED_THRESHOLD).all(), scores[~copy].max()


def test_edited_pairs_of_too_few_images_is_empty():
    pairs, scores = edited_pairs(_scenes(1, seed=4))
    assert pairs.shape == (0, 2) and scores.shape == (0,)


def test_gray_images_are_not_searched_for_edited_copies():
    train = _scenes(30, seed=5)
    copies = torch.stack([EDITS["cropped to 27 px"](train[k]) for k in range(3)])
    gray = lambda x: x.float().mean(1, keepdim=True).round().to(torch.uint8)  # noqa: E731
    labels = torch.zeros(30, dtype=torch.long)
    report = find_duplicates(
        {"train": _split("train", gray(train), labels), "test": _split("test", gray(copies), labels[:3])}
    )
    assert report.edited_threshold is None
    assert not [g for g in report.groups if g.kind == "edited"]


def test_fix_split_and_exclude_act_on_an_edited_copy(tmp_path):
    from convtrain.cli.app import main
    from convtrain.data.exclude import read_exclusions

    root, scenes = tmp_path / "photos", _scenes(24, seed=6)
    for k, image in enumerate(scenes):
        split, label = ("train" if k < 16 else "test"), "ab"[k % 2]
        path = root / split / label / f"{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)
    leak = EDITS["cropped to 27 px"](scenes[2])  # train/a/2.png, cropped, filed in test
    Image.fromarray(leak.permute(1, 2, 0).numpy()).save(root / "test" / "a" / "leak.png")
    out = tmp_path / "check"
    assert main(["data", "check", f"folder:{root}", "--fix-split", "--out", str(out)]) == 0
    assert (out / "split" / "test" / "a" / "2.png").resolve() == (root / "train" / "a" / "2.png").resolve()
    assert not (out / "split" / "train" / "a" / "2.png").exists()
    indices, _ = read_exclusions(out / "issues.csv")  # what --exclude leaves out of training
    rows = [row for row in csv.DictReader((out / "issues.csv").open()) if row["split"] == "train"]
    assert [(row["kind"], row["path"]) for row in rows] == [("edited", str(root / "train" / "a" / "2.png"))]
    assert indices == {int(rows[0]["index"])}

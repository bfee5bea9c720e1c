"""Measure `convtrain data check --labels` against label errors that people confirmed (MNIST and
CIFAR-10 test: benchmarks/confirmed_errors.py), and draw a contact sheet of a check's ranked images
for looking at them yourself.

The ranking read is a finished check's (its --out folder), or one made here, as the check makes it,
from saved test probabilities (`benchmarks.datacheck_planted testsplit --save DIR` keeps each scoring
model's; they are the check's own, since the test labels never reach its training). The confirmed
lists are read once, for the final figure, after every setting of the check was chosen on planted
label flips (benchmarks/datacheck_planted.py testsplit).

    convtrain data check mnist --split test --labels --out checks/mnist-test
    python -m benchmarks.datacheck_confirmed measure checks/mnist-test
    python -m benchmarks.datacheck_confirmed measure planted/cifar10-fast-....pt --dataset cifar10 --data-dir ../shared/datasets
    python -m benchmarks.datacheck_confirmed sheet checks/fashion-test --count 50 --out sheet.png
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from benchmarks.confirmed_errors import CONFIRMED_ERRORS
from convtrain.datacheck.labels import find_label_issues, rank_suspicious
from convtrain.datacheck.source import load_splits


@dataclass
class Ranking:
    """The test split's ranked review list and confident-learning flags, from a check or from
    probabilities."""

    dataset: str
    ranked: list[dict]  # rank, index, given, suggested, confidence: the check's labels.ranked rows
    flagged: set[int]  # test indices confident learning flags
    about: str  # one line: where the ranking came from


def ranking(source: Path, dataset: str | None, data_dir: str | None, top: int) -> Ranking:
    """The ranking of a finished check's folder, or the one the check makes from a .pt of test
    probabilities (N, K) of `dataset` (default settings: self-confidence, confident joint)."""
    if source.is_dir():
        summary = json.loads((source / "check.json").read_text())
        labels = summary["labels"]
        if labels is None or "test" not in labels["counts"]:
            raise SystemExit(f"{source}: not a check of a test split with --labels")
        about = (
            f"{source / 'check.json'}: {labels['models']} {labels['model']} model(s), {labels['epochs']} epochs, "
            f"augment {labels['augment']}, scoring {labels['scoring']}, test accuracy "
            f"{100 * labels['accuracy']['test']:.2f}%, labels {summary['seconds']['labels']:.0f} s, "
            f"whole check {sum(summary['seconds'].values()):.0f} s"
        )
        ranked = [item for item in labels["ranked"] if item["split"] == "test"]
        flagged = {item["index"] for item in labels["issues"] if item["split"] == "test"}
        return Ranking(summary["dataset"], ranked, flagged, about)
    if dataset is None:
        raise SystemExit(f"{source}: probabilities need --dataset, the dataset they score")
    probs = torch.load(source, weights_only=True)
    data, splits, _ = load_splits(dataset, ["test"], data_dir)
    given = splits["test"].labels
    if probs.shape != (len(given), data.num_classes):
        raise SystemExit(
            f"{source}: {tuple(probs.shape)} probabilities, not {dataset} test's {len(given)} x {data.num_classes}"
        )
    review = rank_suspicious(probs, given, top)
    ranked = [
        {"rank": rank, "index": index, "given": data.classes[int(given[index])], "suggested": data.classes[suggested],
         "confidence": confidence}
        for rank, (index, suggested, confidence) in enumerate(
            zip(review.indices.tolist(), review.suggested.tolist(), review.confidence.tolist(), strict=True), start=1
        )
    ]  # fmt: skip
    flagged = set(find_label_issues(probs, given).indices.tolist())
    accuracy = (probs.argmax(1) == given).float().mean().item()
    return Ranking(
        dataset, ranked, flagged, f"{source}: test accuracy {100 * accuracy:.2f}% against the given labels"
    )


def measure(source: Path, dataset: str | None, data_dir: str | None) -> None:
    """How many confirmed errors a test ranking puts first, and what its CL rule shares with the
    paper's candidates."""
    found = ranking(source, dataset, data_dir, top=1000)
    if found.dataset not in CONFIRMED_ERRORS:
        raise SystemExit(
            f"{source}: no confirmed errors known for {found.dataset}; known: {', '.join(CONFIRMED_ERRORS)}"
        )
    confirmed_list, candidates = CONFIRMED_ERRORS[found.dataset]
    _, splits, _ = load_splits(found.dataset, ["test"], data_dir)
    given = splits["test"].labels
    assert all(int(given[i]) == label for i, label, _ in confirmed_list), (
        "index order differs from the paper's"
    )
    order = [item["index"] for item in found.ranked]
    confirmed, total = {i for i, _, _ in confirmed_list}, len(confirmed_list)
    print(found.about)
    for n in sorted({total, 50, 100, len(candidates)}):
        print(f"confirmed errors among the first {n} ranked: {len(confirmed & set(order[:n]))} of {total}")
    rank_of = {index: rank for rank, index in enumerate(order, start=1)}
    print(
        "ranks of the confirmed errors:", {i: rank_of.get(i, f">{len(order)}") for i, _, _ in confirmed_list}
    )
    print(
        f"confident learning flags {len(found.flagged)} test images; "
        f"{len(found.flagged & set(candidates))} of them are among the paper's {len(candidates)} candidates, "
        f"{len(found.flagged & confirmed)} among the {total} confirmed"
    )
    n = len(candidates)
    print(f"the paper's candidates among the first {n} ranked: {len(set(candidates) & set(order[:n]))}")


def sheet(source: Path, count: int, out: Path, dataset: str | None, data_dir: str | None) -> None:
    """A PNG of the first `count` ranked test images, 10 a row (in colour for colour images), each
    captioned #rank given>suggested, the suggestion's probability and the test index."""
    found = ranking(source, dataset, data_dir, top=count)
    ranked = found.ranked[:count]
    _, splits, _ = load_splits(found.dataset, ["test"], data_dir)
    cell, caption = 130, 30
    scale = max(1, (cell - 18) // splits["test"].images.shape[-1])  # 4x for 28 px, 3x for 32 px
    rows = (len(ranked) + 9) // 10
    picture = Image.new("RGB", (10 * cell, rows * (cell + caption)), "white")
    draw = ImageDraw.Draw(picture)
    for k, item in enumerate(ranked):
        image = splits["test"].images[item["index"]]  # (C, H, W) uint8
        tile = Image.fromarray(image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy())
        tile = tile.resize((image.shape[-1] * scale, image.shape[-1] * scale), Image.NEAREST)
        x, y = (k % 10) * cell, (k // 10) * (cell + caption)
        picture.paste(tile, (x + (cell - tile.width) // 2, y + 4))
        text = f"#{item['rank']} {item['given'][:9]}>{item['suggested'][:9]}"
        draw.text(
            (x + 4, y + cell - 8), f"{text}\n{100 * item['confidence']:.0f}% [{item['index']}]", fill="black"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)
    print(f"wrote {out}: {len(ranked)} images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["measure", "sheet"])
    parser.add_argument(
        "source", type=Path, help="the --out folder of a finished check, or a .pt of test probabilities"
    )
    parser.add_argument("--dataset", default=None, help="the dataset a .pt of probabilities scores")
    parser.add_argument("--count", type=int, default=50, help="sheet: images drawn")
    parser.add_argument("--out", type=Path, default=Path("sheet.png"), help="sheet: the PNG written")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "measure":
        measure(args.source, args.dataset, args.data_dir)
    else:
        sheet(args.source, args.count, args.out, args.dataset, args.data_dir)


if __name__ == "__main__":
    main()

"""Measure `convtrain data check --labels` against label errors that people confirmed, and draw a
contact sheet of a check's ranked images for looking at them yourself.

The reference: Northcutt, Athalye and Mueller (2021), "Pervasive Label Errors in Test Sets
Destabilize Machine Learning Benchmarks". Confident learning flagged 100 MNIST test images; five
Mechanical Turk workers looked at each, and 15 were confirmed as label errors. The indices below are
copied from their published results, github.com/cleanlab/label-errors, file mturk/mnist_mturk.json
(commit 6d5d6b31a13216290afc40e5c6319399c4d15c06): `id` is the position in the MNIST test set (the
t10k files in their order, as convtrain reads them; `measure` checks that the given labels agree).
Confirmed = fewer than 3 of the 5 workers chose the given label (10 where a majority chose the
paper's suggested label, 3 where most chose neither, 2 without agreement), which gives the paper's 15.

These indices are read once, for the final figure, after every setting of the check was chosen on
planted label flips (benchmarks/datacheck_planted.py testsplit). They are not part of the package.

    convtrain data check mnist --split test --labels --out checks/mnist-test
    python -m benchmarks.datacheck_confirmed measure checks/mnist-test
    python -m benchmarks.datacheck_confirmed sheet checks/fashion-test --count 50 --out sheet.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from convtrain.datacheck.source import load_splits

# (test index, given label, label the paper suggested) of the 15 confirmed MNIST test label errors.
CONFIRMED = (
    (947, 8, 9),
    (1621, 0, 6),
    (1901, 9, 4),
    (2130, 4, 9),
    (2462, 2, 0),
    (2597, 5, 3),
    (2654, 6, 1),
    (3520, 6, 4),
    (3558, 5, 0),
    (5937, 5, 3),
    (6651, 0, 6),
    (6783, 1, 6),
    (8527, 4, 9),
    (9679, 6, 3),
    (9729, 5, 6),
)
# The paper's 100 confident-learning candidates (MNIST test indices), confirmed or not.
CANDIDATES = (
    247, 259, 321, 340, 445, 449, 582, 619, 717, 720, 726, 740, 810, 938, 947, 1014, 1033, 1039,
    1112, 1119, 1226, 1232, 1299, 1364, 1393, 1530, 1621, 1681, 1709, 1901, 2035, 2043, 2109, 2130,
    2135, 2182, 2293, 2380, 2406, 2447, 2454, 2462, 2597, 2654, 2836, 2896, 2921, 2927, 2939, 3060,
    3073, 3206, 3422, 3503, 3520, 3558, 3597, 3767, 3778, 3850, 3869, 3906, 4007, 4176, 4201, 4207,
    4224, 4497, 4639, 4783, 4823, 4860, 4874, 4876, 4880, 4956, 4978, 5887, 5937, 5955, 6505, 6572,
    6576, 6597, 6625, 6651, 6783, 7434, 7842, 8094, 8408, 8527, 9009, 9634, 9642, 9664, 9679, 9729,
    9755, 9888,
)  # fmt: skip


def measure(check_dir: Path) -> None:
    """How many confirmed errors a finished MNIST test check ranks first, and what its CL rule shares
    with the paper's candidates."""
    summary = json.loads((check_dir / "check.json").read_text())
    labels = summary["labels"]
    if summary["dataset"] != "mnist" or labels is None or "test" not in labels["counts"]:
        raise SystemExit(f"{check_dir}: not a check of MNIST test with --labels")
    _, splits, _ = load_splits("mnist", ["test"])
    given = splits["test"].labels
    assert all(int(given[i]) == label for i, label, _ in CONFIRMED), "index order differs from the paper's"
    ranked = [item for item in labels["ranked"] if item["split"] == "test"]
    order = [item["index"] for item in ranked]
    confirmed = {i for i, _, _ in CONFIRMED}
    print(f"{check_dir / 'check.json'}: {labels['models']} {labels['model']} model(s), {labels['epochs']} epochs, "
          f"augment {labels['augment']}, scoring {labels['scoring']}, test accuracy {100 * labels['accuracy']['test']:.2f}%, "
          f"labels {summary['seconds']['labels']:.0f} s, whole check {sum(summary['seconds'].values()):.0f} s")  # fmt: skip
    for n in (15, 50, 100):
        print(f"confirmed errors among the first {n} ranked: {len(confirmed & set(order[:n]))} of 15")
    rank_of = {index: rank for rank, index in enumerate(order, start=1)}
    print("ranks of the confirmed errors:", {i: rank_of.get(i, f">{len(order)}") for i, _, _ in CONFIRMED})
    flagged = {item["index"] for item in labels["issues"] if item["split"] == "test"}
    print(
        f"confident learning ({labels['method']}) flags {len(flagged)} test images; "
        f"{len(flagged & set(CANDIDATES))} of them are among the paper's 100 candidates, "
        f"{len(flagged & confirmed)} among the 15 confirmed"
    )
    print(f"the paper's candidates among the first 100 ranked: {len(set(CANDIDATES) & set(order[:100]))}")


def sheet(check_dir: Path, count: int, out: Path, data_dir: str | None) -> None:
    """A PNG of the first `count` ranked test images, 10 a row, each captioned #rank given>suggested."""
    summary = json.loads((check_dir / "check.json").read_text())
    ranked = [item for item in summary["labels"]["ranked"] if item["split"] == "test"][:count]
    _, splits, _ = load_splits(summary["dataset"], ["test"], data_dir)
    cell, scale, caption = 130, 4, 30
    rows = (len(ranked) + 9) // 10
    picture = Image.new("L", (10 * cell, rows * (cell + caption)), 255)
    draw = ImageDraw.Draw(picture)
    for k, item in enumerate(ranked):
        image = splits["test"].images[item["index"]]  # (C, H, W) uint8
        tile = Image.fromarray(
            image[0].numpy() if image.shape[0] == 1 else image.float().mean(0).byte().numpy()
        )
        tile = tile.resize((image.shape[-1] * scale, image.shape[-1] * scale), Image.NEAREST)
        x, y = (k % 10) * cell, (k // 10) * (cell + caption)
        picture.paste(tile, (x + 9, y + 4))
        text = f"#{item['rank']} {item['given'][:9]}>{item['suggested'][:9]}"
        draw.text((x + 4, y + cell - 8), f"{text}\n{100 * item['confidence']:.0f}% [{item['index']}]", fill=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)
    print(f"wrote {out}: {len(ranked)} images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["measure", "sheet"])
    parser.add_argument("check_dir", type=Path, help="the --out folder of a finished check")
    parser.add_argument("--count", type=int, default=50, help="sheet: images drawn")
    parser.add_argument("--out", type=Path, default=Path("sheet.png"), help="sheet: the PNG written")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "measure":
        measure(args.check_dir)
    else:
        sheet(args.check_dir, args.count, args.out, args.data_dir)


if __name__ == "__main__":
    main()

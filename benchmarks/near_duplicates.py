"""Choose and check the edited-copy threshold of `convtrain data check` on CIFAR-10 with planted copies.

pairs: --count training images per edit get an edited copy placed in a test split beside --natural
real test images; the search (datacheck/edited_copies.py) runs on train[:--train] plus that test
split. Recall is the share of copies paired with their own original at each threshold; "natural
test images matched" counts the real test images paired with some training image at that score:
false alarms, or the near-duplicates CIFAR-10 really has (a contact sheet of them is written for a
person to tell which). The edits, each drawn per image:
- colour: hue +-0.1, saturation, brightness and contrast x0.6-1.4 / 0.7-1.3;
- crop: a 24-29 px square, anywhere, resized back to 32;
- translate: 2-4 px on each axis, either way, edges repeated;
- rescale: down to 16-24 px and back to 32;
- jpeg: quality 20-50;
- combo: colour, then a 27-30 px crop, then JPEG quality 50.
timing: the search on all of train and test (--train 50000 --natural 10000 --count 0).

    python -m benchmarks.near_duplicates pairs --train 10000 --natural 2000 --count 200
    python -m benchmarks.near_duplicates pairs --train 50000 --natural 10000 --count 0
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.utils
from torchvision.transforms.v2 import functional as TF

from convtrain.datacheck.edited_copies import EDITED_THRESHOLD, edited_pairs
from convtrain.datacheck.source import load_splits

THRESHOLDS = (0.80, 0.83, 0.85, 0.87, 0.89, 0.91, 0.93)
SHEET = 24  # pairs per contact sheet


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=g).item()


def _whole(g: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (), generator=g))


def colour(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    x = TF.adjust_hue(x, _uniform(g, -0.1, 0.1))
    x = TF.adjust_saturation(x, _uniform(g, 0.6, 1.4))
    x = TF.adjust_brightness(x, _uniform(g, 0.7, 1.3))
    return TF.adjust_contrast(x, _uniform(g, 0.7, 1.3))


def crop(x: torch.Tensor, g: torch.Generator, low: int = 24, high: int = 29) -> torch.Tensor:
    side = _whole(g, low, high)
    top, left = _whole(g, 0, 32 - side), _whole(g, 0, 32 - side)
    return TF.resized_crop(x, top, left, side, side, [32, 32], antialias=True)


def translate(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    dy, dx = (_whole(g, 2, 4) * (1 if _whole(g, 0, 1) else -1) for _ in range(2))
    padded = F.pad(x[None].float(), (4, 4, 4, 4), mode="replicate")[0]
    return padded[:, 4 + dy : 36 + dy, 4 + dx : 36 + dx].round().to(torch.uint8)


def rescale(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    side = _whole(g, 16, 24)
    return TF.resize(TF.resize(x, [side, side], antialias=True), [32, 32], antialias=True)


def jpeg(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return TF.jpeg(x, _whole(g, 20, 50))


def combo(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return TF.jpeg(crop(colour(x, g), g, 27, 30), 50)


EDITS = {
    "colour": colour,
    "crop": crop,
    "translate": translate,
    "rescale": rescale,
    "jpeg": jpeg,
    "combo": combo,
}


def pairs(train_count: int, natural: int, count: int, seed: int, out: Path, data_dir: str) -> None:
    _, splits, _ = load_splits("cifar10", ["train", "test"], data_dir)
    train = splits["train"].images[:train_count]
    g = torch.Generator().manual_seed(seed)
    sources = torch.randperm(len(train), generator=g)[: count * len(EDITS)].view(len(EDITS), count)
    copies = [
        torch.stack([edit(train[i], g) for i in sources[k].tolist()]) for k, edit in enumerate(EDITS.values())
    ]
    test = torch.cat([*copies, splits["test"].images[:natural]])  # copies first, then real test images
    images = torch.cat([train, test])
    started = time.perf_counter()
    found, scores = edited_pairs(images)
    seconds = time.perf_counter() - started
    print(
        f"{len(train)} train + {len(test)} test images ({count * len(EDITS)} planted copies): {seconds:.1f} s"
    )
    n = len(train)
    cross = (found[:, 0] < n) & (found[:, 1] >= n)  # i < j: a train image and a test image
    pair_of = {(int(j) - n, int(i)): float(s) for (i, j), s in zip(found[cross], scores[cross], strict=True)}
    print("| edit | " + " | ".join(f"recall at {t}" for t in THRESHOLDS) + " |")
    print("|---|" + "---|" * len(THRESHOLDS))
    for k, name in enumerate(EDITS if count else []):
        got = [pair_of.get((k * count + c, int(sources[k, c])), -1.0) for c in range(count)]
        cells = [f"{100 * sum(s >= t for s in got) / count:.1f}%" for t in THRESHOLDS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    best: dict[int, tuple[float, int]] = {}
    for (test_index, train_index), score in pair_of.items():
        if test_index >= count * len(EDITS) and score > best.get(test_index, (-1.0, 0))[0]:
            best[test_index] = (score, train_index)
    cells = [str(sum(s >= t for s, _ in best.values())) for t in THRESHOLDS]
    print(f"| natural test images matched (of {natural}) | " + " | ".join(cells) + " |")
    out.mkdir(parents=True, exist_ok=True)
    bands = list(zip(THRESHOLDS, (*THRESHOLDS[1:], 1.01), strict=True))
    for low, high in bands:  # a contact sheet per score band, for a person to judge
        band = sorted(((s, t, i) for t, (s, i) in best.items() if low <= s < high), reverse=True)
        picked = [band[k] for k in torch.randperm(len(band), generator=g)[:SHEET].tolist()]
        if picked:
            sheet = torch.stack([x for _, t, i in picked for x in (test[t], train[i])]).float() / 255
            sheet = F.interpolate(sheet, scale_factor=3, mode="nearest")
            name = out / f"natural_{low:.2f}-{min(high, 1):.2f}.png"
            torchvision.utils.save_image(sheet, name, nrow=8, padding=4, pad_value=1)
            print(f"{name}: {len(picked)} of the band's {len(band)} (test, train) pairs, in random order")
    print(f"threshold in use: {EDITED_THRESHOLD}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["pairs"])
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--natural", type=int, default=2000)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/near_duplicates"))
    args = parser.parse_args()
    pairs(args.train, args.natural, args.count, args.seed, args.out, args.data_dir)


if __name__ == "__main__":
    main()

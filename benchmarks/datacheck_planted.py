"""Validate `convtrain data check` on MNIST with planted problems whose places are known.

duplicates: copies of random training images (resized, darker, brighter, shifted 1-2 px) are put
into train and into test; recall is the share of copies found in the same group as their original,
false positives are the near-duplicate groups holding none of the planted images.
labels: labels of random images are flipped to another class; recall is the share of flipped images
flagged, precision the share of flagged images that were flipped (the real MNIST errors count as
false positives here, so precision is a lower bound).

    python -m benchmarks.datacheck_planted duplicates --count 300
    python -m benchmarks.datacheck_planted labels --subset 20000 --flips 200 --folds 5
    python -m benchmarks.datacheck_planted kfold --threads 1     # the label check's cost on MNIST train
    python -m benchmarks.datacheck_planted testsplit --flips 100  # scoring settings for the test split
    python -m benchmarks.datacheck_planted testsplit --dataset cifar10 --data-dir ../shared/datasets \
        --flips 100 --save planted/   # the photo settings; each model's test probabilities kept
    python -m benchmarks.datacheck_planted testsplit --dataset cifar10 --data-dir ../shared/datasets \
        --flips 100 --run runs/cifar10-fastnet   # a finished run's model, without and with test-time views

testsplit: the setting of `data check --split test --labels`. Labels of 2 x --flips test images
are flipped, half to a random other class, half to a plausible one (on MNIST the nearest other class
mean, pixel-wise: 4 -> 9, 3 -> 5...; on CIFAR-10 the class people confuse it with, PLAUSIBLE: cat ->
dog, truck -> automobile...; either way a model-independent choice); models trained on the
(untouched) train split score the test images, and each setting is judged by how many flips rank
among the first 100/200/300 images of `rank_suspicious` and how many the confident-learning rule
flags. The real errors of the test split stay in and compete with the planted ones. The last column
is the same models on the test split's own labels: what `data check --split test --labels` flags.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from convtrain.datacheck.duplicates import find_duplicates
from convtrain.datacheck.source import SplitImages, load_splits, pixel_hash


def _resized(x: torch.Tensor, side: int) -> torch.Tensor:
    size = x.shape[-1]
    y = F.interpolate(x.float(), size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    y = F.interpolate(y, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out, size = torch.zeros_like(x), x.shape[-1]
    out[..., max(0, dy) : size + min(0, dy), max(0, dx) : size + min(0, dx)] = x[
        ..., max(0, -dy) : size + min(0, -dy), max(0, -dx) : size + min(0, -dx)
    ]
    return out


TRANSFORMS = {
    "resize 28->22->28": lambda x: _resized(x, 22),
    "resize 28->40->28": lambda x: _resized(x, 40),
    "darker x0.7": lambda x: (x.float() * 0.7).round().to(torch.uint8),
    "brighter +40": lambda x: (x.int() + 40).clamp(0, 255).to(torch.uint8),
    "shift 1 px": lambda x: _shifted(x, 1, 0),
    "shift 2 px (diagonal)": lambda x: _shifted(x, 2, -2),
}


def _append(split: SplitImages, images: torch.Tensor, labels: torch.Tensor) -> SplitImages:
    return SplitImages(
        split.name,
        torch.cat([split.images, images]),
        torch.cat([split.labels, labels]),
        split.hashes + [pixel_hash(image) for image in images],
    )


def duplicates(count: int, seed: int) -> None:
    _, splits, _ = load_splits("mnist", ["train", "test"])
    train, test = splits["train"], splits["test"]
    generator = torch.Generator().manual_seed(seed)
    sources = torch.randperm(len(train), generator=generator)[: count * len(TRANSFORMS)].view(
        len(TRANSFORMS), count
    )
    planted = {}  # (split, index) of a copy -> (transform, source index in train)
    new = {"train": ([], []), "test": ([], [])}
    for t, (name, transform) in enumerate(TRANSFORMS.items()):
        for half, target in enumerate(("train", "test")):
            chosen = sources[t, half::2]
            base = (len(train) if target == "train" else len(test)) + sum(len(x) for x in new[target][0])
            copies = transform(train.images[chosen])
            new[target][0].append(copies)
            new[target][1].append(train.labels[chosen])
            for k, source in enumerate(chosen.tolist()):
                planted[(target, base + k)] = (name, source)
    train = _append(train, torch.cat(new["train"][0]), torch.cat(new["train"][1]))
    test = _append(test, torch.cat(new["test"][0]), torch.cat(new["test"][1]))
    started = time.perf_counter()
    report = find_duplicates({"train": train, "test": test})
    seconds = time.perf_counter() - started
    group_of = {member: g for g in report.groups for member in g.members}
    found: dict[str, list[int]] = {name: [0, 0] for name in TRANSFORMS}
    for (split, index), (name, source) in planted.items():
        group = group_of.get((split, index))
        found[name][1] += 1
        found[name][0] += group is not None and ("train", source) in group.members
    print(f"{len(train)} train + {len(test)} test images ({len(planted)} planted copies): {seconds:.0f} s")
    print("| planted copy | found | recall |\n|---|---|---|")
    for name, (hits, total) in found.items():
        print(f"| {name} | {hits}/{total} | {100 * hits / total:.1f}% |")
    clean = [g for g in report.groups if not any(m in planted for m in g.members)]
    images = sum(len(g.members) for g in clean)
    print(
        f"groups without a planted copy: {len(clean)} ({images} images); exact {sum(g.kind == 'exact' for g in clean)}"
    )
    for group in clean[:20]:
        print(f"  {group.kind} score {group.score}: {group.members}")


def labels(subset: int, flips: int, folds: int, seed: int) -> None:
    from convtrain.data.dataset import Split
    from convtrain.datacheck.crossval import out_of_fold
    from convtrain.datacheck.labels import find_label_issues

    data, splits, _ = load_splits("mnist", ["train"])
    images, given = splits["train"].images[:subset], splits["train"].labels[:subset].clone()
    generator = torch.Generator().manual_seed(seed)
    flipped = torch.randperm(subset, generator=generator)[:flips]
    given[flipped] = (given[flipped] + torch.randint(1, 10, (flips,), generator=generator)) % 10
    started, cpu = time.perf_counter(), time.process_time()
    result = out_of_fold(data, Split(labels=given, images=images), {}, folds=folds, seed=seed)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"MNIST train[:{subset}], {flips} labels flipped, {folds} folds: {seconds:.0f} s wall, {cpu:.0f} s CPU"
    )
    truth = set(flipped.tolist())
    print("| method, ranking | flagged | flipped found (recall) | flagged that were flipped (precision) |")
    print("|---|---|---|---|")
    for method in ("confident_joint", "prune_by_noise_rate"):
        found = find_label_issues(result.probs, given, method)
        hits = len(truth & set(found.indices.tolist()))
        print(
            f"| {method} | {len(found)} | {hits}/{flips} ({100 * hits / flips:.1f}%) | {100 * hits / max(1, len(found)):.1f}% |"
        )
    ranked = find_label_issues(result.probs, given).indices[:flips].tolist()
    print(f"top {flips} by self-confidence: {len(truth & set(ranked))} flipped")


def kfold(folds: int, seed: int) -> None:
    """Time the label check's expensive step: K-fold out-of-fold probabilities on all of MNIST train."""
    from convtrain.data.dataset import Split
    from convtrain.datacheck.crossval import out_of_fold

    data, splits, _ = load_splits("mnist", ["train"])
    train = Split(labels=splits["train"].labels, images=splits["train"].images)
    started, cpu = time.perf_counter(), time.process_time()
    result = out_of_fold(data, train, {}, folds=folds, seed=seed)
    print(
        f"{folds}-fold out-of-fold probabilities, MNIST train, {torch.get_num_threads()} thread(s): "
        f"{time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU, "
        f"out-of-fold accuracy {100 * result.accuracy:.2f}%"
    )


# name -> (recipe, train options, scoring models, folds: 0 = models trained on all of train); recipe
# None is the check's default for the dataset's family.
TEST_SETTINGS = {
    "1 epoch, label smoothing 0.2 (softened)": ("mnist-fast", {"label_smoothing": 0.2}, 1, 0),
    "1 epoch": ("mnist-fast", {}, 1, 0),
    "3 epochs, translate:2": (None, {}, 1, 0),
    "2 x (3 epochs, translate:2)": (None, {}, 2, 0),
    "5 epochs, translate:2": ("mnist-fast", {"epochs": 5, "augment": "translate:2"}, 1, 0),
    "mean of 5 fold models, 1 epoch": ("mnist-fast", {}, 1, 5),
}
PLAIN = {"ema": 0.0, "tta": False}  # the recipe without its weight average and test-time views
PHOTO_SETTINGS = {  # cifar10-fast without compile: the check's loop does not compile, so it is the same
    "cifar10-cpu, 8 epochs": ("cifar10-cpu", PLAIN, 1, 0),
    "cifar10-cpu, 16 epochs": ("cifar10-cpu", {"epochs": 16, **PLAIN}, 1, 0),
    "cifar10-fast, 10 epochs": ("cifar10-fast", {"compile": False, **PLAIN}, 1, 0),
    "cifar10-fast, 5 epochs": ("cifar10-fast", {"epochs": 5, "compile": False, **PLAIN}, 1, 0),
    # the recipe's weight average (ema 0.95) kept; with --views, scored without and with its views
    "cifar10-fast, 10 epochs, weights averaged": ("cifar10-fast", {"compile": False}, 1, 0),
}
SETTINGS = {"mnist": TEST_SETTINGS, "cifar10": PHOTO_SETTINGS}
VIEWS = (("", False), (", test-time views", True))  # (row-name suffix, tta) of a model scored both ways
# Plausible flips for photos: the class a person (and every CIFAR-10 model) confuses it with, a fixed
# choice that no scoring model made: airplane -> ship, automobile -> truck, bird -> airplane, cat -> dog,
# deer -> horse, dog -> cat, frog -> cat, horse -> deer, ship -> airplane, truck -> automobile.
PLAUSIBLE = {"cifar10": torch.tensor([8, 9, 0, 5, 7, 3, 3, 4, 0, 1])}


def _plant_test_flips(
    images: torch.Tensor, labels: torch.Tensor, flips: int, seed: int, plausible: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(given labels, random-flip indices, plausible-flip indices) for the test split: a plausible flip
    goes to `plausible[label]`, or without that map to the nearest other class mean, pixel-wise."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(labels), generator=generator)[: 2 * flips]
    random_flips, plausible_flips = chosen[:flips], chosen[flips:]
    given = labels.clone()
    given[random_flips] = (labels[random_flips] + torch.randint(1, 10, (flips,), generator=generator)) % 10
    if plausible is not None:
        given[plausible_flips] = plausible[labels[plausible_flips]]
        return given, random_flips, plausible_flips
    flat = images.flatten(1).float()  # (N, 784)
    means = torch.stack([flat[labels == c].mean(0) for c in range(10)])  # (10, 784)
    distance = torch.cdist(flat[plausible_flips], means)  # (flips, 10)
    distance[torch.arange(flips), labels[plausible_flips]] = float("inf")
    given[plausible_flips] = distance.argmin(1)
    return given, random_flips, plausible_flips


def _saved_path(saved: Path | None, recipe: str | None, key: tuple) -> Path | None:
    digest = hashlib.md5(key[1].encode()).hexdigest()[:8]
    return saved / f"{recipe or 'default'}-{digest}-seed{key[2]}.pt" if saved else None


def _test_probs(data, train, test, setting: tuple, seed: int, cache: dict, saved: Path | None):
    """Mean test probabilities of the setting; a model trained for an earlier setting is reused, and
    one saved under `saved` (by an earlier run of the same setting and seed) is read back."""
    from convtrain.datacheck.crossval import dataset_family, fold_config, out_of_fold, score_held_out

    recipe, options, models, folds = setting
    family = dataset_family(data.name, data.channels)[0]
    config = fold_config(recipe, None, options, family)
    quiet = lambda line: None  # noqa: E731
    if folds:
        return out_of_fold(data, train, {"test": test}, folds, config, seed, log=quiet).others["test"]
    keys = [(recipe, repr(sorted(options.items())), seed + m) for m in range(models)]
    for key in keys:
        path = _saved_path(saved, recipe, key)
        if key not in cache and path is not None and path.exists():
            cache[key] = torch.load(path, weights_only=True)
        if key not in cache:
            cache[key] = score_held_out(data, train, {"test": test}, 1, config, key[2], log=quiet).others[
                "test"
            ]
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(cache[key], path)
    return sum(cache[key] for key in keys) / models


def _both_views(data, train, test, setting: tuple, seed: int, saved: Path | None) -> dict[str, torch.Tensor]:
    """('', ', test-time views') -> test probabilities of one model of the setting, trained on all of
    train as `score_held_out` trains it, scored without and with the views: the views' own effect."""
    # deferred: the benchmark reaches into the check's training only in this mode
    from convtrain.datacheck.crossval import (
        _on_device_config,
        _train_fold,
        dataset_family,
        fold_config,
        on_device,
        predict_probs,
    )

    recipe, options, _, _ = setting
    key = (recipe, repr(sorted(options.items())) + " both views", seed)
    path = _saved_path(saved, recipe, key)
    if path is not None and path.exists():
        return torch.load(path, weights_only=True)
    config = fold_config(recipe, None, options, dataset_family(data.name, data.channels)[0])
    config, where = _on_device_config(config, "auto")
    train, test = on_device(train, where), on_device(test, where)
    model = _train_fold(train, torch.arange(len(train), device=where), data, config, where, seed)
    both = {suffix: predict_probs(model, test, data, config.replace(tta=tta), where) for suffix, tta in VIEWS}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(both, path)
    return both


def _run_probs(run: Path, tta: bool) -> torch.Tensor:
    """Test probabilities of a finished run folder's model (the weights its test measured), with or
    without test-time views: what a recipe's own training gives a check that scores with it."""
    from convtrain.evaluation.scoring import run_logits

    return run_logits(run, "test", tta=tta).logits.softmax(1)


def testsplit(
    dataset: str,
    data_dir: str | None,
    flips: int,
    seed: int,
    settings: list[str],
    saved: Path | None,
    run: Path | None = None,
    views: bool = False,
) -> None:
    """Rank flipped test labels with models trained on train, for each scoring setting (with `views`,
    each setting's one model scored without and with test-time views; with `run`, a finished run's
    model, both ways); then the same models on the test split's own labels, as `data check --split
    test --labels` would score them."""
    from convtrain.data.dataset import Split
    from convtrain.datacheck.labels import find_label_issues, rank_suspicious

    data, splits, _ = load_splits(dataset, ["train", "test"], data_dir)
    train = Split(labels=splits["train"].labels, images=splits["train"].images)
    clean = splits["test"].labels
    given, random_flips, plausible_flips = _plant_test_flips(
        splits["test"].images, clean, flips, seed, PLAUSIBLE.get(dataset)
    )
    test = Split(labels=given, images=splits["test"].images)
    kinds = {"random": set(random_flips.tolist()), "plausible": set(plausible_flips.tolist())}
    scorer = "a run's model" if run else "scoring models trained on train"
    print(f"{data.name} test, {flips} random + {flips} plausible flips; {scorer}")
    print(
        "| setting | ranking | test accuracy (clean labels) | random flips in top 100 / 200 / 300 "
        "| plausible flips in top 100 / 200 / 300 | CL flags (flipped) | CL flags on the real labels | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    cache: dict = {}
    rows = []  # (row name, probabilities, seconds)
    for name in [str(run)] if run else settings:
        started = time.perf_counter()
        if run:
            scored = {suffix: _run_probs(run, tta) for suffix, tta in VIEWS}
        elif views:
            scored = _both_views(data, train, test, SETTINGS[dataset][name], seed, saved)
        else:
            scored = {"": _test_probs(data, train, test, SETTINGS[dataset][name], seed, cache, saved)}
        rows += [(name + suffix, probs, time.perf_counter() - started) for suffix, probs in scored.items()]
    for name, probs, seconds in rows:
        accuracy = (probs.argmax(1) == clean).float().mean().item()
        flagged = set(find_label_issues(probs, given).indices.tolist())
        real = len(find_label_issues(probs, clean))
        planted = kinds["random"] | kinds["plausible"]
        for rank_by in ("self_confidence", "normalized_margin"):
            ranked = rank_suspicious(probs, given, 300, rank_by).indices.tolist()
            found = {
                kind: " / ".join(str(len(members & set(ranked[:n]))) for n in (100, 200, 300))
                for kind, members in kinds.items()
            }
            print(
                f"| {name} | {rank_by} | {100 * accuracy:.2f}% | {found['random']} | {found['plausible']} "
                f"| {len(flagged)} ({len(flagged & planted)}) | {real} | {seconds:.0f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=["duplicates", "labels", "kfold", "testsplit"])
    parser.add_argument("--count", type=int, default=300, help="duplicates: copies per transform")
    parser.add_argument("--subset", type=int, default=20000, help="labels: first N MNIST training images")
    parser.add_argument("--flips", type=int, default=200, help="labels: labels flipped")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--settings", default="all", help="testsplit: comma list of setting numbers (1-based) or all"
    )
    parser.add_argument("--dataset", default="mnist", choices=sorted(SETTINGS), help="testsplit: dataset")
    parser.add_argument("--data-dir", default=None, help="testsplit: where the dataset is")
    parser.add_argument(
        "--save",
        type=Path,
        default=None,
        help="testsplit: keep (and reuse) each model's test probabilities here",
    )
    parser.add_argument(
        "--run",
        type=Path,
        default=None,
        help="testsplit: score with this finished run folder's model instead",
    )
    parser.add_argument(
        "--views",
        action="store_true",
        help="testsplit: score each setting's one model without and with test-time views",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.check == "duplicates":
        duplicates(args.count, args.seed)
    elif args.check == "testsplit":
        names = list(SETTINGS[args.dataset])
        chosen = names if args.settings == "all" else [names[int(i) - 1] for i in args.settings.split(",")]
        testsplit(args.dataset, args.data_dir, args.flips, args.seed, chosen, args.save, args.run, args.views)
    elif args.check == "kfold":
        kfold(args.folds, args.seed)
    else:
        labels(args.subset, args.flips, args.folds, args.seed)


if __name__ == "__main__":
    main()

"""check(): audit a dataset before trusting the accuracy measured on it.

One call runs every check on the chosen splits and (with out=) writes check.json, issues.csv,
ranking.csv and check.html: broken files (base/atomic_files.py), exact and near duplicates within and across
splits (duplicates.py), label issues by confident learning on out-of-sample probabilities plus the
`top` least-trusted images of each split ranked for review (labels.py, crossval.py; only with
labels=True, as it trains models) and class balance (balance.py). One line per check is printed as
it finishes.

    python -c "import convtrain; convtrain.check('mnist', split='test', labels=True, out='checks/mnist')"
    convtrain data check mnist --split test --labels --top 100 --out checks/mnist
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convtrain.base.errors import ConfigError
from convtrain.config.train_config import TrainConfig
from convtrain.data.dataset import Split
from convtrain.datacheck.balance import class_balance
from convtrain.datacheck.check_config import CheckConfig
from convtrain.datacheck.check_dir import CheckDir
from convtrain.datacheck.check_outputs import SCHEMA, issue_rows
from convtrain.datacheck.check_page import render_page
from convtrain.datacheck.crossval import (
    dataset_family,
    epochs_for_set,
    fold_config,
    out_of_fold,
    score_held_out,
    scoring_words,
)
from convtrain.datacheck.duplicates import find_duplicates
from convtrain.datacheck.file_health import FileReport, blank_images, scan_folder
from convtrain.datacheck.labels import find_label_issues, rank_suspicious
from convtrain.datacheck.source import SplitImages, load_splits, resolve_splits
from convtrain.training.epochs_and_size import DEFAULT_EPOCHS


@dataclass
class CheckResult:
    """A finished check: check.json's content, the issues.csv rows, where they were written, and
    the images checked (for --fix-split and the page)."""

    summary: dict[str, Any]
    issues: list[dict[str, Any]]
    out: Path | None
    images: dict[str, SplitImages]


def check(dataset: str, settings: CheckConfig | None = None, **options: Any) -> CheckResult:
    """Check `dataset` (a registered name, folder:PATH or npz:PATH) and return what was found.

    The settings are a CheckConfig, or its fields as keywords (check_config.py says what each does):
    check("mnist", split="test", labels=True, out="checks/mnist").
    """
    if settings is not None and options:
        raise ConfigError("give check() a CheckConfig or keyword settings, not both")
    settings = settings or CheckConfig.of(options)
    log = (lambda line: None) if settings.quiet else (lambda line: print(line, flush=True))
    wanted = resolve_splits(settings.split)
    labels = settings.labels
    config = (  # bad names fail before any work
        fold_config(settings.recipe, settings.model, settings.train_options) if labels else None
    )
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    data, splits, undecodable = load_splits(dataset, wanted, settings.data_dir)
    checked = [name for name in splits if name in wanted]
    seconds["load"] = time.perf_counter() - started
    log(
        f"{data.name}: "
        + ", ".join(f"{len(splits[n])} {n}" for n in splits)
        + f" images [{seconds['load']:.1f}s]"
    )

    started = time.perf_counter()
    files = _files(dataset, splits, checked, undecodable)
    seconds["files"] = time.perf_counter() - started
    log(_files_line(files, dataset))

    started = time.perf_counter()
    log(f"duplicates: comparing {sum(len(s) for s in splits.values())} images...")
    duplicates = find_duplicates(splits, settings.near_threshold, settings.edited_threshold)
    seconds["duplicates"] = time.perf_counter() - started
    log(_duplicates_line(duplicates, seconds["duplicates"]))

    label_summary = None
    if labels:
        started = time.perf_counter()
        if settings.recipe is None:  # the recipe of the dataset's kind, now that its images are known
            family, why = dataset_family(data.name, data.channels)
            config = fold_config(None, settings.model, settings.train_options, family)
            more = ""
            if "epochs" not in (settings.train_options or {}):  # the recipe's epochs suit its own dataset
                config, more = epochs_for_set(config, _model_images(splits, checked, settings.folds))
            extras = scoring_words(config)
            log(f"labels: scoring models train with recipe {config.recipe}, {config.model}, "
                f"{config.epochs or DEFAULT_EPOCHS} epochs" + (f", {extras}" if extras else "")
                + f" ({family}: {why}; --recipe to choose)"
                + (f"; {more}" if more else ""))  # fmt: skip
        scoring = LabelScoring(
            settings.folds, settings.scoring_models, config, settings.seed, settings.device
        )
        label_summary = _labels(data, splits, checked, scoring, settings, log)
        seconds["labels"] = time.perf_counter() - started
        counts = ", ".join(
            f"{n} in {s} ({100 * n / len(splits[s]):.2f}%)" for s, n in label_summary["counts"].items()
        )
        accuracy = ", ".join(f"{s} {100 * a:.2f}%" for s, a in label_summary["accuracy"].items())
        log(
            f"labels: {counts} flagged; accuracy against the given labels {accuracy}; "
            f"{len(label_summary['ranked'])} ranked for review [{seconds['labels']:.0f}s]"
        )

    balance = class_balance({n: splits[n].labels for n in splits}, list(data.classes), settings.min_share)
    flagged = ", ".join(
        f"{f['class']} in {f['split']} ({100 * f['share']:.1f}%)" for f in balance["flagged"][:5]
    )
    log(
        f"balance: {data.num_classes} classes; "
        + (
            f"under {100 * balance['min_share']:.1f}%: {flagged}"
            if flagged
            else f"none under {100 * balance['min_share']:.1f}% of a split"
        )
    )

    summary = {
        "convtrain_check": SCHEMA,
        "dataset": data.name,
        "source": data.source or dataset,
        "classes": list(data.classes),
        "channels": data.channels,
        "image_size": data.image_size,
        "splits": {n: len(splits[n]) for n in splits},
        "settings": {
            "split": settings.split,
            "labels": labels,
            "folds": settings.folds if labels else None,
            "top": settings.top if labels else None,
            "scoring_models": settings.scoring_models if labels else None,
            "recipe": config.recipe if config else None,
            "model": config.model if config else None,
            "near_threshold": settings.near_threshold,
            "edited_threshold": settings.edited_threshold,
            "method": settings.method,
            "rank_by": settings.rank_by,
            "min_share": balance["min_share"],
            "seed": settings.seed,
        },
        "files": _files_summary(files, splits),
        "duplicates": _duplicates_summary(duplicates, splits, data.classes),
        "labels": label_summary,
        "balance": balance,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    out = settings.out
    if out is not None:
        folder = CheckDir(out)
        folder.write(summary, render_page(summary, splits))
        written = ", ".join(str(path) for path in (folder.json_path, folder.issues_path, folder.page_path))
        log(f"wrote {written}" + (f" and {folder.ranking_path}" if labels else ""))
    return CheckResult(summary, issue_rows(summary), None if out is None else Path(out), splits)


# ----- the parts of check.json -----


def _files(dataset: str, splits: dict[str, SplitImages], checked: list[str], undecodable: list) -> FileReport:
    if dataset.startswith("folder:"):
        report = scan_folder(Path(dataset.partition(":")[2]).expanduser())
        report.issues += undecodable
        report.issues = [i for i in report.issues if i.split in checked]
        return report
    report = FileReport(files=sum(len(splits[n]) for n in checked))
    for name in checked:
        report.issues += blank_images(name, splits[name].images)
        shape = "x".join(str(s) for s in splits[name].images.shape[1:])
        report.sizes[name] = {shape: len(splits[name])}
    return report


def _files_line(files: FileReport, dataset: str) -> str:
    what = "files" if dataset.startswith("folder:") else "images (arrays: blank images only)"
    found = ", ".join(f"{n} {kind}" for kind, n in files.counts().items()) or "no problems"
    return f"files: {files.files} {what}; {found}"


def _files_summary(files: FileReport, splits: dict[str, SplitImages]) -> dict[str, Any]:
    index_of = {path: (name, i) for name, s in splits.items() if s.paths for i, path in enumerate(s.paths)}
    issues = []
    for issue in files.issues:
        if issue.path in index_of:  # a file that was read (misnamed, odd size): point at its image
            issue.index = index_of[issue.path][1]
        issues.append(issue.to_dict())
    return {
        "checked": files.files,
        "counts": files.counts(),
        "sizes": {s: dict(c) for s, c in files.sizes.items()},
        "modes": {s: dict(c) for s, c in files.modes.items()},
        "issues": issues,
    }


def _duplicates_line(duplicates, seconds: float) -> str:
    kinds = duplicates.kind_counts()
    pairs = ", ".join(f"{p} {c['groups']}" for p, c in duplicates.pairs.items() if c["groups"])
    searched = duplicates.edited_threshold is not None
    groups = (
        f"{kinds['exact']} exact, {kinds['near']} near and {kinds['edited']} edited-copy groups"
        if searched
        else f"{kinds['exact']} exact and {kinds['near']} near groups (edited copies: colour images only)"
    )
    return (
        f"duplicates: {groups}, {len(duplicates.flagged())} removable copies"
        + (f"; groups per split pair: {pairs}" if pairs else "")
        + f" [{seconds:.0f}s]"
    )


def _member(splits: dict[str, SplitImages], classes: list[str], split: str, index: int) -> dict[str, Any]:
    images = splits[split]
    path = images.paths[index] if images.paths is not None else ""
    return {"split": split, "index": index, "path": path, "label": classes[int(images.labels[index])]}


def _duplicates_summary(duplicates, splits: dict[str, SplitImages], classes: list[str]) -> dict[str, Any]:
    groups = [
        {
            "id": g.id,
            "kind": g.kind,
            "score": g.score,
            "members": [_member(splits, classes, s, i) for s, i in g.members],
        }
        for g in duplicates.groups
    ]
    return {
        "threshold": duplicates.threshold,
        "edited_threshold": duplicates.edited_threshold,
        **{f"{kind}_groups": count for kind, count in duplicates.kind_counts().items()},
        "flagged": len(duplicates.flagged()),
        "pairs": duplicates.pairs,
        "groups": groups,
    }


def _model_images(splits, checked, folds: int) -> int:
    """How many images each fold or scoring model trains on: (K-1)/K of train when train is checked
    by K-fold, all of it otherwise."""
    total = len(splits["train"])
    return total * (folds - 1) // folds if "train" in checked else total


@dataclass
class LabelScoring:
    """How the label check gets out-of-sample probabilities."""

    folds: int  # K-fold cross-validation on train, when train is checked
    models: int  # models trained on all of train that score val/test, when train is not checked
    config: TrainConfig  # of every fold or scoring model
    seed: int
    device: str


def _probabilities(data, splits, checked, scoring: LabelScoring, log) -> tuple[dict, Any, float, dict]:
    """Out-of-sample probabilities of every checked split: (split -> (N, K), the models' config,
    seconds, how they were made)."""
    train = Split(labels=splits["train"].labels, images=splits["train"].images)
    others = {n: Split(labels=splits[n].labels, images=splits[n].images) for n in checked if n != "train"}
    if "train" in checked:  # every split from the K fold models, none of which saw the image it scores
        folds = out_of_fold(
            data, train, others, scoring.folds, scoring.config, scoring.seed, scoring.device, log
        )
        how = {"scoring": "folds", "folds": scoring.folds, "models": scoring.folds}
        how["out_of_fold_accuracy"] = round(folds.accuracy, 5)
        return {"train": folds.probs, **folds.others}, folds.config, folds.seconds, how
    # val/test only: models trained on the whole train split, which never saw them
    held = score_held_out(
        data, train, others, scoring.models, scoring.config, scoring.seed, scoring.device, log
    )
    how = {"scoring": "full_train", "folds": None, "models": scoring.models, "out_of_fold_accuracy": None}
    return held.others, held.config, held.seconds, how


def _labels(data, splits, checked, scoring: LabelScoring, settings: CheckConfig, log) -> dict[str, Any]:
    probs, config, seconds, how = _probabilities(data, splits, checked, scoring, log)
    method, rank_by, top = settings.method, settings.rank_by, settings.top
    issues, ranked, counts, joints, thresholds, accuracy = [], [], {}, {}, {}, {}
    for name in checked:
        given = splits[name].labels
        found = find_label_issues(probs[name], given, method, rank_by)
        counts[name], joints[name] = len(found), found.joint.tolist()
        thresholds[name] = [round(t, 4) for t in found.thresholds.tolist()]
        accuracy[name] = round((probs[name].argmax(1) == given).float().mean().item(), 5)
        for index, suggested, score, confidence in zip(
            found.indices.tolist(),
            found.suggested.tolist(),
            found.scores.tolist(),
            found.confidence.tolist(),
            strict=True,
        ):
            issues.append(_label_item(data, splits, name, index, suggested, confidence, score))
        flagged = set(found.indices.tolist())
        review = rank_suspicious(probs[name], given, min(top, len(given)), rank_by)
        for rank, (index, suggested, score, confidence) in enumerate(
            zip(
                review.indices.tolist(),
                review.suggested.tolist(),
                review.scores.tolist(),
                review.confidence.tolist(),
                strict=True,
            ),
            start=1,
        ):
            item = _label_item(data, splits, name, index, suggested, confidence, score)
            ranked.append({"rank": rank, **item, "flagged": index in flagged})
    return {
        "method": method,
        "rank_by": rank_by,
        **how,
        "recipe": config.recipe,
        "model": config.model,
        "epochs": config.epochs,
        "augment": config.augment,
        "label_smoothing": config.label_smoothing,
        "accuracy": accuracy,
        "training_seconds": round(seconds, 1),
        "thresholds": thresholds,
        "confident_joint": joints,
        "counts": counts,
        "issues": issues,
        "top": top,
        "ranked": ranked,
    }


def _label_item(
    data, splits, name: str, index: int, suggested: int, confidence: float, score: float
) -> dict[str, Any]:
    return {
        "split": name,
        "index": index,
        "path": splits[name].paths[index] if splits[name].paths is not None else "",
        "given": data.classes[int(splits[name].labels[index])],
        "suggested": data.classes[suggested],
        "confidence": round(confidence, 4),
        "score": round(score, 4),
    }

"""The run report: every picture of a run, and report.html, one self-contained page that shows them.

Made from the run folder alone (config.yaml, model.json, metrics.csv, results.json, best.pt) plus
the dataset it names, which is needed for the evaluation pictures. Whatever is missing (no test
split, no validation split, a dataset that moved, no epoch finished) leaves a note on the page
instead of stopping the report. Pictures go to <run>/plots/, and the page embeds them as base64,
so report.html can be mailed or archived on its own.

    convtrain plot runs/mnist-lenet5 && xdg-open runs/mnist-lenet5/report.html
"""

from __future__ import annotations

from pathlib import Path

import torch

from convtrain.base.errors import ConvtrainError
from convtrain.data.augment import parse_augment
from convtrain.data.loader import make_loader
from convtrain.data.pixels import denormalize
from convtrain.evaluation.explain import ExplainError, check_method
from convtrain.evaluation.explain.pictures import report_sample, split_pixels, write_gallery
from convtrain.evaluation.metrics import metrics_from_logits
from convtrain.evaluation.report.kernels import conv_layers, filters_figure
from convtrain.evaluation.report.plots import (
    plot_confusion,
    plot_curves,
    plot_image_grid,
    plot_per_class,
    plot_predictions,
)
from convtrain.evaluation.report.run_page import Page, write_report
from convtrain.evaluation.scoring import Scored, load_run_data, pick_split, split_logits
from convtrain.runs.run_dir import RunDir
from convtrain.system.runtime import pick_device

GRID_IMAGES = 32  # sample predictions shown
WORST_IMAGES = 24  # misclassified images shown, highest loss first


def make_run_pictures(
    run: str | Path | RunDir, data_dir: str | None = None, device: str = "auto", scored: Scored | None = None
) -> Path:
    """Make every picture of a run in <run>/plots/ and write <run>/report.html; returns the report's path.
    `scored`: the tested weights' logits on a split, with its data, as training's final test pass kept
    them; without it the report loads the dataset and scores the test (else validation) split itself."""
    run = RunDir.of(run)
    page = Page(run, run.card, run.read_config(), run.results)
    plots = run.plots_dir
    _curves(page, plots)
    try:
        model, _ = run.load_model(None, pick_device(device))  # the weights the final test measured
    except ConvtrainError as error:
        page.notes.append(f"no model pictures: {error}")
        return write_report(page)
    _filters(page, model, plots)
    _evaluation(page, model, plots, data_dir, scored)
    return write_report(page)


# ----- the pictures -----


def _curves(page: Page, plots: Path) -> None:

    history = page.run.history
    if not history:
        page.notes.append("metrics.csv has no epochs yet, so there are no training curves")
        return
    title = f"{page.card['architecture']} on {page.card.get('dataset', '?')}"
    page.pictures["curves"] = plot_curves(history, plots / "curves.png", title)
    if all(row["val_loss"] != row["val_loss"] for row in history):
        page.notes.append("the run had no validation split: the curves show training numbers only")


def _filters(page: Page, model: torch.nn.Module, plots: Path) -> None:

    if conv_layers(model):
        page.pictures["filters"] = filters_figure(model, plots / "filters.png")


def _evaluation(
    page: Page, model: torch.nn.Module, plots: Path, data_dir: str | None, scored: Scored | None
) -> None:
    """Evaluate on the test split (else the validation split) and draw what the numbers mean."""
    if scored is None:
        scored = _score(page, model, plots, data_dir)
    else:
        _batch(page, scored.data, plots)
    if scored is None:
        return

    logits, labels, classes = scored.logits, scored.labels, list(page.card["classes"])
    result = {
        "run": str(page.run.path),
        "split": scored.split_name,
        "checkpoint": f"{page.run.tested_weights()}.pt",
        "tta": False,
    }
    result.update(metrics_from_logits(logits, labels, classes, top_losses=WORST_IMAGES))
    page.run.write_evaluation(result)
    page.evaluation = result
    _evaluation_pictures(page, plots, scored.split.images, logits, labels, classes)
    _explanations(page, model, plots, scored.split, logits, labels)


def _score(page: Page, model: torch.nn.Module, plots: Path, data_dir: str | None) -> Scored | None:
    """The run's dataset loaded (its batch picture drawn) and the model's logits on the test split,
    else the validation split; None, with a note on the page, when neither can be read."""

    try:
        data = load_run_data(page.run, data_dir)
    except ConvtrainError as error:
        page.notes.append(f"no evaluation pictures: the dataset could not be read ({error})")
        return None
    _batch(page, data, plots)
    split_name, split = None, None
    for name in ("test", "val") if page.run.config.test else ("val",):  # --no-test: leave test unread
        try:
            split_name, split = name, pick_split(page.run, data, name)
            break
        except ConvtrainError as error:
            page.notes.append(f"no {name} evaluation: {error}")
    if split is None:
        return None
    logits, labels = split_logits(model, data, split)
    return Scored(page.run, split_name, f"{page.run.tested_weights()}.pt", data, split, logits, labels)


def _batch(page: Page, data, plots: Path) -> None:
    """The first training batch exactly as the loader serves it, augmentation included, turned back into pixels."""

    augment = page.config.get("augment") or "none"
    count = min(GRID_IMAGES, len(data.train))
    loader = make_loader(
        data.train,
        data,
        count,
        "cpu",
        train=True,
        augment=parse_augment(augment),
        seed=page.config.get("seed", 0),
        workers=0,
    )
    x, y = next(iter(loader))  # (B, C, H, W) normalised; y (B,) or (B, K) soft targets with mixing
    pixels = denormalize(x, data.mean, data.std)  # (B, C, H, W) uint8
    labels = y if y.dim() == 1 else y.argmax(1)
    captions = [data.classes[int(k)] for k in labels]
    page.pictures["batch"] = plot_image_grid(
        pixels, captions, plots / "batch.png", title=f"a training batch, augment {augment}"
    )


def _evaluation_pictures(page: Page, plots: Path, images, logits, labels, classes: list[str]) -> None:

    result, split = page.evaluation, page.evaluation["split"]
    probs = logits.softmax(1)  # (N, K)
    page.pictures["confusion"] = plot_confusion(
        result["confusion"],
        classes,
        plots / "confusion.png",
        f"confusion matrix, {split} split ({len(labels)} images)",
    )
    page.pictures["per_class"] = plot_per_class(
        result["per_class"], plots / "per_class.png", result["top1"], f"accuracy per class, {split} split"
    )
    # A seeded sample: splits are often sorted by class, and the first images would all be one class.
    sample = (
        torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:GRID_IMAGES].sort().values
    )
    page.pictures["predictions"] = plot_predictions(
        images[sample],
        labels[sample],
        probs[sample],
        classes,
        plots / "predictions.png",
        f"sample predictions, {split} split",
    )
    wrong = [item["index"] for item in result["top_losses"] if item["true"] != item["predicted"]]
    if wrong:
        idx = torch.tensor(wrong)
        page.pictures["mistakes"] = plot_predictions(
            images[idx],
            labels[idx],
            probs[idx],
            classes,
            plots / "mistakes.png",
            "worst mistakes: highest loss first",
        )
    else:
        page.notes.append(f"no misclassified images in the {split} split")


def _explanations(page: Page, model: torch.nn.Module, plots: Path, split, logits, labels) -> None:
    """'What the network looks at': Grad-CAM of the predicted class on a fixed sample, right and wrong.
    Made only when Captum is installed; the page says so when it is not."""

    try:
        check_method("gradcam")

        indices = report_sample(labels, logits.argmax(1), page.evaluation["top_losses"])
        page.pictures["explain"] = write_gallery(
            model,
            page.card,
            split_pixels(split, indices, page.card),
            logits[indices].softmax(1),
            labels[indices],
            plots / "explain.png",
            "gradcam",
            title=f"Grad-CAM of the predicted class, {page.evaluation['split']} split",
        )
    except ExplainError as error:  # no Captum, or a network without a conv layer
        page.notes.append(f"no 'what the network looks at' section: {error}")

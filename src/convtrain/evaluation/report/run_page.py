"""report.html: one self-contained page (pictures embedded) that shows a whole run, written with
base/html_page.py like every page.

evaluation/report/run_pictures.py gathers what the page shows into a Page; write_report() turns it into HTML. The page has
no scripts and loads nothing else, so it opens the same from a mail, an archive or a CI artifact.

    python -c "from convtrain.evaluation.report.run_pictures import make_run_pictures; make_run_pictures('runs/mnist-lenet5')"
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convtrain.base.html_page import cards as summary_cards
from convtrain.base.html_page import escape as _e
from convtrain.base.html_page import header, image, section, write_page
from convtrain.runs.run_dir import RunDir
from convtrain.system.flop_counts import format_arithmetic
from convtrain.system.timings import PHASES


@dataclass
class Page:
    """What report.html shows, gathered before any HTML is written."""

    run: RunDir
    card: dict[str, Any]
    config: dict[str, Any]
    results: dict[str, Any]
    pictures: dict[str, Path] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def write_report(page: Page) -> Path:
    """Write report.html from a Page (atomically); returns its path."""
    card = page.card
    name = page.run.path.resolve().name
    shape = f"{card['in_channels']}x{card['image_size']}x{card['image_size']}"
    parts = [
        header(
            f"convtrain run {name}",
            f"model <b>{_e(card['architecture'])}</b> · dataset <b>{_e(card.get('dataset', '?'))}</b> "
            f"({_e(card.get('dataset_source', ''))}) · {len(card['classes'])} classes · input {shape} · "
            f"report written {time.strftime('%Y-%m-%d %H:%M')}",
        ),
        _summary(page),
        _picture(page, "curves", "Training curves", "loss and accuracy per epoch, train and validation"),
        _per_class(page),
        _picture(page, "confusion", "Confusion matrix", "rows: true class, columns: predicted class")
        + _confused(page),
        _picture(
            page,
            "predictions",
            "Sample predictions",
            "green: right, red: wrong; predicted (probability) over true",
        ),
        _picture(page, "mistakes", "Worst mistakes", "misclassified images with the highest loss"),
        _picture(
            page,
            "explain",
            "What the network looks at",
            "each image beside its Grad-CAM heat map for the predicted class (last conv layer): red marks "
            "the regions that raised that class's score most; right predictions first, then mistakes",
        ),
        _picture(page, "batch", "A training batch", "as the model sees it, with the run's augmentation"),
        _picture(page, "filters", "First-layer filters", "what the first convolution learned to look for"),
        _timings(page),
        _config(page),
    ]
    if page.notes:
        parts.append(
            "<h2>Notes</h2><ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in page.notes) + "</ul>"
        )
    return write_page(page.run.report_path, f"convtrain run {name}", parts)


def _summary(page: Page) -> str:
    results, evaluation = page.results, page.evaluation
    cards = []
    if evaluation:
        split = evaluation["split"]
        cards.append((f"{split} top-1 ({evaluation['checkpoint']})", _pct(evaluation["top1"])))
        if evaluation["top5_k"] < len(evaluation["per_class"]):  # top-k over all classes is always 100%
            cards.append((f"{split} top-{evaluation['top5_k']}", _pct(evaluation["top5"])))
        cards += [
            (f"{split} loss", f"{evaluation['loss']:.4f}"),
            (f"{split} macro F1", f"{evaluation['macro_f1']:.4f}"),
        ]
    elif "test_acc" in results:
        cards.append(("test top-1", _pct(results["test_acc"])))
    if _finite(results.get("final_val_acc")):
        cards.append(("last val accuracy", _pct(results["final_val_acc"])))
    for split in ("val", "test"):  # --eval-before: the untrained model
        if _finite(results.get(f"before_{split}_accuracy")):
            cards.append((f"{split} accuracy before training", _pct(results[f"before_{split}_accuracy"])))
    if "epochs" in results:
        cards.append(("epochs", str(results["epochs"])))
    if "training_seconds" in results:
        cards.append(("training time", f"{results['training_seconds']:.1f} s"))
    if results.get("stop_reason"):
        cards.append(("stopped", str(results["stop_reason"])))
    if not cards:
        return "<h2>Final metrics</h2><p>No results yet: results.json is missing.</p>"
    return section("Final metrics", summary_cards((label, value, "") for label, value in cards))


def _timings(page: Page) -> str:
    """Where the run's time went (results.json's timings), as a table of seconds and shares."""
    timings = page.results.get("timings")
    if not isinstance(timings, dict) or not timings.get("total"):
        return ""
    total = float(timings["total"])
    rows = "".join(
        f"<tr><td>{_e(phase.replace('_', ' '))}</td><td class='n'>{float(timings[phase]):.2f}</td>"
        f"<td class='n'>{100 * float(timings[phase]) / total:.0f}%</td></tr>"
        for phase in PHASES
        if isinstance(timings.get(phase), int | float)
    )
    return (
        "<h2>Where the time went</h2><p class='sub'>seconds per phase of the training process "
        "(pictures: until this page was written)</p>"
        f"<table><tr><th>phase</th><th class='n'>s</th><th class='n'>share</th></tr>{rows}"
        f"<tr><td><b>total</b></td><td class='n'><b>{total:.2f}</b></td><td></td></tr></table>"
        + (
            f"<p>Training arithmetic: {timings['train_flops_per_image'] / 1e6:.1f} MFLOP per image "
            f"(forward and backward), {_e(format_arithmetic(timings))} in {_e(page.config.get('precision', 'fp32'))}.</p>"
            if "achieved_flops" in timings
            else ""
        )
    )


def _picture(page: Page, key: str, title: str, caption: str) -> str:
    if key not in page.pictures:
        return ""
    return f"<h2>{_e(title)}</h2><p class='sub'>{_e(caption)}</p>{_img(page, key, title)}"


def _img(page: Page, key: str, alt: str) -> str:
    """An <img> carrying its PNG inline, so the page needs no other file."""
    path = page.pictures.get(key)
    if path is None:
        return ""
    return image(path, alt, key)


def _per_class(page: Page) -> str:
    if not page.evaluation:
        return ""
    rows = "".join(
        f"<tr><td>{_e(r['class'])}</td><td class='n'>{r['precision']:.3f}</td><td class='n'>{r['recall']:.3f}</td>"
        f"<td class='n'>{r['f1']:.3f}</td><td class='n'>{r['support']}</td></tr>"
        for r in page.evaluation["per_class"]
    )
    table = (
        "<table><tr><th>class</th><th class='n'>precision</th><th class='n'>recall (accuracy)</th>"
        f"<th class='n'>F1</th><th class='n'>images</th></tr>{rows}</table>"
    )
    bars = _img(page, "per_class", "accuracy per class")
    split = page.evaluation["split"]
    return f"<h2>Per-class metrics ({_e(split)} split)</h2><div class='columns'><div>{table}</div><div>{bars}</div></div>"


def _confused(page: Page) -> str:
    if not page.evaluation or not page.evaluation["most_confused"]:
        return ""
    items = "".join(
        f"<li>{_e(p['true'])} → {_e(p['predicted'])}: {p['count']} ({_pct(p['share'])} of {_e(p['true'])})</li>"
        for p in page.evaluation["most_confused"]
    )
    return f"<p>Most confused pairs (true → predicted):</p><ul>{items}</ul>"


def _config(page: Page) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(json.dumps(v))}</td></tr>" for k, v in page.config.items())
    return f"<h2>Configuration</h2><p class='sub'>the resolved options of the run (config.yaml)</p><table>{rows}</table>"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)

"""At home in Jupyter: how a run shows itself in a notebook.

A RunDir displays as a small card: its summary figures, the loss and accuracy curves (drawn inline as
a PNG), and a link to report.html.

    run = convtrain.train(epochs=1)
    run            # the last expression of a cell shows the card
"""

from __future__ import annotations

import html
from typing import Any

from convtrain.base.errors import ConvtrainError
from convtrain.base.figures import new_figure, png_bytes
from convtrain.base.html_page import data_uri


def run_html(run: Any) -> str:
    """The card a RunDir shows in a notebook."""
    e = html.escape
    rows: list[tuple[str, str]] = []
    try:
        card = run.card
        rows.append(("model", f"{card['architecture']} on {card.get('dataset', '?')}"))
    except ConvtrainError as error:
        return f"<div><b>convtrain run</b> <code>{e(str(run.path))}</code>: {e(str(error))}</div>"
    results, history = run.results, run.history
    for key, label in (("test_acc", "test accuracy"), ("final_val_acc", "validation accuracy")):
        if isinstance(results.get(key), float) and results[key] == results[key]:
            rows.append((label, f"{100 * results[key]:.2f}%"))
    if "test_loss" in results:
        rows.append(("test loss", f"{results['test_loss']:.4f}"))
    rows.append(
        ("epochs", f"{len(history)}" + (f" ({results['stop_reason']})" if "stop_reason" in results else ""))
    )
    if "training_seconds" in results:
        rows.append(("training time", f"{results['training_seconds']:.1f} s"))
    table = "".join(f"<tr><td>{e(k)}</td><td><b>{e(v)}</b></td></tr>" for k, v in rows)
    curves = _curves_png(history) if history else ""
    report = run.report_path
    link = (
        f"<a href='{e(str(report))}' target='_blank'>report.html</a>"
        if report.is_file()
        else "no report.html yet (convtrain plot RUN makes it)"
    )
    return (
        f"<div><b>convtrain run</b> <code>{e(str(run.path))}</code> · {link}"
        f"<table>{table}</table>{curves}</div>"
    )


def _curves_png(history: list[dict[str, float]]) -> str:
    """Loss and accuracy per epoch as an inline <img> (base64 PNG), small enough for a notebook cell."""
    fig = new_figure(6, 2.2)
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    for key, ax in (("loss", loss_ax), ("acc", acc_ax)):
        ax.plot(epochs, [row[f"train_{key}"] for row in history], label="train")
        values = [row[f"val_{key}"] for row in history]
        if any(v == v for v in values):
            ax.plot(epochs, values, label="val")
        ax.set_xlabel("epoch")
        ax.set_title(key, fontsize=9)
    loss_ax.legend(fontsize=7)
    return f"<img alt='curves' src='{data_uri(png_bytes(fig, dpi=70))}'>"

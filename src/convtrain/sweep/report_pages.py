"""The report pages of a seeds folder and of a sweep folder: self-contained HTML, pictures embedded.

Seeds: the summary table, every seed's validation curves on one plot, and a strip plot of the final
test accuracies. Sweep: Optuna's own matplotlib pictures (optimisation history, parameter
importances, parallel coordinates, slices), the best trial's curves and the table of trials.
"""

from __future__ import annotations

import html
import math
import time
import warnings
from pathlib import Path
from typing import Any

from convtrain.base.figures import new_figure, save_figure
from convtrain.base.html_page import image, section, write_page
from convtrain.evaluation.report.plots import plot_curves
from convtrain.runs.run_dir import RunDir
from convtrain.sweep.folders import SeedsDir, SweepDir


# ----- seeds -----
def write_seeds_report(folder: SeedsDir, summary: dict[str, Any]) -> Path:
    runs = [RunDir(path) for path in summary["runs"]]
    parts = [
        f"<h1>{len(runs)} seeds: {html.escape(folder.path.resolve().name)}</h1>",
        f"<p class='sub'>written {time.strftime('%Y-%m-%d %H:%M')} · mean, sample std and Student-t 95% "
        "confidence interval of the mean over seeds</p>",
        _stats_table(summary["metrics"]),
    ]
    curves = _seed_curves(runs, summary["seeds"], folder.plots_dir / "seed_curves.png")
    if curves:
        parts.append(
            _figure(curves, "Every seed's curves", "validation accuracy and training loss per epoch")
        )
    if "test_acc" in summary["metrics"]:
        strip = _strip(summary["metrics"]["test_acc"], summary["seeds"], folder.plots_dir / "test_acc.png")
        parts.append(_figure(strip, "Final test accuracy", "one dot per seed; the line is the mean"))
    return write_page(folder.report_path, "seeds", parts)


def _stats_table(metrics: dict[str, dict[str, Any]]) -> str:
    rows = [
        "<tr><th>metric</th><th class=n>mean</th><th class=n>std</th><th class=n>95% CI</th>"
        "<th class=n>min</th><th class=n>max</th></tr>"
    ]
    for name, s in metrics.items():
        ci = f"{_num(s['ci95'][0])} – {_num(s['ci95'][1])}" if s["ci95"] else "–"
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td class=n>{_num(s['mean'])}</td>"
            f"<td class=n>{_num(s['std'])}</td><td class=n>{ci}</td>"
            f"<td class=n>{_num(s['min'])}</td><td class=n>{_num(s['max'])}</td></tr>"
        )
    return "<h2>Summary</h2><table>" + "".join(rows) + "</table>"


def _seed_curves(runs: list[RunDir], seeds: list[int], path: Path) -> Path | None:
    histories = [run.history for run in runs]
    if not any(histories):
        return None
    fig = new_figure(10, 3.8)
    acc_ax, loss_ax = fig.subplots(1, 2)
    for seed, history in zip(seeds, histories, strict=True):
        epochs = [row["epoch"] for row in history]
        acc_ax.plot(epochs, [100 * row["val_acc"] for row in history], marker="o", label=f"seed {seed}")
        loss_ax.plot(epochs, [row["train_loss"] for row in history], marker="o", label=f"seed {seed}")
    for ax, label in ((acc_ax, "validation accuracy (%)"), (loss_ax, "training loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return save_figure(fig, path)


def _strip(stats: dict[str, Any], seeds: list[int], path: Path) -> Path:
    fig = new_figure(6, 2.2)
    ax = fig.subplots()
    values = [100 * v for v in stats["values"]]
    ax.scatter(values, [0] * len(values), s=40, alpha=0.7, zorder=3)
    for seed, value in zip(seeds, values, strict=True):
        ax.annotate(str(seed), (value, 0), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    ax.axvline(100 * stats["mean"], color="k", lw=1)
    if stats["ci95"]:
        ax.axvspan(100 * stats["ci95"][0], 100 * stats["ci95"][1], color="k", alpha=0.08, label="95% CI")
        ax.legend(fontsize="small")
    ax.set_yticks([])
    ax.set_xlabel("test accuracy (%)")
    return save_figure(fig, path)


# ----- sweeps -----
def write_sweep_report(folder: SweepDir, study, rows: list[dict[str, Any]], objective: str) -> Path:
    """Optuna's pictures, the best trial's curves and the table of trials (rows as in trials.csv)."""
    parts = [
        f"<h1>sweep {html.escape(study.study_name)}</h1>",
        f"<p class='sub'>written {time.strftime('%Y-%m-%d %H:%M')} · objective {html.escape(objective)} "
        f"({study.direction.name.lower()}) · {len(rows)} trials</p>",
    ]
    best = _best_row(rows, study.direction.name == "MAXIMIZE")
    if best is not None:
        params = ", ".join(f"{k} = {html.escape(str(v))}" for k, v in best.items() if k.startswith("param_"))
        parts.append(
            f"<h2>Best trial</h2><p class=big>{_num(best['value'])}</p>"
            f"<p>trial {best['number']}: {params.replace('param_', '')} · run folder "
            f"{html.escape(str(best['run']))} · re-train with <code>convtrain train --config "
            f"{html.escape(str(folder.best_path))}</code></p>"
        )
        history = RunDir(best["run"]).history if best.get("run") else []
        if history:
            curves = plot_curves(history, folder.plots_dir / "best_curves.png", f"trial {best['number']}")
            parts.append(_figure(curves, "The best trial's curves", "loss and accuracy per epoch"))
    notes = []
    for name, title in (
        ("plot_optimization_history", "Optimisation history"),
        ("plot_param_importances", "Parameter importances"),
        ("plot_parallel_coordinate", "Parallel coordinates"),
        ("plot_slice", "Slices"),
        ("plot_intermediate_values", "Per-epoch values (pruning)"),
    ):
        picture, note = _optuna_picture(study, name, folder.plots_dir / f"{name[5:]}.png")
        if picture:
            parts.append(_figure(picture, title, ""))
        elif note:
            notes.append(f"{title}: {note}")
    if notes:
        parts.append(
            "<h2>Pictures left out</h2><ul class=notes>"
            + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
            + "</ul>"
        )
    parts.append(_trials_table(rows))
    return write_page(folder.report_path, f"sweep {study.study_name}", parts)


def _best_row(rows: list[dict[str, Any]], maximize: bool) -> dict[str, Any] | None:
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["value"] != ""]
    if not complete:
        return None
    pick = max if maximize else min
    return pick(complete, key=lambda r: float(r["value"]))


def _optuna_picture(study, name: str, path: Path) -> tuple[Path | None, str]:
    """One of optuna.visualization.matplotlib's plots saved as PNG, or (None, why not)."""
    import optuna.visualization.matplotlib as optuna_plots

    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(finished) < 2:
        return None, "needs at least two finished trials"
    import matplotlib
    import matplotlib.pyplot as plt

    # optuna sets pyplot's global style (ggplot); rc_context puts the caller's style back afterwards
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")  # ExperimentalWarning on every call
        try:
            axes = getattr(optuna_plots, name)(study)
        except Exception as error:  # optuna refuses some studies (one parameter, constant values)
            return None, " ".join(str(error).split())[:200] or type(error).__name__
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        try:
            return save_figure(figure, path), ""
        finally:
            plt.close(figure)  # pyplot keeps every figure until it is closed


def _trials_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = [c for c in rows[0] if c not in ("run", "worker")]
    head = "".join(f"<th>{html.escape(c.replace('param_', ''))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<h2>Trials</h2><table><tr>{head}</tr>{body}</table>"


# ----- pieces -----
def _figure(path: Path, title: str, caption: str) -> str:
    return section(title, image(path, title), caption)


def _num(value: Any) -> str:
    if value is None or value == "" or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.4g}"


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

"""The folders that hold many runs, and the one place their file names are written.

runs/mnist-lenet5-seeds/          a seeds folder (`convtrain train --seeds 5`)
  seed-0/ ... seed-4/             ordinary run folders (RunDir)
  summary.json, summary.csv       mean, std, 95% CI, min, max of every final metric
  plots/, report.html             per-seed curves, the spread of test accuracy

sweeps/space/                     a sweep folder (`convtrain sweep space.yaml`)
  sweep.yaml                      the space file as read, with the storage and study name (for --resume)
  study.db                        the Optuna study (SQLite), unless --storage names another
  trials/trial-0000/ ...          ordinary run folders, one per trial
  trials.csv, best.yaml           every trial; the best trial's options (`convtrain train --config best.yaml`)
  plots/, report.html             Optuna's pictures and the best trial's curves
"""

from __future__ import annotations

from pathlib import Path

from convtrain.runs.run_dir import Folder, RunDir, RunFile, numbered


class SeedsDir(Folder):
    """A folder of one config trained with several seeds."""

    summary_path = RunFile("summary.json")
    summary_csv_path = RunFile("summary.csv")
    plots_dir = RunFile("plots")
    report_path = RunFile("report.html")

    @classmethod
    def new(cls, out: str | None, dataset: str, model: str) -> SeedsDir:
        """`out` as given, or runs/<dataset>-<model>-seeds, numbered when taken."""
        if out:
            return cls(out)
        return cls(numbered(Path("runs") / f"{dataset.split(':')[0]}-{model.replace(':', '-')}-seeds"))

    def seed_run(self, seed: int) -> RunDir:
        return RunDir(self.path / f"seed-{seed}")


class SweepDir(Folder):
    """A folder of one Optuna study's trials and its summary."""

    spec_path = RunFile("sweep.yaml")
    study_path = RunFile("study.db")
    trials_csv_path = RunFile("trials.csv")
    best_path = RunFile("best.yaml")
    plots_dir = RunFile("plots")
    report_path = RunFile("report.html")

    def trial_run(self, number: int) -> RunDir:
        return RunDir(self.path / "trials" / f"trial-{number:04d}")

    def default_storage(self) -> str:
        return f"sqlite:///{self.study_path.resolve()}"

"""`convtrain sweep`: a hyper-parameter search on Optuna, one run folder per trial.

    convtrain sweep space.yaml --trials 20 --jobs 2
    convtrain sweep space.yaml --storage journal:/shared/sweep.log --study lenet --out /shared/sweeps/lenet
    convtrain sweep --resume sweeps/space

The sweep file's format is in src/convtrain/sweep/space.py. Seeds are a `train` flag (--seeds N).
"""

from __future__ import annotations

import argparse

from convtrain.cli.register import Add
from convtrain.sweep.study import run_sweep


def register(command: Add) -> None:
    sweep = command("sweep", sweep_command, "search hyper-parameters with Optuna; one run folder per trial")
    sweep.add_argument("space", nargs="?", help="sweep file: base config, search space, sampler, pruner")
    sweep.add_argument(
        "--trials", type=int, help="trials the study should hold in all (default: the file's, else 20)"
    )
    sweep.add_argument(
        "--jobs", type=int, default=1, help="worker processes on this machine (CPU threads split)"
    )
    sweep.add_argument(
        "--storage",
        help="Optuna storage shared by workers: a database URL (postgresql+psycopg2://..., sqlite:///x.db) or "
        "journal:PATH (a file on a shared file system); default: study.db in the sweep folder",
    )
    sweep.add_argument("--study", help="study name (default: the sweep file's name)")
    sweep.add_argument("--out", help="sweep folder (default: sweeps/<file name>, numbered if taken)")
    sweep.add_argument(
        "--resume", metavar="DIR", help="continue the sweep in DIR: retry the interrupted trial"
    )


def sweep_command(args: argparse.Namespace) -> int:

    folder = run_sweep(
        args.space,
        trials=args.trials,
        jobs=args.jobs,
        storage=args.storage,
        study=args.study,
        out=args.out,
        resume=args.resume,
    )
    print(f"trials: {folder.trials_csv_path}  best: {folder.best_path}  report: {folder.report_path}")
    return 0

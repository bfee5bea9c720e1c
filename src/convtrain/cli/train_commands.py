"""`convtrain train` and `convtrain lr-find`: their flags are made from the fields of TrainConfig.

    convtrain train --recipe lenet5-mnist --epochs 5
    convtrain lr-find --model lenet5 --optimizer adam

Precedence, lowest first: defaults < the model's own training options < recipe < --config file <
flags; --resume starts from the run's own config.yaml.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields

from convtrain.base.errors import ConfigError
from convtrain.cli.register import Add
from convtrain.config.recipes import load_recipe
from convtrain.config.train_config import GENERIC_TRAINING, TrainConfig, field_docs, read_yaml
from convtrain.runs.run_dir import RunDir
from convtrain.sweep.seeds import train_seeds
from convtrain.system.distributed import launch
from convtrain.system.timings import format_timings, seconds_since_process_start
from convtrain.training.loop import fit
from convtrain.training.lr_find import lr_find


def register(command: Add) -> None:
    train = command("train", train_command, "train a model; writes a run folder")
    add_config_flags(train)
    train.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train seeds 0..N-1 into one folder (seed-0, ...) with summary.json, summary.csv and report.html",
    )
    train.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="with --seeds: worker processes (CPU threads split, or a GPU each)",
    )
    lr = command("lr-find", lr_find_command, "learning-rate range test: plot loss against lr, suggest one")
    add_config_flags(lr)
    lr.add_argument("--start", type=float, default=1e-5, help="smallest lr tried")
    lr.add_argument("--end", type=float, default=10.0, help="largest lr tried")
    lr.add_argument("--steps", type=int, default=100, help="number of steps (one lr each)")
    lr.add_argument("--plot", default=None, help="where to write the plot (default lr-find.png)")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; defaults suppressed so only typed flags override a config file."""
    docs = field_docs()
    parser.add_argument("--config", help="YAML file of options (flags given here override it)")
    for field in fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = str(field.type)
        help_text = docs.get(field.name, "")
        if field.name not in GENERIC_TRAINING:  # those say "unset, the model's own" themselves
            help_text += f" (default: {field.default})"
        if kind in ("bool", "bool | str"):  # bool | str: also 'auto', from a recipe or --config file
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
            continue
        convert = {"int": int, "int | None": int, "float": float, "float | None": float}.get(kind, str)
        # a field with metadata flag_alone also works as a bare flag: --pretrained means --pretrained library
        alone = (
            {"nargs": "?", "const": field.metadata["flag_alone"]} if "flag_alone" in field.metadata else {}
        )
        parser.add_argument(
            flag, type=convert, default=argparse.SUPPRESS, metavar=field.name.upper(), help=help_text, **alone
        )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """defaults < recipe < --config file < flags; --resume starts from the run's own config.yaml."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values: dict = {}
    if given.get("resume"):
        saved = RunDir(given["resume"]).config_path
        if not saved.is_file():
            raise ConfigError(f"cannot resume {given['resume']}: no config.yaml there; pass a run folder")
        values.update(read_yaml(saved))
        values["out"] = given["resume"]
    elif given.get("recipe"):
        values.update(load_recipe(given["recipe"]))
        values["recipe"] = given["recipe"]
    if args.config:
        values.update(read_yaml(args.config))
    values.update(given)
    return TrainConfig.from_dict(values, source=args.config or "options")


def train_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.seeds > 1 or args.jobs > 1:
        if config.nproc > 1:
            raise ConfigError(
                "--seeds runs one process per seed; drop --nproc (or train each seed with --seed N)"
            )

        train_seeds(config, args.seeds, args.jobs)
        return 0
    if config.nproc > 1 and "LOCAL_RANK" not in os.environ:
        return launch(config.nproc, _argv_without_nproc(sys.argv[1:]))
    run = fit(config, startup_seconds=seconds_since_process_start())  # out of GPU memory: a ConvtrainError
    if "timings" in run.results:
        print(format_timings(run.results["timings"]), flush=True)
    return 130 if run.results.get("interrupted") else 0


def _argv_without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            out.append(item)
    return out


def lr_find_command(args: argparse.Namespace) -> int:

    result = lr_find(config_from_args(args), start=args.start, end=args.end, steps=args.steps, out=args.plot)
    print(f"suggested lr: {result['suggested_lr']:.3g}  (plot: {result['plot']})")
    return 0

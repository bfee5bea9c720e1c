"""`convtrain data check`: audit a dataset (files, duplicates and leaks, label issues, balance).

    convtrain data check mnist --split test --labels --top 100 --out checks/mnist
    convtrain data check folder:photos --fix-split --out checks/photos

The `data` subcommands live in data_commands.py, which calls add_data_check() to add this one.
"""

from __future__ import annotations

import argparse

from convtrain.datacheck import check
from convtrain.datacheck.crossval import FAMILY_RECIPES, SCORING_MODELS
from convtrain.datacheck.duplicates import NEAR_THRESHOLD
from convtrain.datacheck.edited_copies import EDITED_THRESHOLD
from convtrain.datacheck.fixsplit import check_can_fix, write_fixed_split
from convtrain.datacheck.labels import DEFAULT_TOP, METHODS, RANKINGS


def add_data_check(data: argparse._SubParsersAction) -> None:
    help_text = "find broken files, duplicates and train/test leaks, label issues and small classes"
    sub = data.add_parser("check", help=help_text, description=help_text)
    sub.set_defaults(handler=data_check_command)
    sub.add_argument("name", help="mnist, fashion-mnist, cifar10, cifar100, folder:PATH or npz:PATH")
    sub.add_argument("--split", default="all", help="train, val, test or all (default)")
    sub.add_argument(
        "--labels",
        action="store_true",
        help="also find label issues (trains --folds models, or one with --split test: minutes on a CPU "
        "for gray images, over an hour each for photos on a 2-core CPU; --recipe cifar10-cpu takes 10)",
    )
    sub.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds when train is checked (at least 2)"
    )
    sub.add_argument(
        "--top",
        type=int,
        default=DEFAULT_TOP,
        help=f"rank the N images per split whose labels the models trust least, for review: check.html, "
        f"ranking.csv (default {DEFAULT_TOP})",
    )
    sub.add_argument(
        "--scoring-models",
        type=int,
        default=SCORING_MODELS,
        help=f"without train in --split: models trained on all of train that score val/test (default {SCORING_MODELS})",
    )
    kinds = ", ".join(f"{recipe} for {family}" for family, recipe in FAMILY_RECIPES.items())
    which = sub.add_mutually_exclusive_group()
    which.add_argument(
        "--model", default=None, help="the fold models' network (with the default recipe's settings)"
    )
    which.add_argument(
        "--recipe", default=None, help=f"the fold models' recipe (default: the dataset's kind's, {kinds})"
    )
    sub.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="the fold models' epochs (default: the recipe's, more for a small training set)",
    )
    sub.add_argument(
        "--out",
        default=None,
        help="folder for check.json, issues.csv, ranking.csv, check.html (default checks/NAME)",
    )
    sub.add_argument(
        "--fix-split",
        action="store_true",
        help="folder datasets: write OUT/split/, a split of links to your files with leaking train images "
        "moved to the split they leak into (your files are never changed)",
    )
    sub.add_argument(
        "--near-threshold", type=float, default=NEAR_THRESHOLD, help="near-duplicate score (0-1)"
    )
    sub.add_argument(
        "--edited-threshold",
        type=float,
        default=EDITED_THRESHOLD,
        help=f"edited-copy score (0-1; cropped, shifted, rescaled, recoloured or JPEG'd copies; default {EDITED_THRESHOLD})",
    )
    sub.add_argument(
        "--method", choices=METHODS, default="confident_joint", help="which images are label issues"
    )
    sub.add_argument(
        "--rank-by", choices=RANKINGS, default="self_confidence", help="order of the label issues"
    )
    sub.add_argument("--min-share", type=float, default=None, help="flag classes under this share of a split")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--device", default="auto")
    sub.add_argument(
        "--data-dir", default=None, help="dataset root (default $CONVTRAIN_DATA or ~/.cache/convtrain)"
    )


def data_check_command(args: argparse.Namespace) -> int:

    if args.fix_split:
        check_can_fix(args.name)  # before the long part
    out = args.out or f"checks/{args.name.rpartition(':')[2].rstrip('/').rpartition('/')[2] or args.name}"
    result = check(
        args.name,
        split=args.split,
        labels=args.labels,
        folds=args.folds,
        model=args.model,
        recipe=args.recipe,
        out=out,
        data_dir=args.data_dir,
        near_threshold=args.near_threshold,
        edited_threshold=args.edited_threshold,
        method=args.method,
        rank_by=args.rank_by,
        min_share=args.min_share,
        seed=args.seed,
        device=args.device,
        top=args.top,
        scoring_models=args.scoring_models,
        train_options=None if args.epochs is None else {"epochs": args.epochs},
    )
    if args.fix_split:
        write_fixed_split(result, out)
    return 0

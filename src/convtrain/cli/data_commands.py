"""Looking at data and models before training: `data info`, `data show`, `data cache`, `models`, `recipes`.

convtrain data info mnist --json
convtrain data show cifar10 --augment flip,crop:4
convtrain data cache --clear
convtrain models --summary resnet18
"""

from __future__ import annotations

import argparse
import json
import warnings

from convtrain.base.figures import picture_path
from convtrain.cli.check_commands import add_data_check
from convtrain.cli.register import Add
from convtrain.config.recipes import format_recipes
from convtrain.data.dataset_registry import load_dataset, resolve_data_dir
from convtrain.data.disk_cache import cache_root, clear_cache, describe_cache
from convtrain.data.info import dataset_info, format_info
from convtrain.data.show import save_batch_grid
from convtrain.models import build_model
from convtrain.models.external import available
from convtrain.models.summary import format_model_table, model_table, summarize


def register(command: Add) -> None:
    data = command("data", None, "inspect datasets").add_subparsers(
        dest="data_command", metavar="ACTION", required=True
    )
    for name, handler, help_text in (
        ("info", data_info_command, "images per split and class, shape, mean/std"),
        ("show", data_show_command, "a labelled grid of a training batch"),
    ):
        sub = data.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument("name", help="mnist, fashion-mnist, cifar10, cifar100, folder:PATH or npz:PATH")
        sub.add_argument(
            "--data-dir", default=None, help="dataset root (default $CONVTRAIN_DATA or ~/.cache/convtrain)"
        )
        sub.add_argument("--no-download", action="store_true", help="never download; use local files only")
        sub.add_argument(
            "--no-cache",
            action="store_true",
            help="decode a folder or csv dataset afresh, skipping the cache",
        )
    info = data.choices["info"]
    info.add_argument("--json", action="store_true", help="print JSON")
    show = data.choices["show"]
    show.add_argument("--augment", default="none", help="augmentations to show, e.g. flip,crop:4")
    show.add_argument("--out", default=None, help="PNG file to write")
    show.add_argument("--count", type=int, default=32, help="images in the grid")
    show.add_argument("--seed", type=int, default=0)
    cache_help = "where the decoded-image cache of folder and csv datasets is, and what it holds"
    cache = data.add_parser("cache", help=cache_help, description=cache_help)
    cache.set_defaults(handler=data_cache_command)
    cache.add_argument("--clear", action="store_true", help="remove every cached dataset")
    cache.add_argument(
        "--data-dir", default=None, help="dataset root (default $CONVTRAIN_DATA or ~/.cache/convtrain)"
    )

    add_data_check(data)

    models = command("models", models_command, "list the models with parameters and FLOPs per image")
    models.add_argument(
        "--summary", metavar="NAME", help="print one model's layers, output shapes and parameters"
    )
    models.add_argument("--channels", type=int, default=3)
    models.add_argument("--image-size", type=int, default=32)
    models.add_argument("--classes", type=int, default=10)
    models.add_argument(
        "--source",
        choices=("zoo", "timm", "torchvision"),
        default="zoo",
        help="zoo: convtrain's own table; timm or torchvision: their model names (use as --model timm:NAME)",
    )
    models.add_argument(
        "--filter", default="*", help="shell pattern for --source timm/torchvision, e.g. 'resnet*'"
    )
    models.add_argument(
        "--pretrained-only", action="store_true", help="only names with pretrained weights (--pretrained)"
    )

    command("recipes", recipes_command, "list the packaged recipes (use with train --recipe NAME)")


def data_info_command(args: argparse.Namespace) -> int:

    with warnings.catch_warnings():  # the notes are part of the printed table
        if not args.json:
            warnings.simplefilter("ignore")
        data = load_dataset(args.name, args.data_dir, download=not args.no_download, cache=not args.no_cache)
        info = dataset_info(data)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def data_cache_command(args: argparse.Namespace) -> int:

    root = resolve_data_dir(args.data_dir)
    if args.clear:
        folder, count = clear_cache(root)
        print(f"removed {count} cached dataset{'' if count == 1 else 's'} from {folder}")
        return 0
    entries = describe_cache(root)
    print(f"decoded-image cache {cache_root(root)}: {len(entries)} dataset{'' if len(entries) == 1 else 's'}")
    for entry in entries:
        print(
            f"  {entry['dataset']}  {entry['images']} images  {entry['bytes'] / 2**20:.1f} MiB  {entry['file']}"
        )
    return 0


def data_show_command(args: argparse.Namespace) -> int:

    out = picture_path(args.out or f"{args.name.split(':')[0]}-batch.png")  # refused before the data loads
    data = load_dataset(args.name, args.data_dir, download=not args.no_download, cache=not args.no_cache)
    save_batch_grid(data, out, augment_spec=args.augment, count=args.count, seed=args.seed)
    print(f"wrote {out}")
    return 0


def models_command(args: argparse.Namespace) -> int:

    if args.summary:
        model = build_model(args.summary, args.channels, args.classes, args.image_size)
        print(summarize(model, (args.channels, args.image_size, args.image_size)))
    elif args.source != "zoo":
        names = available(args.source, args.filter, pretrained=args.pretrained_only)
        print("\n".join(f"{args.source}:{name}" for name in names))
        print(f"{len(names)} {args.source} models match {args.filter!r}")
    else:
        print(format_model_table(model_table(args.channels, args.image_size, args.classes)))
    return 0


def recipes_command(args: argparse.Namespace) -> int:

    print(format_recipes())
    return 0

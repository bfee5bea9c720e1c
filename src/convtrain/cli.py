"""The command line: a table of subcommands, each a thin layer over a Python function.

    convtrain train --model lenet5 --epochs 5
    convtrain data info mnist --json
    convtrain --help

`train`'s flags are made from the fields of TrainConfig, so the dataclass is the single list of
options. Bad input exits with code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from convtrain.config import TrainConfig, field_docs, read_yaml
from convtrain.errors import ConfigError, ConvtrainError

# ----- train -----


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; defaults suppressed so only typed flags override a config file."""
    docs = field_docs()
    parser.add_argument("--config", help="YAML file of options (flags given here override it)")
    for field in fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = str(field.type)
        help_text = f"{docs.get(field.name, '')} (default: {field.default})"
        if kind == "bool":
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
            continue
        convert = {"int": int, "int | None": int, "float": float}.get(kind, str)
        parser.add_argument(
            flag, type=convert, default=argparse.SUPPRESS, metavar=field.name.upper(), help=help_text
        )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """defaults < recipe < --config file < flags; --resume starts from the run's own config.yaml."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values: dict = {}
    if given.get("resume"):
        saved = Path(given["resume"]) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"cannot resume {given['resume']}: no config.yaml there; pass a run folder")
        values.update(read_yaml(saved))
        values["out"] = given["resume"]
    elif given.get("recipe"):
        from convtrain.recipes import load_recipe

        values.update(load_recipe(given["recipe"]))
        values["recipe"] = given["recipe"]
    if args.config:
        values.update(read_yaml(args.config))
    values.update(given)
    return TrainConfig.from_dict(values, source=args.config or "options")


def cmd_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if config.nproc > 1 and "LOCAL_RANK" not in os.environ:
        from convtrain.distributed import launch

        return launch(config.nproc, _argv_without_nproc(sys.argv[1:]))
    import torch

    from convtrain.train import fit

    try:
        run = fit(config)
    except torch.cuda.OutOfMemoryError:
        raise ConvtrainError(
            f"out of GPU memory at batch size {config.batch_size}; lower --batch-size or use --batch-size auto"
        ) from None
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


def cmd_lr_find(args: argparse.Namespace) -> int:
    from convtrain.lrfind import lr_find

    result = lr_find(config_from_args(args), start=args.start, end=args.end, steps=args.steps, out=args.plot)
    print(f"suggested lr: {result['suggested_lr']:.3g}  (plot: {result['plot']})")
    return 0


# ----- data and models -----


def cmd_data_info(args: argparse.Namespace) -> int:
    from convtrain.data.info import dataset_info, format_info
    from convtrain.data.registry import load_dataset

    with warnings.catch_warnings():  # the notes are part of the printed table
        if not args.json:
            warnings.simplefilter("ignore")
        info = dataset_info(load_dataset(args.name, args.data_dir, download=not args.no_download))
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    from convtrain.data.registry import load_dataset
    from convtrain.data.show import save_batch_grid

    data = load_dataset(args.name, args.data_dir, download=not args.no_download)
    out = args.out or f"{args.name.split(':')[0]}-batch.png"
    save_batch_grid(data, out, augment_spec=args.augment, count=args.count, seed=args.seed)
    print(f"wrote {out}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from convtrain.models import build_model
    from convtrain.models.summary import format_model_table, model_table, summarize

    if args.summary:
        model = build_model(args.summary, args.channels, args.classes, args.image_size)
        print(summarize(model, (args.channels, args.image_size, args.image_size)))
    else:
        print(format_model_table(model_table(args.channels, args.image_size, args.classes)))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from convtrain.recipes import format_recipes

    print(format_recipes())
    return 0


# ----- after training: these read only the run folder -----


def cmd_evaluate(args: argparse.Namespace) -> int:
    from convtrain.report_cli import evaluate_command

    return evaluate_command(args)


def cmd_predict(args: argparse.Namespace) -> int:
    from convtrain.report_cli import predict_command

    return predict_command(args)


def cmd_plot(args: argparse.Namespace) -> int:
    from convtrain.report_cli import plot_command

    return plot_command(args)


def cmd_kernels(args: argparse.Namespace) -> int:
    from convtrain.report_cli import kernels_command

    return kernels_command(args)


def cmd_export(args: argparse.Namespace) -> int:
    from convtrain.report_cli import export_command

    return export_command(args)


# ----- the table -----


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convtrain", description="Train convolutional image classifiers, fast."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    add_config_flags(command("train", cmd_train, "train a model; writes a run folder"))
    lr = command("lr-find", cmd_lr_find, "learning-rate range test: plot loss against lr, suggest one")
    add_config_flags(lr)
    lr.add_argument("--start", type=float, default=1e-5, help="smallest lr tried")
    lr.add_argument("--end", type=float, default=10.0, help="largest lr tried")
    lr.add_argument("--steps", type=int, default=100, help="number of steps (one lr each)")
    lr.add_argument("--plot", default=None, help="where to write the plot (default lr-find.png)")

    data = command("data", None, "inspect datasets").add_subparsers(
        dest="data_command", metavar="ACTION", required=True
    )
    for name, handler, help_text in (
        ("info", cmd_data_info, "images per split and class, shape, mean/std"),
        ("show", cmd_data_show, "a labelled grid of a training batch"),
    ):
        sub = data.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument("name", help="mnist, fashion-mnist, cifar10, cifar100, folder:PATH or npz:PATH")
        sub.add_argument(
            "--data-dir", default=None, help="dataset root (default $CONVTRAIN_DATA or ~/.cache/convtrain)"
        )
        sub.add_argument("--no-download", action="store_true", help="never download; use local files only")
    info = data.choices["info"]
    info.add_argument("--json", action="store_true", help="print JSON")
    show = data.choices["show"]
    show.add_argument("--augment", default="none", help="augmentations to show, e.g. flip,crop:4")
    show.add_argument("--out", default=None, help="PNG file to write")
    show.add_argument("--count", type=int, default=32, help="images in the grid")
    show.add_argument("--seed", type=int, default=0)

    models = command("models", cmd_models, "list the models with parameters and FLOPs per image")
    models.add_argument(
        "--summary", metavar="NAME", help="print one model's layers, output shapes and parameters"
    )
    models.add_argument("--channels", type=int, default=3)
    models.add_argument("--image-size", type=int, default=32)
    models.add_argument("--classes", type=int, default=10)

    command("recipes", cmd_recipes, "list the packaged recipes (use with train --recipe NAME)")

    weights_help = (
        "best, last or a .pt file of the run (default: the weights its final test measured, test_weights)"
    )
    evaluate = command("evaluate", cmd_evaluate, "metrics, per-class table and confusion matrix of a run")
    evaluate.add_argument("run", help="run folder")
    evaluate.add_argument("--split", choices=("test", "val"), default="test")
    evaluate.add_argument("--tta", action="store_true", help="average flips and small shifts")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--weights", default=None, help=weights_help)

    predict = command("predict", cmd_predict, "top-k labels for image files, folders or globs")
    predict.add_argument("run", help="run folder")
    predict.add_argument("paths", nargs="*", metavar="PATH", help="image files, folders or globs")
    predict.add_argument(
        "--index", default=None, help="predict images of the run's dataset instead: 7, 0:10 or 3,5,9"
    )
    predict.add_argument(
        "--split", choices=("test", "val"), default="test", help="the split --index picks from"
    )
    predict.add_argument("--data-dir", default=None)
    predict.add_argument("--topk", type=int, default=3)
    predict.add_argument("--out", default=None, help="preds.csv or preds.json")
    predict.add_argument("--device", default="auto")
    predict.add_argument("--weights", default=None, help=weights_help)

    plot = command("plot", cmd_plot, "(re)make a run's pictures and report.html")
    plot.add_argument("run", help="run folder")

    kernels = command(
        "kernels", cmd_kernels, "show convolution kernels and pooling on an image, or a run's filters"
    )
    kernels.add_argument("image", nargs="?", help="an image file")
    kernels.add_argument(
        "--run", default=None, help="a run folder: show its learned filters and feature maps"
    )
    kernels.add_argument(
        "--kernel",
        action="append",
        default=None,
        help="box-blur, gaussian-blur, sharpen, laplacian, sobel-x, sobel-y, or a matrix '1,0,-1;2,0,-2;1,0,-1'",
    )
    kernels.add_argument(
        "--out", default=None, help="output folder (default: beside the image or in the run)"
    )

    export = command("export", cmd_export, "export a run's model with its model card")
    export.add_argument("run", help="run folder")
    export.add_argument("--format", choices=("onnx", "torchscript", "safetensors"), default="onnx")
    export.add_argument("--out", default=None, help="output file")
    export.add_argument("--weights", default=None, help=weights_help)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        return args.handler(args)
    except ConvtrainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

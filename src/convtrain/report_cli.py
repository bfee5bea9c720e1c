"""The after-training commands: evaluate, predict, plot, kernels, export (flags are defined in cli.py).

Each function takes the parsed arguments, calls the library function that does the work, prints a
table or JSON and returns the exit code. Bad input raises a ConvtrainError, which cli.main prints as
one line and turns into exit code 2.

    convtrain evaluate runs/mnist-lenet5 --json
    convtrain predict runs/mnist-lenet5 digits/ --topk 3 --out preds.csv
    convtrain plot runs/mnist-lenet5
    convtrain kernels photo.png --run runs/mnist-lenet5
    convtrain export runs/mnist-lenet5 --format onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from convtrain.errors import ConfigError


def evaluate_command(args: argparse.Namespace) -> int:
    from convtrain.metrics import evaluate_run, format_evaluation

    result = evaluate_run(
        args.run,
        split=args.split,
        tta=args.tta,
        which=args.weights,
        data_dir=args.data_dir,
        device=args.device,
    )
    print(json.dumps(result, indent=2) if args.json else format_evaluation(result))
    return 0


def predict_command(args: argparse.Namespace) -> int:
    from convtrain.prediction import format_predictions, predict_split, write_predictions

    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json"):
        raise ConfigError(f"--out {args.out} must end in .csv or .json")
    if args.index is not None and args.paths:
        raise ConfigError("give image paths or --index, not both")
    if args.index is None and not args.paths:
        raise ConfigError(
            "give image files, folders or globs, or --index N to predict images of the run's dataset"
        )
    if args.index is not None:
        predictions = predict_split(
            args.run, args.split, args.index, args.topk, args.weights, args.data_dir, args.device
        )
        right = sum(p["labels"][0] == p["true"] for p in predictions)
        summary = f"{_images(len(predictions), args.split)} predicted, {right} right"
    else:
        predictions, skipped = _predict_files(args)
        summary = f"{_images(len(predictions))} predicted" + (f", {skipped} skipped" if skipped else "")
    print(format_predictions(predictions))
    if args.out:
        summary += f"; wrote {write_predictions(args.out, predictions)}"
    print(summary, file=sys.stderr)
    return 0


def _images(count: int, split: str = "") -> str:
    """'1 test image', '8 test images', '3 images'."""
    return f"{count} {split + ' ' if split else ''}image{'' if count == 1 else 's'}"


def _predict_files(args: argparse.Namespace) -> tuple[list[dict], int]:
    """Predictions for the files, folders and globs given, and how many were skipped (each named on stderr)."""
    from convtrain.prediction import SkippedImageWarning, predict_paths

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedImageWarning)
        try:
            predictions = predict_paths(
                args.run, args.paths, topk=args.topk, which=args.weights, device=args.device
            )
        finally:  # the skipped files are named even when none could be read
            skipped = [w for w in caught if issubclass(w.category, SkippedImageWarning)]
            for w in skipped:
                print(f"warning: {w.message}", file=sys.stderr)
            for w in caught:
                if not issubclass(w.category, SkippedImageWarning):
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return predictions, len(skipped)


def plot_command(args: argparse.Namespace) -> int:
    from convtrain.report import make_run_pictures

    report = make_run_pictures(args.run)
    pictures = sorted((Path(args.run) / "plots").glob("*.png"))
    for path in pictures:
        print(f"wrote {path}")
    print(f"wrote {report}")
    return 0


def kernels_command(args: argparse.Namespace) -> int:
    from convtrain.kernels import kernel_figure, parse_kernel, run_figures

    if args.image is None and args.run is None:
        raise ConfigError("give an image file, --run RUN, or both (see convtrain kernels --help)")
    for spec in args.kernel or []:
        parse_kernel(spec)  # a typo in a kernel fails before any work
    written = []
    if args.image is not None:
        if not Path(args.image).is_file():
            raise ConfigError(f"image {args.image} does not exist")
        out_dir = Path(args.out) if args.out else Path(args.image).parent
        written.append(
            kernel_figure(args.image, args.kernel, out_dir / f"{Path(args.image).stem}-kernels.png")
        )
    if args.run is not None:
        written += run_figures(args.run, args.image, args.out)
    for path in written:
        print(f"wrote {path}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    from convtrain.export import export_run

    result = export_run(args.run, args.format, args.out, which=args.weights)
    print(f"wrote {', '.join(result['files'])}")
    print(
        f"checked on {result['checked_on']}: max abs logit difference {result['max_abs_diff']:.3g} "
        f"(tolerance {result['tolerance']:g})"
    )
    return 0

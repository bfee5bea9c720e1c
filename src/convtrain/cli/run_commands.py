"""The after-training commands: evaluate, predict, plot, kernels, export. They only read the run folder.

Each handler takes the parsed arguments, calls the library function that does the work, prints a
table or JSON and returns the exit code. Bad input raises a ConvtrainError, which cli.main prints as
one line and turns into exit code 2.

    convtrain evaluate runs/mnist-lenet5 --json
    convtrain predict runs/mnist-lenet5 digits/ --topk 3 --out preds.csv
    convtrain predict runs/mnist-lenet5 digits/ --explain gradcam --out why/
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
from typing import Any

from convtrain.base.errors import ConfigError
from convtrain.cli.register import Add
from convtrain.evaluation.export import export_run
from convtrain.evaluation.prediction import (
    SkippedImageWarning,
    predict_paths,
    predict_split,
    write_predictions,
)
from convtrain.evaluation.report.kernels import kernel_figure, parse_kernel, run_figures
from convtrain.evaluation.report.run_pictures import make_run_pictures
from convtrain.evaluation.scoring import evaluate

WEIGHTS_HELP = (
    "best, last or a .pt file of the run (default: the weights its final test measured, test_weights)"
)
LAYER_HELP = "the module Grad-CAM looks at, e.g. features.4 (default: the last conv layer or block)"


def _scoring_flags(sub: argparse.ArgumentParser, split_help: str, explain_help: str, **explain: Any) -> None:
    """The flags evaluate and predict share: which split, data folder, device, weights, heat maps."""
    sub.add_argument("--split", choices=("test", "val"), default=None, help=split_help)
    sub.add_argument("--data-dir", default=None)
    sub.add_argument("--device", default="auto")
    sub.add_argument(
        "--weights",
        default=None,
        help=WEIGHTS_HELP,
    )
    sub.add_argument("--explain", default=None, metavar="METHOD", help=explain_help, **explain)
    sub.add_argument("--layer", default=None, help=LAYER_HELP)


def register(command: Add) -> None:
    evaluate = command("evaluate", evaluate_command, "metrics, per-class table and confusion matrix of a run")
    evaluate.add_argument("run", help="run folder")
    evaluate.add_argument(
        "--tta", action="store_true", help="average 1-pixel shifts, and mirrors if the run trained on flips"
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.add_argument(
        "--subset",
        default=None,
        metavar="FILE.npy",
        help="score only these images of the split: a .npy of booleans (one per image) or of indices",
    )
    _scoring_flags(
        evaluate,
        "default: test, or val when there is no test split",
        "also draw heat maps (gradcam, the default, saliency or ig) of the highest losses and of "
        "right predictions per class into the run's plots/ (needs convtrain[explain])",
        nargs="?",
        const="gradcam",
    )

    predict = command("predict", predict_command, "top-k labels for image files, folders or globs")
    predict.add_argument("run", help="run folder")
    predict.add_argument("paths", nargs="*", metavar="PATH", help="image files, folders or globs")
    predict.add_argument(
        "--index", default=None, help="predict images of the run's dataset instead: 7, 0:10 or 3,5,9"
    )
    predict.add_argument("--topk", type=int, default=3)
    predict.add_argument(
        "--out",
        default=None,
        help="preds.csv or preds.json; with --explain also a folder for the pictures (else they go "
        "beside the file, in preds-<method>/)",
    )
    _scoring_flags(
        predict,
        "the split --index picks from (default: test, or val when there is no test split)",
        "gradcam, saliency or ig: per image, a picture of the image, its heat map and the top-k "
        "labels (needs convtrain[explain])",
    )

    plot = command("plot", plot_command, "(re)make a run's pictures and report.html")
    plot.add_argument("run", help="run folder")

    kernels = command(
        "kernels", kernels_command, "show convolution kernels and pooling on an image, or a run's filters"
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

    export = command("export", export_command, "export a run's model with its model card")
    export.add_argument("run", help="run folder")
    export.add_argument("--format", choices=("onnx", "torchscript", "safetensors"), default="onnx")
    export.add_argument("--out", default=None, help="output file")
    export.add_argument("--weights", default=None, help=WEIGHTS_HELP)


def evaluate_command(args: argparse.Namespace) -> int:

    result = evaluate(
        args.run,
        split=args.split,
        tta=args.tta,
        which=args.weights,
        data_dir=args.data_dir,
        device=args.device,
        explain=args.explain,
        layer=args.layer,
        subset=args.subset,
    )
    print(json.dumps(result, indent=2) if args.json else format_evaluation(result))
    return 0


def predict_command(args: argparse.Namespace) -> int:

    table, pictures = _predict_outputs(args)
    if args.index is not None and args.paths:
        raise ConfigError("give image paths or --index, not both")
    if args.index is None and not args.paths:
        raise ConfigError(
            "give image files, folders or globs, or --index N to predict images of the run's dataset"
        )
    if args.index is not None:
        predictions = predict_split(
            args.run,
            args.split,
            args.index,
            args.topk,
            args.weights,
            args.data_dir,
            args.device,
            explain=args.explain,
            layer=args.layer,
            explain_dir=pictures,
        )
        right = sum(p["labels"][0] == p["true"] for p in predictions)
        split = predictions[0]["path"].split("[")[0]  # 'test[7]' -> 'test'
        summary = f"{_images(len(predictions), split)} predicted, {right} right"
    else:
        predictions, skipped = _predict_files(args, pictures)
        summary = f"{_images(len(predictions))} predicted" + (f", {skipped} skipped" if skipped else "")
    print(format_predictions(predictions))
    if table:
        summary += f"; wrote {write_predictions(table, predictions)}"
    if args.explain:
        summary += f"; {args.explain} pictures in {pictures}"
    print(summary, file=sys.stderr)
    return 0


def _predict_outputs(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """(the .csv/.json file, the pictures folder) that --out and --explain ask for."""
    out = Path(args.out) if args.out else None
    is_table = out is not None and out.suffix.lower() in (".csv", ".json")
    if args.explain is None:
        if out is not None and not is_table:
            raise ConfigError(f"--out {out} must end in .csv or .json")
        return out, None
    if out is None:
        raise ConfigError(
            "--explain writes a picture per image: give --out FOLDER, or --out preds.csv to put them beside it"
        )
    if not is_table:
        if out.is_file():
            raise ConfigError(f"--out {out} is a file; give a folder for the pictures, or a .csv/.json file")
        return None, out
    return out, out.with_name(f"{out.stem}-{args.explain}")


def _images(count: int, split: str = "") -> str:
    """'1 test image', '8 test images', '3 images'."""
    return f"{count} {split + ' ' if split else ''}image{'' if count == 1 else 's'}"


def _predict_files(args: argparse.Namespace, pictures: Path | None) -> tuple[list[dict], int]:
    """Predictions for the files, folders and globs given, and how many were skipped (each named on stderr)."""

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedImageWarning)
        try:
            predictions = predict_paths(
                args.run,
                args.paths,
                topk=args.topk,
                which=args.weights,
                device=args.device,
                explain=args.explain,
                layer=args.layer,
                explain_dir=pictures,
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

    report = make_run_pictures(args.run)
    pictures = sorted((Path(args.run) / "plots").glob("*.png"))
    for path in pictures:
        print(f"wrote {path}")
    print(f"wrote {report}")
    return 0


def kernels_command(args: argparse.Namespace) -> int:

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

    result = export_run(args.run, args.format, args.out, which=args.weights)
    print(f"wrote {', '.join(result['files'])}")
    print(
        f"checked on {result['checked_on']}: max abs logit difference {result['max_abs_diff']:.3g} "
        f"(tolerance {result['tolerance']:g})"
    )
    return 0


# ----- terminal tables -----


def format_evaluation(result: dict[str, Any]) -> str:
    """The evaluation as a plain-text table for the terminal."""
    width = max(5, *(len(row["class"]) for row in result["per_class"]))
    lines = [
        f"run {result['run']}  split {result['split']}"
        + (f" (subset {result['subset']})" if result.get("subset") else "")
        + f"  {result['images']} images  "
        f"checkpoint {result['checkpoint']}  tta {'on' if result['tta'] else 'off'}",
        f"loss {result['loss']:.4f}  top-1 {100 * result['top1']:.2f}%  "
        + (
            f"top-5 {100 * result['top5']:.2f}%  "
            if result["top5_k"] == 5 and len(result["per_class"]) > 5
            else ""
        )
        + f"macro F1 {result['macro_f1']:.4f}",
        "",
        f"{'class':<{width}}  precision  recall      f1  support",
    ]
    for row in result["per_class"]:
        lines.append(
            f"{row['class']:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:6.4f}  {row['support']:7d}"
        )
    if result["most_confused"]:
        pairs = ", ".join(
            f"{p['true']} -> {p['predicted']} ({p['count']})" for p in result["most_confused"][:5]
        )
        lines += ["", f"most confused (true -> predicted): {pairs}"]
    lines += ["", "highest losses (index: true -> predicted, probability):"]
    for item in result["top_losses"][:8]:
        lines.append(f"  #{item['index']}: {item['true']} -> {item['predicted']} ({item['probability']:.3f})")
    if result.get("files"):
        lines += ["", "wrote " + ", ".join(result["files"])]
    return "\n".join(lines)


def format_predictions(predictions: list[dict[str, Any]]) -> str:
    """One line per image: the path (and the true label when known), then each label with its probability."""
    width = min(60, max(len(p["path"]) for p in predictions))
    return "\n".join(
        f"{p['path']:<{width}}  "
        + (f"true {p['true']}  predicted " if "true" in p else "")
        + "  ".join(
            f"{label} {prob:.3f}" for label, prob in zip(p["labels"], p["probabilities"], strict=True)
        )
        for p in predictions
    )

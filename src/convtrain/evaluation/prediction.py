"""Predict: top-k labels for image files, folders and globs, preprocessed exactly as in training.

Each image is decoded to the model card's channels and size (gray <-> RGB, resized as training
resized it), then normalised with the card's mean/std. Files that are not readable images are
reported by name (a SkippedImageWarning each) and skipped; only when nothing at all can be read
is it an error.

    convtrain predict runs/cifar10-sample-lenet5 photos/ "more/*.jpg" --topk 3 --out preds.csv
    python -c "import convtrain; print(convtrain.predict('runs/mnist-lenet5', ['digit.png']))"
"""

from __future__ import annotations

import csv
import glob
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from convtrain.base.atomic_files import write_text_atomic
from convtrain.base.errors import ConfigError, ImageError
from convtrain.data.decode import decode_image
from convtrain.data.pixels import preprocess
from convtrain.evaluation.explain import check_method, write_prediction_pictures
from convtrain.evaluation.scoring import load_run_data, measured_split, pick_split
from convtrain.runs.run_dir import RunDir
from convtrain.system.runtime import pick_device

GLOB_CHARACTERS = set("*?[")


class SkippedImageWarning(UserWarning):
    """A path given to predict that was not a readable image (or matched nothing); it was skipped."""


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files as given, every file under a folder (recursively, sorted), and glob matches.

    Paths that do not exist, empty folders and globs that match nothing are reported with a warning.
    """
    files: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
            if not found:
                _skip(path, "empty folder")
            files += found
        elif path.is_file():
            files.append(path)
        elif GLOB_CHARACTERS & set(str(given)):
            found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            if not found:
                _skip(Path(given), "the pattern matches no files")
            files += found
        else:
            _skip(path, "no such file or folder")
    return list(dict.fromkeys(files))  # a file named twice is predicted once


@torch.inference_mode()
def predict_tensor(
    model: torch.nn.Module, card: dict[str, Any], images: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """Class probabilities (N, K) for uint8 images (N, C, H, W) or one (C, H, W), converted to the card's input."""
    if images.dim() == 3:
        images = images[None]
    device = next(model.parameters()).device
    model.eval()
    out = [
        model(preprocess(card, batch, device)).float().softmax(1).cpu() for batch in images.split(batch_size)
    ]
    return torch.cat(out)  # (N, K)


def predict_paths(
    run_dir: str | Path | RunDir,
    paths: list[str | Path] | str | Path,
    topk: int = 3,
    which: str | None = None,
    device: str = "auto",
    batch_size: int = 256,
    explain: str | None = None,
    layer: str | None = None,
    explain_dir: str | Path = "explanations",
) -> list[dict[str, Any]]:
    """Top-k predictions for every readable image among `paths`: [{path, labels, probabilities}, ...].

    Unreadable files are skipped with a SkippedImageWarning naming them; ImageError if none could be read.
    explain ("gradcam", "saliency" or "ig") also writes, per image, the image, its heat map for the
    top class and the top-k labels into explain_dir, and adds that picture's path as "explanation".
    """

    if isinstance(paths, str | Path):
        paths = [paths]
    if topk < 1:
        raise ConfigError(f"topk must be at least 1, got {topk}")
    _check_explain(explain, layer)
    model, card = RunDir.of(run_dir).load_model(which, pick_device(device))
    classes = card["classes"]
    k = min(topk, len(classes))
    files = expand_paths(paths)
    results: list[dict[str, Any]] = []
    taken: set[str] = set()  # picture names already used, so two a.png of different folders both stay
    for start in range(0, len(files), batch_size):
        readable, images = [], []
        for path in files[start : start + batch_size]:
            try:
                images.append(decode_image(path, card["in_channels"], card["image_size"]))  # (C, S, S)
                readable.append(path)
            except ImageError:
                _skip(path, "not a readable image")
        if not images:
            continue
        probs = predict_tensor(model, card, torch.stack(images), batch_size)  # (B, K)
        top_p, top_i = probs.topk(k, dim=1)
        found = [
            {"path": str(path), "labels": [classes[c] for c in i], "probabilities": p}
            for path, p, i in zip(readable, top_p.tolist(), top_i.tolist(), strict=True)
        ]
        if explain:
            _add_explanations(
                found, model, card, torch.stack(images), probs, explain, layer, explain_dir, k, taken
            )
        results += found
    if not results:
        shown = ", ".join(str(p) for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
        raise ImageError(
            f"no readable images in {shown}; give image files (.png, .jpg, ...), folders or globs"
        )
    return results


def parse_indices(spec: str, count: int) -> list[int]:
    """'7', '0:10' (a Python slice) or '3,5,9' -> indices into a split of `count` images."""
    indices: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if ":" in part:
                bounds = [int(b) if b.strip() else None for b in part.split(":")]
                if len(bounds) > 3:
                    raise ValueError
                indices += range(count)[slice(*bounds)]
            else:
                indices.append(int(part))
        except ValueError:
            raise ConfigError(
                f"--index {spec!r} is not an index, a range a:b or a comma list like 3,5,9"
            ) from None
    bad = [i for i in indices if not -count <= i < count]
    if bad:
        raise ConfigError(f"--index {bad[0]} is outside the split's {count} images (0..{count - 1})")
    if not indices:
        raise ConfigError(f"--index {spec!r} selects no images of the split's {count}")
    return [i % count for i in indices]


def predict_split(
    run_dir: str | Path | RunDir,
    split: str | None = None,
    index: str = "0",
    topk: int = 3,
    which: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    explain: str | None = None,
    layer: str | None = None,
    explain_dir: str | Path = "explanations",
) -> list[dict[str, Any]]:
    """Top-k predictions for images of the run's dataset picked by position, with their true labels:
    the tutorials' "predict test image 0". [{path: 'test[0]', labels, probabilities, true}, ...].
    explain, layer, explain_dir: heat-map pictures, as for predict_paths."""

    if topk < 1:
        raise ConfigError(f"topk must be at least 1, got {topk}")
    _check_explain(explain, layer)
    run = RunDir.of(run_dir)
    model, card = run.load_model(which, pick_device(device))
    data = load_run_data(run, data_dir)
    split = split or measured_split(data, run)
    chosen = pick_split(run, data, split)
    indices = parse_indices(index, len(chosen))
    if chosen.images is not None:
        images = chosen.images[indices]  # (N, C, S, S) uint8
    else:
        images = torch.stack(
            [decode_image(chosen.files[i], card["in_channels"], card["image_size"]) for i in indices]
        )
    classes = card["classes"]
    probs = predict_tensor(model, card, images)  # (N, K)
    top_p, top_i = probs.topk(min(topk, len(classes)), dim=1)
    results = [
        {
            "path": f"{split}[{i}]",
            "labels": [classes[c] for c in top],
            "probabilities": p,
            "true": classes[int(chosen.labels[i])],
        }
        for i, p, top in zip(indices, top_p.tolist(), top_i.tolist(), strict=True)
    ]
    if explain:
        _add_explanations(results, model, card, images, probs, explain, layer, explain_dir, topk)
    return results


def _check_explain(explain: str | None, layer: str | None) -> None:
    """A bad --explain or --layer, or a missing Captum, fails before any image is read."""
    if layer is not None and explain is None:
        raise ConfigError("--layer picks the layer of --explain gradcam; add --explain gradcam")
    if explain is not None:
        check_method(explain, layer)


def _add_explanations(results, model, card, images, probs, method, layer, folder, topk, taken=None) -> None:
    """Write each image's heat-map picture into folder and note its path in its result."""

    truths = [r["true"] for r in results] if results and "true" in results[0] else None
    names = [r["path"] for r in results]
    written = write_prediction_pictures(
        model, card, images, probs, names, folder, method, layer, topk, truths, taken
    )
    for result, path in zip(results, written, strict=True):
        result["explanation"] = str(path)


def write_predictions(path: str | Path, predictions: list[dict[str, Any]]) -> Path:
    """Save predictions as .csv (path, label_1, probability_1, ...) or .json, chosen by the extension."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(predictions, indent=2) + "\n"
    elif path.suffix.lower() == ".csv":
        k = max(len(p["labels"]) for p in predictions)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        truth = ["true"] if "true" in predictions[0] else []
        writer.writerow(
            ["path", *truth] + [f"{name}_{i + 1}" for i in range(k) for name in ("label", "probability")]
        )
        for p in predictions:
            cells = [x for pair in zip(p["labels"], p["probabilities"], strict=True) for x in pair]
            known = [p["true"]] if truth else []
            writer.writerow([p["path"], *known, *(f"{c:.6f}" if isinstance(c, float) else c for c in cells)])
        text = buffer.getvalue()
    else:
        raise ConfigError(f"--out {path} must end in .csv or .json")
    write_text_atomic(path, text)
    return path


def _skip(path: Path, reason: str) -> None:
    warnings.warn(f"skipped {path}: {reason}", SkippedImageWarning, stacklevel=3)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)

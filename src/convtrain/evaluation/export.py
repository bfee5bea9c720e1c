"""Export a run's model for use outside convtrain: ONNX, TorchScript or safetensors, with its model card.

The card (classes, input channels and size, mean/std) travels inside the file, so whoever loads it
knows how to preprocess: ONNX metadata_props (and a .json beside it), TorchScript _extra_files,
safetensors metadata. Every export is checked before it is put in place: the exported model (or,
for safetensors, a network rebuilt from the saved weights) runs on real images of the run's
dataset next to the PyTorch model, and the largest logit difference is reported.

    convtrain export runs/mnist-lenet5 --format onnx
    python -c "from convtrain.evaluation.export import export_run; print(export_run('runs/mnist-lenet5', 'torchscript'))"
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from convtrain.base.atomic_files import atomic_write, write_text_atomic
from convtrain.base.errors import ConfigError, ConvtrainError
from convtrain.data.pixels import preprocess
from convtrain.evaluation.scoring import load_run_data
from convtrain.models import build_model
from convtrain.runs.run_dir import RunDir

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "safetensors": ".safetensors"}
TOLERANCE = 1e-4  # largest logit difference accepted in fp32
CHECK_IMAGES = 32
PREPROCESSING = (
    "pixels / 255, then (x - mean) / std per channel; input (N, in_channels, image_size, image_size) float32"
)


class ExportError(ConvtrainError):
    """An export that could not be made, or that does not reproduce the PyTorch model."""


def export_run(
    run_dir: str | Path | RunDir,
    format: str = "onnx",
    out: str | Path | None = None,
    which: str | None = None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Export a run's model with its card; returns {path, format, max_abs_diff, checked_on, ...}."""
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    run = RunDir.of(run_dir)
    model, card = run.load_model(which, "cpu")
    out = Path(out) if out else run.path / f"model{FORMATS[format]}"
    x, checked_on = check_images(run, data_dir)  # (B, C, S, S) normalised
    with torch.inference_mode():
        expected = model(x).float()  # (B, K)
    card = {**card, "preprocessing": PREPROCESSING}
    exporter = {"onnx": _onnx, "torchscript": _torchscript, "safetensors": _safetensors}[format]
    data, logits = exporter(model, card, x)  # the file's bytes, and what the exported model computes on x
    difference = float((logits - expected).abs().max())
    if not difference <= TOLERANCE:  # checked before anything is written
        raise ExportError(
            f"{format} export differs from PyTorch by {difference:.3g} (> {TOLERANCE:g}); not written"
        )
    atomic_write(out, lambda file: file.write(data))
    files = [str(out)]
    if format == "onnx":  # a plain-text copy of the card for tools that do not read ONNX metadata
        write_text_atomic(out.with_name(out.name + ".json"), json.dumps(card, indent=2) + "\n")
        files.append(str(out) + ".json")
    return {
        "path": str(out),
        "files": files,
        "format": format,
        "max_abs_diff": difference,
        "tolerance": TOLERANCE,
        "checked_on": checked_on,
        "images": len(x),
    }


def check_images(run: RunDir, data_dir: str | None = None) -> tuple[torch.Tensor, str]:
    """Up to CHECK_IMAGES preprocessed images of the run's dataset (test, else train), or random pixels if unavailable."""

    card = run.card
    try:
        data = load_run_data(run, data_dir)
        split, name = (data.test, "test") if data.test is not None else (data.train, "train")
        images, source = (
            split.images[:CHECK_IMAGES],
            f"{min(len(split), CHECK_IMAGES)} {name} images of {data.name}",
        )
    except ConvtrainError as error:
        warnings.warn(
            f"checking the export on random pixels: the run's dataset is unavailable ({error})", stacklevel=3
        )
        shape = (8, card["in_channels"], card["image_size"], card["image_size"])
        images, source = (
            torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8),
            "random pixels",
        )
    return preprocess(card, images), source


def _onnx(model: torch.nn.Module, card: dict[str, Any], x: torch.Tensor) -> tuple[bytes, torch.Tensor]:
    if importlib.util.find_spec("onnxscript") is None or importlib.util.find_spec("onnxruntime") is None:
        raise ExportError(
            "ONNX export needs onnx, onnxscript and onnxruntime: pip install 'convtrain[export]'"
        )
    import onnx
    import onnxruntime

    batch = torch.export.Dim("batch")
    program = torch.onnx.export(
        model,
        (x[:2],),
        dynamo=True,
        verbose=False,
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes=({0: batch},),
    )
    proto = program.model_proto
    for key, value in (
        ("convtrain_model_card", json.dumps(card)),
        ("preprocessing", PREPROCESSING),
        ("classes", json.dumps(card["classes"])),
    ):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(data))
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return data, torch.from_numpy(session.run(None, {"image": x.numpy()})[0]).float()


def _torchscript(model: torch.nn.Module, card: dict[str, Any], x: torch.Tensor) -> tuple[bytes, torch.Tensor]:
    import io

    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # torch marks jit deprecated; the format is still asked for
        traced = torch.jit.trace(model, x[:2])
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"model_card.json": json.dumps(card)})
        buffer.seek(0)
        loaded = torch.jit.load(buffer, map_location="cpu")
    with torch.inference_mode():
        return buffer.getvalue(), loaded(x).float()


def _safetensors(model: torch.nn.Module, card: dict[str, Any], x: torch.Tensor) -> tuple[bytes, torch.Tensor]:
    from safetensors.torch import load as load_bytes
    from safetensors.torch import save as save_bytes

    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = save_bytes(weights, metadata={"convtrain_model_card": json.dumps(card), "format": "pt"})
    rebuilt = build_model(card["architecture"], card["in_channels"], len(card["classes"]), card["image_size"])
    rebuilt.load_state_dict(load_bytes(data))
    with torch.inference_mode():
        return data, rebuilt.eval()(x).float()


def read_card(path: str | Path) -> dict[str, Any]:
    """The model card stored inside an exported file (any of the three formats)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path} does not exist")
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        text = props.get("convtrain_model_card")
    elif path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            text = (handle.metadata() or {}).get("convtrain_model_card")
    else:
        extra = {"model_card.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", FutureWarning
            )  # jit is deprecated in torch, the format still in use
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        text = extra["model_card.json"] or None
    if not text:
        raise ExportError(f"{path} holds no convtrain model card; export it with `convtrain export`")
    return json.loads(text)

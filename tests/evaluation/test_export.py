"""convtrain export: ONNX, TorchScript and safetensors reproduce the PyTorch model and carry the model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from convtrain.cli import main
from convtrain.evaluation.export import ExportError, export_run, read_card
from convtrain.models import build_model
from convtrain.runs.run_dir import RunDir

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def cifar_sample_run(shared_datasets, tmp_path_factory) -> Path:
    """A lenet5-bn run folder on the real cifar10-sample photos, with BatchNorm statistics that matter."""
    run = tmp_path_factory.mktemp("export") / "run"
    run.mkdir()
    torch.manual_seed(0)
    model = build_model("lenet5-bn", 3, 10, 32)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    torch.save({"model": model.state_dict()}, run / "best.pt")
    card = {
        "architecture": "lenet5-bn",
        "classes": CLASSES,
        "in_channels": 3,
        "image_size": 32,
        "mean": [0.49, 0.48, 0.45],
        "std": [0.25, 0.24, 0.26],
    }
    (run / "model.json").write_text(json.dumps(card))
    (run / "config.yaml").write_text(
        yaml.safe_dump({"dataset": f"folder:{shared_datasets / 'cifar10-sample'}"})
    )
    return run


def real_batch(shared_datasets: Path, card: dict) -> torch.Tensor:
    """Twelve photos of the sample, one per file, normalised by hand with the card's mean/std."""
    files = sorted((shared_datasets / "cifar10-sample").rglob("*.png"))[::17][:12]
    pixels = np.stack([np.array(Image.open(f).convert("RGB")) for f in files])  # (N, 32, 32, 3)
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(card["mean"]).view(1, 3, 1, 1)) / torch.tensor(card["std"]).view(1, 3, 1, 1)


def test_onnx_export_matches_pytorch_on_real_images(cifar_sample_run, shared_datasets, capsys):
    import onnx
    import onnxruntime

    assert main(["export", str(cifar_sample_run), "--format", "onnx"]) == 0
    printed = capsys.readouterr().out
    assert "max abs logit difference" in printed and "images of cifar10-sample" in printed
    path = cifar_sample_run / "model.onnx"
    model, card = RunDir(cifar_sample_run).load_model()
    x = real_batch(shared_datasets, card)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(x).numpy()
    for batch in (x, x[:1]):  # the batch dimension is dynamic
        got = session.run(None, {"image": batch.numpy()})[0]
        assert np.abs(got - expected[: len(batch)]).max() < 1e-4
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["convtrain_model_card"])["classes"] == CLASSES
    assert "/ 255" in props["preprocessing"]
    beside = json.loads((cifar_sample_run / "model.onnx.json").read_text())
    assert beside["mean"] == card["mean"] and read_card(path)["std"] == card["std"]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_and_safetensors_carry_weights_and_card(cifar_sample_run, shared_datasets, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    model, card = RunDir(cifar_sample_run).load_model()
    x = real_batch(shared_datasets, card)
    with torch.no_grad():
        expected = model(x)

    result = export_run(cifar_sample_run, "torchscript", out=tmp_path / "model.pt")
    assert result["max_abs_diff"] <= 1e-4
    extra = {"model_card.json": ""}
    scripted = torch.jit.load(str(tmp_path / "model.pt"), _extra_files=extra)
    assert json.loads(extra["model_card.json"])["classes"] == CLASSES
    with torch.no_grad():
        assert torch.allclose(scripted(x), expected, atol=1e-5)

    result = export_run(cifar_sample_run, "safetensors", out=tmp_path / "model.safetensors")
    assert result["max_abs_diff"] == 0.0
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as handle:
        assert json.loads(handle.metadata()["convtrain_model_card"])["image_size"] == 32
    rebuilt = build_model("lenet5-bn", 3, 10, 32).eval()
    rebuilt.load_state_dict(load_file(tmp_path / "model.safetensors"))
    with torch.no_grad():
        assert torch.equal(rebuilt(x), expected)
    assert read_card(tmp_path / "model.safetensors") == read_card(tmp_path / "model.pt")


def test_an_export_that_fails_its_check_leaves_nothing(cifar_sample_run, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "convtrain.evaluation.export.TOLERANCE", -1.0
    )  # no export can pass: the check must refuse it
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_run(cifar_sample_run, "safetensors", out=tmp_path / "out" / "model.safetensors")
    assert not (tmp_path / "out").exists()  # nothing written, not even the folder


def test_export_bad_input_is_one_line(cifar_sample_run, tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing")]) == 2
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text((cifar_sample_run / "model.json").read_text())
    (broken / "config.yaml").write_text("dataset: mnist\n")
    (broken / "best.pt").write_bytes(b"not a checkpoint")
    assert main(["export", str(broken), "--format", "torchscript"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "does not exist" in lines[0] and "broken/best.pt" in lines[1]
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(ExportError, match="no convtrain model card"):
        read_card(tmp_path / "plain.safetensors")

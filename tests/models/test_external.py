"""timm and torchvision architectures by name: built, trained, listed, rebuilt from the card, exported.

Tiny data at 16 px and two steps per run: these check the plumbing, not accuracy.

    python -m pytest tests/models/test_external.py -q
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

import convtrain
from convtrain.base.errors import ConfigError
from convtrain.cli import main
from convtrain.models import build_model

pytest.importorskip("timm")


def short_run(data, model: str, out, **options) -> convtrain.RunDir:
    settings = dict(epochs=1, max_steps=2, batch_size=16, image_size=16, lr=0.01, quiet=True, plots=False)
    settings.update(options)
    return convtrain.train(dataset=f"npz:{data}", model=model, out=str(out), device="cpu", **settings)


@pytest.fixture(scope="module")
def timm_run(tiny_npz, tmp_path_factory):
    """timm:resnet10t trained two steps on the gray tiny set, with its pictures and report."""
    return short_run(tiny_npz, "timm:resnet10t", tmp_path_factory.mktemp("timm") / "run", plots=True).path


@pytest.mark.parametrize(
    "model, rgb",
    [("timm:mobilenetv3_small_050", True), ("torchvision:resnet18", False), ("torchvision:resnet18", True)],
)
def test_library_models_train_on_gray_and_rgb_and_rebuild_from_the_card(
    model, rgb, tiny_npz, tiny_rgb_npz, tmp_path
):
    run = short_run(tiny_rgb_npz if rgb else tiny_npz, model, tmp_path / "run")
    channels = 3 if rgb else 1
    card = json.loads(run.card_path.read_text())
    source, name = model.split(":")
    assert (card["architecture"], card["source"], card["name"]) == (model, source, name)
    assert card["arguments"]["num_classes"] == 4
    rebuilt = convtrain.load_run(run.path).model  # from model.json alone, through build_model
    assert rebuilt(torch.zeros(2, channels, 16, 16)).shape == (2, 4)
    first_conv = next(m for m in rebuilt.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == channels
    trained = torch.load(run.best_path, weights_only=True)["model"]
    assert all(torch.equal(trained[k], v) for k, v in rebuilt.state_dict().items())


def test_timm_run_reports_evaluates_and_exports_unchanged(timm_run, tiny_npz):
    card = json.loads((timm_run / "model.json").read_text())
    assert card["arguments"] == {"num_classes": 4, "in_chans": 1}
    assert "timm:resnet10t" in (timm_run / "report.html").read_text()
    assert (timm_run / "plots" / "filters.png").stat().st_size > 0  # the stem's filters, as for the zoo
    result = convtrain.evaluate(timm_run, device="cpu")
    trained = json.loads((timm_run / "results.json").read_text())
    assert result["split"] == "test" and result["top1"] == pytest.approx(trained["test_acc"], abs=1e-9)
    from convtrain.evaluation.export import export_run

    exported = export_run(timm_run, "onnx")  # checked against PyTorch on the run's own images
    assert exported["max_abs_diff"] <= 1e-4


def test_unknown_names_suggest_close_ones_in_one_line(tiny_npz, tmp_path, capsys):
    common = ["--dataset", f"npz:{tiny_npz}", "--epochs", "1", "--quiet", "--no-plots", "--device", "cpu"]
    assert main(["train", "--model", "timm:resnet10tt", "--out", str(tmp_path / "a"), *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "timm:resnet10t" in err[0] and "did you mean" in err[0]
    with pytest.raises(ConfigError, match="torchvision:resnet18"):
        build_model("torchvision:resnet19", 3, 10, 32)
    with pytest.raises(ConfigError, match="timm:NAME"):
        build_model("resnet10t", 3, 10, 32)  # a zoo lookup names the prefixes


def test_models_command_lists_library_names_by_pattern(capsys):
    assert main(["models", "--source", "torchvision", "--filter", "resnet*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "torchvision:resnet18" in lines and "torchvision:vgg11" not in lines
    assert lines[-1] == f"{len(lines) - 1} torchvision models match 'resnet*'"
    assert main(["models", "--source", "timm", "--filter", "resnet1*t", "--pretrained-only"]) == 0
    assert "timm:resnet10t" in capsys.readouterr().out.splitlines()


def test_missing_timm_is_a_one_line_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'convtrain\[timm\]'"):
        build_model("timm:resnet10t", 1, 4, 16)

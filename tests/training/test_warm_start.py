"""Warm starts and fine-tuning: --pretrained (library cache, files), --init-from, --freeze-epochs,
--backbone-lr-mult, and that resume and DDP keep working with them. Nothing here downloads.

    python -m pytest tests/training/test_warm_start.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import convtrain
from conftest import make_pattern_images
from convtrain.base.errors import CheckpointError, ConfigError
from convtrain.cli import build_parser, main
from convtrain.cli.train_commands import config_from_args
from convtrain.config.train_config import TrainConfig, with_model_defaults
from convtrain.models import build_model
from convtrain.models.heads import Freezer, head_name
from convtrain.training.optim import build_optimizer
from convtrain.training.warm_start import Source, library_file, library_weights, load_matching
from helpers import copy_run

timm = pytest.importorskip("timm")
CLASSES = ["0", "1", "2", "3"]


def tiny_args(data, out, *extra: str) -> list[str]:
    return ["train", "--dataset", f"npz:{data}", "--out", str(out), "--batch-size", "64", "--quiet"] + [
        "--no-plots",
        "--device",
        "cpu",
        *extra,
    ]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ----- matching tensors by name -----


def test_rgb_library_weights_load_into_a_gray_network_with_a_fresh_head():
    rgb = timm.create_model("resnet10t", num_classes=1000)  # as ImageNet weights are shaped
    gray = build_model("timm:resnet10t", 1, 4, 16)
    fresh_head = gray.fc.weight.detach().clone()
    notes = load_matching(gray, Source(rgb.state_dict(), {}), CLASSES, "weights.pth")
    assert notes == {"stem": "3 input channels adapted to 1", "head": "re-initialised"}
    stem = rgb.state_dict()["conv1.0.weight"]  # (24, 3, 3, 3)
    assert torch.equal(gray.conv1[0].weight, stem.sum(1, keepdim=True))
    # a gray image through the summed stem == the same image as RGB through the original stem
    x = torch.rand(1, 1, 16, 16)
    assert torch.allclose(gray.conv1[0](x), rgb.conv1[0](x.expand(1, 3, 16, 16)), atol=1e-5)
    assert torch.equal(gray.layer4[0].conv1.weight, rgb.layer4[0].conv1.weight)
    assert torch.equal(gray.fc.weight, fresh_head)


def test_same_classes_keep_the_head_other_classes_get_a_new_one():
    source = build_model("lenet5", 1, 4, 28)
    for classes, head in ((CLASSES, "loaded"), (["a", "b", "c", "d"], "re-initialised")):
        target = build_model("lenet5", 1, 4, 28)
        notes = load_matching(target, Source(source.state_dict(), {}, classes=CLASSES), classes, "x")
        assert notes["head"] == head
        name = head_name(target)
        same = torch.equal(target.get_submodule(name).weight, source.get_submodule(name).weight)
        assert same == (head == "loaded")


def test_another_architecture_is_refused_naming_the_first_mismatched_tensors():
    other = timm.create_model("mobilenetv3_small_050", num_classes=4)
    with pytest.raises(
        CheckpointError, match=r"mobile\.pth does not fit this ResNet: conv1\.0\.weight \(missing\)"
    ):
        load_matching(
            build_model("timm:resnet10t", 1, 4, 16), Source(other.state_dict(), {}), CLASSES, "mobile.pth"
        )


# ----- --pretrained -----


def test_pretrained_file_trains_and_the_card_says_where_the_weights_came_from(tiny_npz, tmp_path, capsys):
    weights = tmp_path / "imagenet-shaped.safetensors"
    from safetensors.torch import save_file

    save_file(timm.create_model("resnet10t", num_classes=1000).state_dict(), str(weights))
    run = tmp_path / "run"
    args = ["--model", "timm:resnet10t", "--image-size", "16", "--pretrained", str(weights)]
    assert (
        main(tiny_args(tiny_npz, run, *args, "--epochs", "2", "--freeze-epochs", "1", "--max-steps", "8"))
        == 0
    )
    printed = capsys.readouterr().out
    assert "epoch 1: backbone frozen" in printed and "epoch 2: backbone unfrozen" in printed
    card = json.loads((run / "model.json").read_text())
    assert card["weights"] == {
        "from": "file",
        "file": str(weights),
        "stem": "3 input channels adapted to 1",
        "head": "re-initialised",
    }
    assert convtrain.load_run(run).model(torch.zeros(1, 1, 16, 16)).shape == (1, 4)


def test_exported_safetensors_bring_their_normalisation(tiny_run, tiny_npz, tmp_path):
    from convtrain.evaluation.export import export_run

    exported = export_run(tiny_run, "safetensors", out=tmp_path / "lenet.safetensors")["path"]
    source_card = json.loads((tiny_run / "model.json").read_text())
    darker = tmp_path / "darker.npz"  # the same classes, another mean: the source's normalisation must win
    with np.load(tiny_npz) as arrays:
        np.savez(darker, **{k: v // 2 if k.startswith("x") else v for k, v in arrays.items()})
    run = convtrain.train(
        dataset=f"npz:{darker}", model="lenet5", pretrained=str(exported), epochs=1, max_steps=1,
        out=str(tmp_path / "run"), quiet=True, plots=False, device="cpu",
    )  # fmt: skip
    assert run.card["mean"] == source_card["mean"]
    assert run.card["std"] == source_card["std"]
    assert run.card["weights"]["head"] == "loaded"  # same class names: the trained head is kept
    plain = convtrain.train(
        dataset=f"npz:{darker}", model="lenet5", epochs=1, max_steps=1, out=str(tmp_path / "plain"),
        quiet=True, plots=False, device="cpu",
    )  # fmt: skip
    assert plain.card["mean"][0] < 0.75 * source_card["mean"][0]  # what the data alone would have given


def test_unsafe_or_missing_files_are_one_line_errors(tiny_npz, tmp_path, capsys):
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": np.float64}, unsafe)  # a global: not weights-only
    for path, expected in (
        (unsafe, "unreadable or holds more than tensors"),
        (tmp_path / "no.pth", "does not exist"),
    ):
        assert (
            main(tiny_args(tiny_npz, tmp_path / path.stem, "--model", "lenet5", "--pretrained", str(path)))
            == 2
        )
        assert expected in one_line_error(capsys)


def test_library_weights_come_from_the_cache_or_an_error_says_what_to_place(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    tv = library_weights("torchvision:resnet18")
    with pytest.raises(CheckpointError) as error:
        library_file(tv, download=False)
    message = str(error.value)
    assert f"place {tv.filename} from https://download.pytorch.org/models/" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message and "\n" not in message

    tm = library_weights("timm:resnet10t")
    assert (tm.name, tm.mean, tm.fixed_size) == ("timm/resnet10t.c3_in1k", (0.485, 0.456, 0.406), False)
    with pytest.raises(CheckpointError, match=r"hf download timm/resnet10t\.c3_in1k model\.safetensors"):
        library_file(tm, download=False)
    snapshot = tmp_path / "hf" / "models--timm--resnet10t.c3_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"weights")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    assert library_file(tm, download=False) == snapshot / "model.safetensors"


def test_cached_library_weights_train_with_their_mean_and_std(tiny_npz, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = library_weights("torchvision:mobilenet_v3_small")
    weights.folder.mkdir(parents=True)
    imagenet = __import__("torchvision").models.mobilenet_v3_small()  # random, shaped like the real file
    torch.save(imagenet.state_dict(), weights.folder / weights.filename)
    run = convtrain.train(
        dataset=f"npz:{tiny_npz}", model="torchvision:mobilenet_v3_small", pretrained="library", download=False,
        epochs=1, max_steps=1, image_size=16, out=str(tmp_path / "run"), quiet=True, plots=False, device="cpu",
    )  # fmt: skip
    assert run.card["mean"] == pytest.approx([sum(weights.mean) / 3])  # gray: the channels' mean
    assert run.card["weights"]["from"] == "library" and run.card["weights"]["head"] == "re-initialised"


def test_pretrained_needs_a_library_model_that_has_weights(tiny_npz, tmp_path, capsys):
    assert main(tiny_args(tiny_npz, tmp_path / "a", "--model", "lenet5", "--pretrained")) == 2
    assert "must be timm:NAME or torchvision:NAME" in one_line_error(capsys)
    with_weights = {n.split(".")[0] for n in timm.list_models("resnet*", pretrained=True)}
    bare = sorted(set(timm.list_models("resnet*")) - with_weights)[0]
    with pytest.raises(ConfigError, match=f"timm has no pretrained weights for '{bare}'"):
        library_weights(f"timm:{bare}")


def test_bare_pretrained_flag_means_the_library():
    parse = build_parser().parse_args
    assert config_from_args(parse(["train", "--pretrained", "--epochs", "2"])).pretrained == "library"
    assert config_from_args(parse(["train", "--pretrained", "w.pth"])).pretrained == "w.pth"


# ----- --init-from -----


def test_init_from_a_run_loads_its_weights_and_refuses_another_architecture(
    tiny_run, tiny_npz, tmp_path, capsys
):
    run = convtrain.train(
        dataset=f"npz:{tiny_npz}", model="lenet5", init_from=f"{tiny_run}:last", epochs=1, max_steps=1, lr=1e-9,
        momentum=0.0, weight_decay=0.0, out=str(tmp_path / "warm"), quiet=True, plots=False, device="cpu",
    )  # fmt: skip
    assert run.card["weights"] == {
        "from": "run", "run": str(tiny_run), "file": str(tiny_run / "last.pt"), "head": "loaded",
    }  # fmt: skip
    source = torch.load(tiny_run / "last.pt", weights_only=True)["model"]
    warm = torch.load(run.last_path, weights_only=True)["model"]
    assert all(torch.allclose(source[k], warm[k], atol=1e-6) for k in source)  # lr 1e-9: barely moved
    assert (
        main(tiny_args(tiny_npz, tmp_path / "other", "--model", "fourconv-cnn", "--init-from", str(tiny_run)))
        == 2
    )
    assert "holds a lenet5 run, not fourconv-cnn" in one_line_error(capsys)


def test_init_from_with_other_classes_gets_a_new_head(tiny_run, tmp_path):
    data = tmp_path / "three.npz"
    x, y = make_pattern_images(192, 3, 28, 1, seed=7)
    np.savez(data, x_train=x, y_train=y, x_test=x[:48], y_test=y[:48])
    run = convtrain.train(
        dataset=f"npz:{data}", model="lenet5", init_from=str(tiny_run), epochs=1, max_steps=1,
        out=str(tmp_path / "run"), quiet=True, plots=False, device="cpu",
    )  # fmt: skip
    assert run.card["weights"]["head"] == "re-initialised" and len(run.card["classes"]) == 3


# ----- fine-tuning schedule -----


def test_frozen_backbone_and_its_batchnorm_do_not_move_the_head_does():
    torch.manual_seed(0)
    model = build_model("timm:resnet10t", 1, 4, 16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    freezer = Freezer(model, epochs=1, train_bn=False)
    optimizer = build_optimizer(
        model, with_model_defaults(TrainConfig(lr=0.1, weight_decay=0.01))
    )  # decay would move any param it sees
    freezer.train_mode(model, 0)
    assert not model.bn1.training and model.fc.training
    torch.nn.functional.cross_entropy(model(torch.randn(8, 1, 16, 16)), torch.arange(8) % 4).backward()
    optimizer.step()
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"fc.weight", "fc.bias"}  # running statistics included: BN stayed in eval mode
    freezer.train_mode(model, 1)
    assert model.bn1.training and all(p.requires_grad for p in model.parameters())

    Freezer(model, epochs=1, train_bn=True).train_mode(model, 0)
    assert model.bn1.training and model.bn1.weight.requires_grad and not model.conv1[0].weight.requires_grad


def test_backbone_lr_mult_splits_every_group_into_head_and_backbone():
    model = build_model("torchvision:resnet18", 3, 4, 32)
    optimizer = build_optimizer(model, with_model_defaults(TrainConfig(lr=0.2, backbone_lr_mult=0.1)))
    head, backbone = optimizer.param_groups
    assert {id(p) for p in head["params"]} == {id(model.fc.weight), id(model.fc.bias)}
    assert head["lr"] == 0.2 and backbone["lr"] == pytest.approx(0.02)
    assert len(backbone["params"]) == len(list(model.parameters())) - 2
    fastnet = build_model("fastnet-tiny", 1, 10, 28)  # a model with its own groups: each one split
    groups = build_optimizer(
        fastnet, with_model_defaults(TrainConfig(lr=0.2, backbone_lr_mult=0.5))
    ).param_groups
    own = build_optimizer(fastnet, with_model_defaults(TrainConfig(lr=0.2))).param_groups
    assert len(groups) > len(own) and sum(len(g["params"]) for g in groups) == sum(
        len(g["params"]) for g in own
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "2", "--freeze-epochs", "2"], "freeze_epochs 2 must be fewer than epochs 2"),
        (["--backbone-lr-mult", "0"], "backbone_lr_mult must be a positive factor"),
        (["--pretrained", "--init-from", "runs/x"], "either --pretrained or --init-from"),
    ],
)
def test_bad_fine_tuning_options_are_one_line_errors(flags, message, tiny_npz, tmp_path, capsys):
    assert main(tiny_args(tiny_npz, tmp_path / "run", *flags)) == 2
    assert message in one_line_error(capsys)


def test_resume_inside_the_frozen_epochs_ends_with_the_same_weights(tiny_run, tiny_npz, tmp_path):
    """A warm-started, frozen run stopped after epoch 1 and resumed equals the uninterrupted run, even
    with the source run gone: resuming reads last.pt, not the starting weights."""
    source = copy_run(tiny_run, tmp_path / "source")
    args = ["--model", "lenet5", "--init-from", str(source), "--epochs", "3", "--freeze-epochs", "2"]
    args += ["--optimizer", "adam", "--lr", "0.003", "--seed", "3", "--limit-train", "128"]
    assert main(tiny_args(tiny_npz, tmp_path / "whole", *args)) == 0
    steps_per_epoch = 128 // 64
    assert main(tiny_args(tiny_npz, tmp_path / "cut", *args, "--max-steps", str(steps_per_epoch))) == 0
    shutil.rmtree(source)
    assert main(["train", "--resume", str(tmp_path / "cut"), "--max-steps", "0", "--quiet"]) == 0
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert json.loads((tmp_path / "cut" / "model.json").read_text())["weights"]["from"] == "run"


def test_finetune_recipe_runs_frozen_then_unfrozen(tiny_npz, tmp_path, capsys):
    args = tiny_args(
        tiny_npz, tmp_path / "run", "--recipe", "finetune", "--model", "lenet5", "--max-steps", "8"
    )
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "backbone frozen" in printed and "backbone unfrozen" in printed


@pytest.mark.slow
@pytest.mark.xdist_group("distributed")
def test_two_processes_freeze_like_one(tiny_npz, tmp_path):
    """DDP with a frozen first epoch: frozen parameters get no gradient (find_unused_parameters)
    and end where one process puts them."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONVTRAIN_DIST_TIMEOUT": "60"}
    args = ["--model", "lenet5", "--epochs", "2", "--freeze-epochs", "1", "--seed", "1", "--lr", "0.02"]
    args += ["--augment", "none"]  # each process draws its own shifts: only unaugmented steps match
    for name, extra in (("two", ["--nproc", "2"]), ("one", [])):
        done = subprocess.run(
            [sys.executable, "-m", "convtrain", *tiny_args(tiny_npz, tmp_path / name, *args, *extra)],
            capture_output=True, text=True, timeout=600, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    two = torch.load(tmp_path / "two" / "last.pt", weights_only=True)["model"]
    one = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["model"]
    assert all(torch.allclose(two[k], one[k], atol=1e-4) for k in one)

"""End-to-end training: the CLI run folder, determinism, resume after SIGKILL, stopping rules."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import convtrain
from convtrain.base.errors import ConfigError
from convtrain.cli import main
from convtrain.config.train_config import TrainConfig
from convtrain.training.lr_find import steepest_descent


def tiny_args(npz: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--dataset",
        f"npz:{npz}",
        "--model",
        "lenet5",
        "--batch-size",
        "64",
        "--out",
        str(out),
        "--quiet",
        "--no-plots",
        *extra,
    ]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_cli_run_writes_the_whole_run_folder(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_args(tiny_npz, run, "--epochs", "3", "--lr", "0.05")) == 0
    printed = capsys.readouterr().out
    assert "epoch 3/3" in printed and "test: loss" in printed
    for name in (
        "config.yaml",
        "model.json",
        "split.json",
        "metrics.csv",
        "best.pt",
        "last.pt",
        "results.json",
    ):
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*")), "TensorBoard events missing"

    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert set(rows[0]) >= {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}

    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 3 and results["test_images"] == 96
    assert results["test_acc"] > 0.9  # the synthetic classes are separable bands

    config = TrainConfig.from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    assert config.model == "lenet5" and config.out == str(run)
    card = json.loads((run / "model.json").read_text())
    assert card["architecture"] == "lenet5" and card["in_channels"] == 1 and len(card["classes"]) == 4

    last = torch.load(run / "last.pt", weights_only=True)  # plain tensors and dicts only
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "epoch"} <= set(last)
    assert last["epoch"] == 2


def test_same_seed_same_weights_other_seed_other_weights(tiny_npz, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert (
            main(
                tiny_args(
                    tiny_npz,
                    tmp_path / name,
                    "--epochs",
                    "1",
                    "--seed",
                    str(seed),
                    "--augment",
                    "flip,crop:2",
                    "--model",
                    "fourconv-cnn",
                )
            )
            == 0
        )
    a, b, c = (weights(tmp_path / n / "last.pt") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_after_sigkill_ends_with_the_same_weights(tiny_npz, tmp_path, capsys):
    # A gentle lr and clipping: a run that diverges would stop early and prove nothing about resuming.
    args = ["--epochs", "12", "--seed", "5", "--augment", "flip,crop:2", "--model", "fourconv-cnn"]
    args += ["--lr", "0.02", "--grad-clip", "1.0", "--ema", "0.9", "--lookahead"]  # the average resumes too
    reference = tmp_path / "reference"
    assert main(tiny_args(tiny_npz, reference, *args)) == 0

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "convtrain", *tiny_args(tiny_npz, killed, *args)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (killed / "last.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # land somewhere inside a later epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert not (killed / "results.json").exists(), "the run finished before it could be killed"

    assert (killed / "run.lock").exists()  # the killed holder could not release it
    capsys.readouterr()
    assert main(["train", "--resume", str(killed), "--quiet"]) == 0
    assert f"took over run.lock from process {process.pid}" in capsys.readouterr().out
    assert not (killed / "run.lock").exists()
    a, b = weights(reference / "last.pt"), weights(killed / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = list(csv.DictReader((killed / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 13))


def test_a_lookahead_run_trains_on_from_its_average_and_ends_on_it(tiny_npz, tmp_path):
    run = tmp_path / "lookahead"
    args = ["--epochs", "2", "--ema", "0.95", "--lookahead", "--schedule", "triangle", "--lr", "0.05"]
    assert main(tiny_args(tiny_npz, run, *args)) == 0
    state = torch.load(run / "last.pt", weights_only=True)
    live, average = state["model"], state["ema"]
    assert set(live) == set(average)
    assert all(torch.equal(live[k], average[k]) for k in live)  # put back after the last epoch
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert float(rows[-1]["val_acc"]) > 0.5  # 4 classes: it learned through the pulls


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(
        tiny_args(
            tiny_npz, run, "--epochs", "2", "--lr", "1e12", "--schedule", "constant", "--weight-decay", "0"
        )
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "loss became non-finite at step" in err and "--grad-clip" in err
    assert not (run / "last.pt").exists()  # no NaN weights were saved over a good state


def test_max_steps_and_early_stopping(tiny_npz, tmp_path):
    run = convtrain.train(
        dataset=f"npz:{tiny_npz}",
        model="lenet5",
        batch_size=64,
        epochs=5,
        max_steps=3,
        out=str(tmp_path / "steps"),
        quiet=True,
        plots=False,
    )
    assert len(run.history) == 1 and run.results["stop_reason"] == "reached --max-steps 3"
    assert torch.load(run.last_path, weights_only=True)["step"] == 3

    run = convtrain.train(
        dataset=f"npz:{tiny_npz}",
        model="lenet5",
        batch_size=64,
        epochs=8,
        lr=1e-12,
        monitor="val_acc",
        patience=2,
        out=str(tmp_path / "patience"),
        quiet=True,
        plots=False,
    )
    assert len(run.history) == 3 and run.results["stop_reason"].startswith("early stop")


def test_python_api_returns_history_model_and_paths(tiny_rgb_npz, tmp_path):
    run = convtrain.train(
        dataset=f"npz:{tiny_rgb_npz}",
        model="lenet5-bn",
        epochs=2,
        batch_size=32,
        optimizer="adamw",
        lr=2e-3,
        schedule="cosine",
        warmup_epochs=0.5,
        ema=0.9,
        label_smoothing=0.1,
        grad_clip=1.0,
        class_weights="balanced",
        out=str(tmp_path / "api"),
        quiet=True,
        plots=False,
    )
    assert len(run.history) == 2 and run.best_path.is_file()
    assert isinstance(run.model, torch.nn.Module)
    model, card = convtrain.load_run(run.path).load_model()
    assert card["in_channels"] == 3 and model(torch.zeros(2, 3, 32, 32)).shape == (2, 4)


def test_taken_run_folder_and_missing_resume_are_refused(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_args(tiny_npz, run, "--epochs", "1")) == 0
    assert main(tiny_args(tiny_npz, run, "--epochs", "1")) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "no config.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("steepest", [1e-3, 2e-2, 0.5])
def test_lr_find_suggests_the_steepest_point_of_a_known_loss_curve(steepest):
    lrs = torch.logspace(-5, 1, 61).tolist()  # ten points per decade
    # A smooth step down in log(lr), falling fastest exactly at `steepest`, then blowing up past 3.
    x = torch.tensor(lrs).log10()
    losses = (2.0 - torch.tanh(2.5 * (x - math.log10(steepest))) + torch.relu(x - 0.5) ** 2).tolist()
    suggested = steepest_descent(lrs, losses)
    assert abs(math.log10(suggested) - math.log10(steepest)) <= 0.101  # within one grid step (0.1 decade)


def test_lr_find_suggests_a_value_and_writes_a_plot(tiny_npz, tmp_path, capsys):
    plot = tmp_path / "lr.png"
    code = main(
        [
            "lr-find",
            "--dataset",
            f"npz:{tiny_npz}",
            "--model",
            "lenet5",
            "--batch-size",
            "32",
            "--steps",
            "30",
            "--start",
            "1e-4",
            "--end",
            "10",
            "--plot",
            str(plot),
            "--quiet",
        ]
    )
    assert code == 0 and plot.stat().st_size > 1000
    suggested = float(capsys.readouterr().out.split("suggested lr:")[1].split()[0])
    assert 1e-4 <= suggested <= 10


def test_lr_find_steps_like_training_with_each_groups_own_rate(tiny_npz, tmp_path, monkeypatch):
    # lr-find calls training's own step: the run's clipping and precision, and each group's own rate
    # (the backbone at 0.1x the head with --backbone-lr-mult 0.1), scaled together by the sweep.
    from convtrain.training import lr_find

    seen = []
    real_step = lr_find.train_step

    def step(net, criterion, optimizer, scaler, x, y, precision, grad_clip=0.0):
        seen.append((precision, grad_clip, sorted(g["lr"] for g in optimizer.param_groups)))
        return real_step(net, criterion, optimizer, scaler, x, y, precision, grad_clip)

    monkeypatch.setattr(lr_find, "train_step", step)
    config = TrainConfig(
        dataset=f"npz:{tiny_npz}",
        model="lenet5",
        batch_size=32,
        backbone_lr_mult=0.1,
        grad_clip=0.5,
        quiet=True,
    )
    result = lr_find.lr_find(config, start=1e-4, end=1.0, steps=12, out=str(tmp_path / "lr.png"))
    assert len(seen) == len(result["lrs"]) >= 10
    for (precision, clip, (backbone, head)), lr in zip(seen, result["lrs"], strict=False):
        assert precision == "fp32" and clip == 0.5
        assert head == pytest.approx(lr) and backbone == pytest.approx(0.1 * lr)
    seen.clear()
    with pytest.raises(ConfigError, match="lr.csv: end the name in .png"):
        lr_find.lr_find(config, out=str(tmp_path / "lr.csv"))
    assert seen == []  # refused before the sweep trained a step


@pytest.mark.slow
def test_default_run_reaches_99_percent_on_mnist(tmp_path):
    """The quick-start job itself: defaults, bundled MNIST, CPU."""
    env = {**os.environ, "CONVTRAIN_DATA": str(tmp_path / "empty-data-root")}
    out = tmp_path / "default"
    done = subprocess.run(
        [sys.executable, "-m", "convtrain", "train", "--out", str(out), "--quiet", "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["test_images"] == 10000
    assert results["test_acc"] >= 0.99, results


def test_ctrl_c_stops_cleanly_with_a_resumable_checkpoint(tiny_npz, tmp_path):
    run = tmp_path / "interrupted"
    command = [sys.executable, "-m", "convtrain", *tiny_args(tiny_npz, run, "--epochs", "200")]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A child inherits an ignored SIGINT (as from a background shell job): give it Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while not (run / "last.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "interrupted; last.pt holds epoch" in out and "Traceback" not in err
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] + 1 == len(state["history"])  # a consistent epoch-boundary state


@pytest.mark.parametrize("drop_last, steps", [(True, 6), (False, 7)])
def test_drop_last_decides_whether_the_short_batch_trains(tiny_npz, tmp_path, drop_last, steps):
    # 480 images, 10% validation -> 432 training images: 6 full batches of 64 and one of 48
    run = convtrain.train(
        dataset=f"npz:{tiny_npz}",
        model="lenet5",
        batch_size=64,
        epochs=1,
        drop_last=drop_last,
        out=str(tmp_path / "run"),
        quiet=True,
        plots=False,
    )
    assert torch.load(run.last_path, weights_only=True)["step"] == steps


# ----- which weights the final test measures; the untrained model before training -----


def test_test_weights_last_tests_the_final_weights_and_the_after_commands_follow(tiny_npz, tmp_path, capsys):
    # val_acc reaches 100% in epoch 2 and stays there: best.pt keeps epoch 2, last.pt epoch 3
    run = convtrain.train(
        dataset=f"npz:{tiny_npz}",
        model="lenet5",
        batch_size=64,
        epochs=3,
        lr=0.05,
        monitor="val_acc",
        test_weights="last",
        ema=0.9,
        out=str(tmp_path / "run"),
        quiet=True,
        plots=False,
    )
    assert run.results["test_weights"] == "last.pt"
    assert torch.load(run.best_path, weights_only=True)["epoch"] < 3
    state = torch.load(run.last_path, weights_only=True)
    loaded, _ = convtrain.load_run(
        run.path
    ).load_model()  # follows the run's test_weights; with EMA, the average
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state["ema"][key]), key
    assert not all(torch.equal(state["ema"][k], state["model"][k]) for k in state["model"])
    again = convtrain.evaluate(run.path, write=False)
    assert again["checkpoint"] == "last.pt"
    assert again["loss"] == pytest.approx(run.results["test_loss"], rel=1e-5)
    best = convtrain.evaluate(run.path, which="best", write=False)
    assert best["checkpoint"] == "best.pt" and best["loss"] != pytest.approx(again["loss"], rel=1e-5)


def test_unknown_weights_are_refused_in_one_line(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_args(tiny_npz, run, "--epochs", "1")) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--weights", "newest"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: weights 'newest' must be best, last or a .pt file") and err.count("\n") == 1
    assert main(["train", "--dataset", f"npz:{tiny_npz}", "--test-weights", "final"]) == 2
    assert "test_weights must be one of best, last" in capsys.readouterr().err


def test_eval_before_measures_the_untrained_model(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_args(tiny_npz, run, "--epochs", "1", "--eval-before")) == 0
    printed = capsys.readouterr().out
    assert printed.index("before training: val loss") < printed.index("epoch 1/1")
    results = json.loads((run / "results.json").read_text())
    assert 0.0 <= results["before_val_accuracy"] <= 0.6  # 4 classes: chance is 25%
    assert results["before_val_loss"] > results["final_val_loss"]


def test_a_resumed_run_keeps_its_before_training_figures(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_args(tiny_npz, run, "--epochs", "1", "--eval-before")) == 0
    first = json.loads((run / "results.json").read_text())
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("before training:") == 1  # measured once, not again on resume
    resumed = json.loads((run / "results.json").read_text())
    assert resumed["epochs"] == 2
    assert resumed["before_val_accuracy"] == first["before_val_accuracy"]

"""The run folder: one writer (run.lock), a config that is never changed, RunDir as the one reader/writer."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import convtrain
import helpers
from convtrain.base.errors import CheckpointError, ConfigError
from convtrain.cli import main
from convtrain.config.train_config import TrainConfig
from convtrain.runs.lock import RunFolderBusy, RunLock
from convtrain.runs.run_dir import RunDir

SRC = str(Path(convtrain.__file__).resolve().parents[1])


def tiny_config(npz: Path, **changes) -> TrainConfig:
    return helpers.tiny_config(npz, **{"epochs": 1, **changes})


def cli(npz: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "convtrain", "train", "--dataset", f"npz:{npz}", "--model", "lenet5"] + [
        "--batch-size",
        "64",
        "--out",
        str(out),
        "--quiet",
        "--no-plots",
        *extra,
    ]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}


# ----- one writer -----


def test_two_processes_racing_for_one_folder_leave_one_coherent_run(tiny_npz, tmp_path):
    out = tmp_path / "raced"
    racers = [
        subprocess.Popen(
            cli(tiny_npz, out, "--epochs", "2", "--seed", str(seed)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
        for seed in (1, 2)
    ]
    errors = [p.communicate(timeout=300)[1].decode() for p in racers]
    codes = sorted(p.returncode for p in racers)
    assert codes == [0, 2], errors
    loser = errors[[p.returncode for p in racers].index(2)].strip()
    assert loser.startswith("error: run folder") and "\n" not in loser
    assert "in use by process" in loser or "already holds a run" in loser
    winner_seed = yaml.safe_load((out / "config.yaml").read_text())["seed"]
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["config"]["seed"] == winner_seed and len(last["history"]) == 2
    assert len((out / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs of one run
    assert json.loads((out / "results.json").read_text())["epochs"] == 2
    assert not (out / "run.lock").exists()  # released by the winner
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_live_holder_refuses_others_and_a_dead_ones_lock_is_recognised(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = RunLock(folder / "run.lock")
    assert holder.acquire(takeover=False) == ""
    info = json.loads((folder / "run.lock").read_text())
    assert info["pid"] == os.getpid() and info["host"] and info["started"]
    with pytest.raises(RunFolderBusy, match=f"in use by process {os.getpid()}"):
        RunLock(folder / "run.lock").acquire(takeover=True)  # alive: even --resume is refused
    holder.release()
    assert not (folder / "run.lock").exists()

    # A process that dies holding the lock (SIGKILL) leaves the file but not the flock.
    code = "from pathlib import Path; from convtrain.runs.lock import RunLock; import os; "
    code += f"RunLock(Path({str(folder / 'run.lock')!r})).acquire(False); os._exit(0)"
    subprocess.run([sys.executable, "-c", code], env=child_env(), check=True)
    assert (folder / "run.lock").exists()
    with pytest.raises(RunFolderBusy, match="no longer running; continue it with --resume"):
        RunLock(folder / "run.lock").acquire(takeover=False)
    taker = RunLock(folder / "run.lock")
    assert "no longer running" in taker.acquire(takeover=True)
    assert json.loads((folder / "run.lock").read_text())["pid"] == os.getpid()
    taker.release()


def test_resume_of_a_folder_whose_holder_is_alive_is_refused(tiny_npz, tmp_path, capsys):
    out = tmp_path / "busy"
    process = subprocess.Popen(
        cli(tiny_npz, out, "--epochs", "200"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    try:
        for _ in range(3000):
            if (out / "last.pt").exists() or process.poll() is not None:
                break
            subprocess.run(["sleep", "0.05"])
        assert (out / "last.pt").exists(), process.stderr.read().decode()[-2000:] if process.poll() else ""
        assert main(["train", "--resume", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"in use by process {process.pid}" in err and "\n" not in err
    finally:
        process.kill()
        process.wait()


# ----- an immutable config -----


def test_config_is_frozen_and_training_twice_gives_two_folders(tiny_npz, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tiny_npz)
    original = dataclasses.replace(config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 2
    first, second = convtrain.train(config), convtrain.train(config)
    assert config == original  # nothing resolved was written back
    assert (first.path, second.path) == (Path("runs/npz-lenet5"), Path("runs/npz-lenet5-2"))
    assert first.config.out == "runs/npz-lenet5" and first.config.precision == "fp32"
    assert config.out is None and first.config.batch_size == 64
    assert RunDir(first.path).config == first.config  # config.yaml holds the resolved config


def test_an_explicit_out_trained_twice_is_refused_clearly(tiny_npz, tmp_path):
    config = tiny_config(tiny_npz, out=str(tmp_path / "once"))
    convtrain.train(config)
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        convtrain.train(config)
    assert not (tmp_path / "once" / "run.lock").exists()


def test_a_set_up_that_fails_leaves_no_run_folder_it_made(tiny_npz, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # a dataset that does not exist fails before any file is written; a model that does not exist
    # fails after the data loaded and split.json was written: neither leaves the folder it made
    assert main(["train", "--dataset", "npz:missing.npz", "--out", "bad-data", "--quiet"]) == 2
    assert main(["train", "--dataset", f"npz:{tiny_npz}", "--model", "nope", "--out", "bad-model"]) == 2
    assert main(["train", "--dataset", "npz:missing.npz", "--model", "lenet5", "--quiet"]) == 2  # runs/<name>
    assert "missing.npz" in capsys.readouterr().err
    assert not (tmp_path / "bad-data").exists() and not (tmp_path / "bad-model").exists()
    assert list((tmp_path / "runs").iterdir()) == []

    # a folder that was there before is left as it was found, with what it held
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert main(["train", "--dataset", "npz:missing.npz", "--out", str(kept), "--quiet"]) == 2
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]


# ----- RunDir -----


def test_load_run_reads_what_train_returned(tiny_run):
    run = convtrain.load_run(tiny_run)
    assert run.config.model == "lenet5" and run.card["in_channels"] == 1
    assert len(run.history) == 1 and run.results["epochs"] == 1
    model, card = run.load_model()
    x = torch.zeros(2, 1, 28, 28)
    assert torch.equal(run.model(x), model(x))
    html = run._repr_html_()
    assert "test accuracy" in html and "<img" in html and str(tiny_run) in html
    with pytest.raises(CheckpointError, match="does not exist"):
        convtrain.load_run(tiny_run.parent / "missing")


def test_limit_train_shrinks_the_validation_split_with_it(tiny_npz, tmp_path, capsys):
    run = convtrain.train(tiny_config(tiny_npz, limit_train=90, out=str(tmp_path / "limited"), quiet=False))
    train_idx, val_idx = run.read_split()
    assert len(train_idx) == 90 and len(val_idx) == 10  # 0.1 of 100, as a full run keeps 0.1 of all
    assert "validation cut to 10 of 48 images" in capsys.readouterr().out
    labels = torch.from_numpy(__import__("numpy").load(tiny_npz)["y_train"])
    assert len(set(labels[val_idx].tolist())) == 4  # still stratified: every class is validated


# ----- where the time goes -----


def test_timings_cover_the_whole_run_and_reach_the_report_and_the_cli(tiny_npz, tmp_path, capsys):
    import time

    from convtrain.system.timings import PHASES, format_timings

    started = time.perf_counter()
    run = convtrain.train(tiny_config(tiny_npz, epochs=2, plots=True, out=str(tmp_path / "timed")))
    wall = time.perf_counter() - started
    timings = json.loads(run.results_path.read_text())["timings"]
    assert set(PHASES) <= set(timings) and all(timings[p] >= 0 for p in PHASES)
    measured = sum(timings[p] for p in PHASES if p != "startup")  # startup is before train() was called
    assert abs(measured - wall) <= 0.1 * wall, (measured, wall, timings)
    assert timings["pictures"] > 0 and timings["first_step"] > 0 and timings["checkpoints"] > 0
    assert "Where the time went" in run.report_path.read_text()

    assert main([*cli(tiny_npz, tmp_path / "cli")[3:], "--epochs", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    written = json.loads((tmp_path / "cli" / "results.json").read_text())["timings"]
    assert last == format_timings(written) and last.startswith(f"time {written['total']:.1f}s: startup")


def test_files_are_written_with_the_usual_permissions(tmp_path):
    from convtrain.base.atomic_files import write_text_atomic

    mask = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600

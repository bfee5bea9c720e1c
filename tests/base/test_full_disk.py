"""A full, read-only or vanished disk is one line naming the file, the space and the fix (exit 2 on
the CLI), never a traceback; nothing is half-written, the last good checkpoint loads, and --resume
goes on once there is room. A run that cannot fit is refused before its first epoch.

The run tests use a real small filesystem (a tmpfs) where this machine lets the tests mount one;
the writer tests inject the OSError a full disk raises, so they run everywhere.

    .venv/bin/python -m pytest tests/base/test_full_disk.py -q
"""

from __future__ import annotations

import errno
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import convtrain
from convtrain.base import atomic_files
from convtrain.base.atomic_files import atomic_write, write_text_atomic
from convtrain.base.errors import DataWarning, DiskError
from convtrain.cli import main
from convtrain.data.dataset_registry import load_dataset
from convtrain.runs.checkpoint import checkpoint_bytes, load_checkpoint, save_checkpoint
from convtrain.training.loop import fit
from helpers import copy_run, tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FULL = OSError(errno.ENOSPC, "No space left on device")


def _full_disk_at_fsync(monkeypatch) -> None:
    """From now on every write through atomic_write meets a full disk as it flushes."""

    def fsync(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_files.os, "fsync", fsync)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs: a real filesystem that fills up. Skipped where the machine refuses the mount (the
    injected tests below cover every writer there)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"this machine does not let the tests mount a tmpfs ({done.stderr.strip()[:80]})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(folder: Path) -> Path:
    """Write zeros into `folder` until its disk is full; the filler file."""
    filler = folder / "filler"
    with open(filler, "wb") as file:
        try:
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


# ----- one writer -----


def test_a_full_disk_while_writing_is_one_line_and_the_old_file_stays(tmp_path, monkeypatch):
    target = tmp_path / "metrics.csv"
    write_text_atomic(target, "epoch\n1\n")
    _full_disk_at_fsync(monkeypatch)
    with pytest.raises(DiskError) as raised:
        write_text_atomic(target, "epoch\n1\n2\n")
    line = str(raised.value)
    assert "\n" not in line and str(target) in line and "no space left on its disk" in line
    assert "free on" in line and "free some space there or write to another disk" in line
    assert target.read_text() == "epoch\n1\n"  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary left behind


def test_a_file_that_cannot_fit_is_refused_before_a_byte_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic_files, "free_bytes", lambda folder: 1_000_000)
    with pytest.raises(
        DiskError, match=r"writing .*big.bin needs 5.0 MB and its disk \(.*\) has 1.0 MB free"
    ):
        atomic_write(tmp_path / "big.bin", lambda file: file.write(b"\0" * 5_000_000), size=5_000_000)
    assert list(tmp_path.iterdir()) == []


def test_torch_saves_zip_error_on_a_full_disk_is_the_disks_one_line(tmp_path, monkeypatch):
    """torch.save turns ENOSPC into RuntimeError('unexpected pos') raised while handling it."""
    real_save = torch.save

    def save_on_full_disk(state, file):
        real_save(state, file)
        try:
            raise FULL
        except OSError:  # as torch does: the OSError is the context, not the cause
            raise RuntimeError(  # noqa: B904
                "[enforce fail at inline_container.cc:672] . unexpected pos 2676608 vs 2676504"
            )

    monkeypatch.setattr(torch, "save", save_on_full_disk)
    with pytest.raises(DiskError, match=r"cannot write .*last.pt, no space left on its disk: it needs "):
        save_checkpoint(tmp_path / "last.pt", {"model": {"w": torch.zeros(1000)}})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.EROFS, "its file system is read-only; choose a folder that can be written"),
        (errno.EDQUOT, "the disk quota is used up: .* is free on .*; free some space there"),
        (errno.EACCES, "its folder may not be written to"),
    ],
)
def test_read_only_and_quota_errors_say_what_they_are(tmp_path, monkeypatch, code, words):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic_files.tempfile, "mkstemp", refuse)
    with pytest.raises(DiskError, match=words):
        write_text_atomic(tmp_path / "x.txt", "x")


def test_a_folder_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(DiskError, match=r"cannot write .*taken/x.txt \(.*\); check the folder and the disk"):
        write_text_atomic(tmp_path / "taken" / "x.txt", "x")


def test_a_missing_file_the_writer_reads_is_not_called_a_disk_problem(tmp_path):
    def copy_missing(file):
        file.write(Path(tmp_path / "no-such-source").read_bytes())

    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "copy.bin", copy_missing)


def test_checkpoint_bytes_bound_what_torch_save_writes(tmp_path):
    state = {
        "model": {"w": torch.randn(300, 300), "b": torch.zeros(300)},
        "epoch": 3,
        "history": [{"a": 1.0}],
    }
    save_checkpoint(tmp_path / "c.pt", state)
    written = (tmp_path / "c.pt").stat().st_size
    assert written <= checkpoint_bytes(state) <= written + 100_000


def test_a_decoded_cache_that_cannot_be_written_is_skipped_with_a_note(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    for name, value in (("a", 40), ("b", 200)):
        (photos / name).mkdir(parents=True)
        for i in range(3):
            from PIL import Image

            Image.fromarray(np.full((12, 12, 3), value + i, np.uint8)).save(photos / name / f"{i}.png")
    _full_disk_at_fsync(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset(f"folder:{photos}", data_dir=str(tmp_path / "data"))
    assert len(data.train) == 6  # the run goes on
    notes = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert any(
        "skipped the decoded-image cache (cannot write" in note and "run goes on" in note for note in notes
    )
    assert not list((tmp_path / "data").rglob("*.npz"))


# ----- a run -----


def test_a_run_that_fills_the_disk_keeps_the_last_checkpoint_and_resumes(tiny_npz, tmp_path, monkeypatch):
    config = tiny_config(tiny_npz, tmp_path / "run", epochs=3)

    def full_after_the_first_epoch(row):
        if row["epoch"] == 1:
            _full_disk_at_fsync(monkeypatch)

    with pytest.raises(DiskError) as raised:
        fit(config, on_epoch=full_after_the_first_epoch)
    line = str(raised.value)
    assert "\n" not in line and "no space left on its disk" in line
    assert (
        f"last.pt is whole and holds epoch 1: once there is room, continue with: convtrain train --resume {tmp_path / 'run'}"
        in line
    )
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 0  # epoch 1, counted from 0
    monkeypatch.undo()  # room again
    run = fit(config.replace(resume=str(tmp_path / "run")))
    assert len(run.history) == 3 and 0.0 <= run.results["test_acc"] <= 1.0


def test_the_cli_says_a_full_disk_in_one_line_with_exit_2(tiny_npz, tmp_path, monkeypatch, capsys):
    def save_on_full_disk(state, file):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save_on_full_disk)  # the first checkpoint meets a full disk
    args = ["train", "--dataset", f"npz:{tiny_npz}", "--model", "lenet5", "--epochs", "1", "--quiet"]
    assert main([*args, "--no-plots", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and f"cannot write {tmp_path / 'run' / 'best.pt'}, no space left on its disk" in err[0]
    )
    assert "Nothing was saved yet: once there is room, train again" in err[0]


def test_a_disk_full_before_the_run_folder_is_claimed_leaves_no_folder(
    tiny_npz, tmp_path, monkeypatch, capsys
):
    _full_disk_at_fsync(monkeypatch)  # the lock file's holder line cannot be written
    args = ["train", "--dataset", f"npz:{tiny_npz}", "--model", "lenet5", "--epochs", "1", "--quiet"]
    assert main([*args, "--no-plots", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and f"cannot write {tmp_path / 'run' / 'run.lock'}, no space left on its disk: " in err[0]
    )
    assert not (tmp_path / "run").exists()


def test_a_run_that_cannot_fit_is_refused_before_its_first_epoch(tiny_npz, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(atomic_files, "free_bytes", lambda folder: 200_000)
    args = ["train", "--dataset", f"npz:{tiny_npz}", "--model", "lenet5", "--epochs", "1", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert (
        f"run folder {tmp_path / 'run'} (last.pt " in err[0] and "the pictures and report) needs " in err[0]
    )
    assert "200.0 kB free; free some space there, or pass --out on another disk" in err[0]
    assert not (tmp_path / "run").exists()  # the folder it made is gone again


def test_a_real_small_disk_refuses_a_run_that_cannot_fit_and_resumes_one_that_filled_it(
    tiny_npz, small_disk, capsys
):
    # lenet5's checkpoints (0.6 MB last.pt, 0.3 MB best.pt) fit a 3 MB disk; with pictures they do not
    args = ["train", "--dataset", f"npz:{tiny_npz}", "--model", "lenet5", "--epochs", "1", "--quiet"]
    assert main([*args, "--out", str(small_disk / "pictured")]) == 2
    assert "the pictures and report) needs " in capsys.readouterr().err
    assert not (small_disk / "pictured").exists()

    config = tiny_config(tiny_npz, small_disk / "run", epochs=3)
    filler = []
    with pytest.raises(DiskError) as raised:
        fit(config, on_epoch=lambda row: filler.append(_fill(small_disk)) if row["epoch"] == 1 else None)
    assert "last.pt is whole and holds epoch 1" in str(raised.value) and "\n" not in str(raised.value)
    assert not [p for p in (small_disk / "run").iterdir() if p.suffix == ".tmp"]
    assert load_checkpoint(small_disk / "run" / "last.pt")["epoch"] == 0
    filler[0].unlink()
    run = convtrain.train(config.replace(resume=str(small_disk / "run")))
    assert len(run.history) == 3


# ----- the other writers: export, the data check, the report, a sweep's seeds -----


@pytest.mark.parametrize(
    "command",
    [
        ["export", "{run}", "--format", "torchscript", "--out", "{tmp}/model.ts"],
        ["plot", "{run}"],
        ["evaluate", "{run}"],
        ["data", "check", "npz:{npz}", "--split", "test", "--out", "{tmp}/check"],
    ],
    ids=["export", "plot", "evaluate", "data-check"],
)
def test_every_writer_says_a_full_disk_in_one_line(
    command, tiny_run, tiny_npz, tmp_path, monkeypatch, capsys
):
    run = copy_run(tiny_run, tmp_path / "run")
    argv = [part.format(run=run, tmp=tmp_path, npz=tiny_npz) for part in command]
    _full_disk_at_fsync(monkeypatch)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write " in err[0] and "no space left on its disk" in err[0], err
    assert not [p for p in tmp_path.rglob("*.tmp")]  # nothing half-written

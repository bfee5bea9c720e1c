"""Ctrl-C at any moment of a run stops it cleanly: exit 130, no traceback, a last.pt that loads.

A SIGINT that lands inside torch.save used to surface as torch's zip-writer error ("unexpected pos"),
a traceback and exit 1. Here many SIGINTs land at seeded random moments of tiny runs with large checkpoints (a 4M-parameter
net, one step per epoch), in one child process that runs the CLI again and again: half of them within
30 ms of a checkpoint write starting, the others anywhere in an epoch (training, validation, writes).
"""

from __future__ import annotations

import collections
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch

from convtrain.runs.checkpoint import interrupts_deferred

DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, os, random, signal, sys, threading, time
    import torch
    from convtrain.cli import main

    npz, root, runs, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)

    def writing(out):  # a checkpoint's temporary file exists: torch.save is writing it
        return any(name.endswith(".tmp") and ".pt." in name for name in os.listdir(out))

    def interrupt_later(out, delay, while_writing):
        while not os.path.exists(os.path.join(out, "last.pt")):  # the first epoch is on disk
            time.sleep(0.002)
        while while_writing and not writing(out):
            time.sleep(0.001)
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGINT)

    for number in range(runs):
        out = os.path.join(root, f"run{number}")
        # every other run aims at a checkpoint being written, the rest at any moment of an epoch
        while_writing = number % 2 == 0
        delay = rng.uniform(0.0, 0.03 if while_writing else 0.4)
        timer = threading.Thread(target=interrupt_later, args=(out, delay, while_writing))
        timer.start()
        printed, errors = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
            try:
                code = main([
                    "train", "--dataset", f"npz:{npz}", "--model", "twoconv-cnn", "--epochs", "500",
                    "--limit-train", "32", "--batch-size", "32", "--val-split", "8", "--out", out,
                    "--quiet", "--no-plots",
                ])
            except BaseException as error:  # what the CLI let through: the fault this test looks for
                import traceback
                traceback.print_exc(file=errors)
                code = f"raised {type(error).__name__}: {str(error)[:120]}"
        timer.join()
        record = {"delay": delay, "while_writing": while_writing, "code": code, "stdout": printed.getvalue(), "stderr": errors.getvalue()}
        try:
            state = torch.load(os.path.join(out, "last.pt"), weights_only=True)
            record["epochs_in_last"] = len(state["history"])
            record["consistent"] = state["epoch"] + 1 == len(state["history"])
        except Exception as error:
            record["load_error"] = repr(error)
        print(json.dumps(record), flush=True)
    """
)


def test_ctrl_c_at_random_moments_always_stops_cleanly(tiny_npz, tmp_path):
    runs = 10
    # In memory where the machine has it: fsync to a disk would take most of the time, and a signal
    # that lands in fsync tests less than one that lands inside torch.save.
    root = Path(tempfile.mkdtemp(dir="/dev/shm")) if Path("/dev/shm").is_dir() else tmp_path
    try:
        process = subprocess.run(
            [sys.executable, "-c", DRIVER, str(tiny_npz), str(root), str(runs), "23"],
            capture_output=True,
            text=True,
            timeout=600,
            # A child inherits an ignored SIGINT (as from a background shell job): give it Ctrl-C back.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    finally:
        if root != tmp_path:
            shutil.rmtree(root, ignore_errors=True)
    assert process.returncode == 0, process.stderr[-3000:]
    records = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    assert len(records) == runs, process.stdout[-2000:]
    for record in records:
        moment = "a checkpoint write began" if record["while_writing"] else "the first last.pt"
        where = f"SIGINT {record['delay']:.3f}s after {moment}: {record['stderr'][-1500:]}"
        assert record["code"] == 130, where
        assert "Traceback" not in record["stderr"], where
        assert "load_error" not in record, where
        assert record["consistent"], where
        # the message names the epoch that last.pt really holds
        assert f"last.pt holds epoch {record['epochs_in_last']}." in record["stdout"], where


@pytest.fixture
def python_sigint():
    """Python's own Ctrl-C handler for the test. A suite started in the background (`make test &`)
    inherits SIGINT ignored, and Python then installs no handler, which the deferral leaves alone."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)  # ignored, as the user's shell asked
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_deferred_interrupt_waits_for_the_body_then_raises(python_sigint):
    finished = []
    try:
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)  # would raise here without the deferral
            finished.append("body")
    except KeyboardInterrupt:
        finished.append("interrupted after")
    assert finished == ["body", "interrupted after"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_deferred_interrupt_lets_a_torch_save_finish(tmp_path, python_sigint):
    from convtrain.runs.checkpoint import save_checkpoint

    class Interrupting(dict):
        """A state whose pickling sends Ctrl-C halfway through torch.save."""

        def __reduce_ex__(self, protocol):
            signal.raise_signal(signal.SIGINT)
            return collections.OrderedDict, (list(self.items()),)  # a type weights_only loads

    path = tmp_path / "last.pt"
    state = {"model": {"w": torch.ones(3)}, "inner": Interrupting(a=torch.zeros(2))}
    try:
        save_checkpoint(path, state)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the interrupt was swallowed")
    assert torch.equal(torch.load(path, weights_only=True)["model"]["w"], torch.ones(3))

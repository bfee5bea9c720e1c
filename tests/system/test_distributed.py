"""Two CPU processes with gloo under torchrun: one run folder, the same result as one process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import convtrain

pytestmark = [pytest.mark.xdist_group("distributed"), pytest.mark.slow]

SHORT_RUN = [
    "--dataset",
    "mnist",
    "--model",
    "lenet5",
    "--epochs",
    "1",
    "--batch-size",
    "128",
    "--limit-train",
    "4096",
    "--device",
    "cpu",
    "--quiet",
    "--no-plots",
    "--seed",
    "1",
]


def run_cli(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONVTRAIN_DIST_TIMEOUT": "60"}
    return subprocess.run(
        [sys.executable, "-m", "convtrain", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One `train --nproc 2` run (one node, two gloo processes), shared by the tests that compare with it."""
    two = tmp_path_factory.mktemp("two") / "run"
    return two, run_cli(["train", "--nproc", "2", "--out", str(two), *SHORT_RUN])


def test_two_gloo_processes_match_one_process(two_processes, tmp_path):
    two, done = two_processes
    one = tmp_path / "one"
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 1/1") == 1, "only rank 0 prints"
    assert "2 processes" in done.stdout
    done = run_cli(["train", "--out", str(one), *SHORT_RUN])
    assert done.returncode == 0, done.stderr[-3000:]

    assert sorted(p.name for p in two.iterdir() if not p.name.startswith("events")) == sorted(
        p.name for p in one.iterdir() if not p.name.startswith("events")
    )
    assert len(list(two.glob("events.out.tfevents.*"))) == 1, "the run folder is written once"
    results_two = json.loads((two / "results.json").read_text())
    results_one = json.loads((one / "results.json").read_text())
    assert results_two["test_images"] == results_one["test_images"] == 10000  # every test image counted once
    # lenet5 has no BatchNorm: 2 x 64 images give the same averaged gradient as 1 x 128
    assert abs(results_two["test_acc"] - results_one["test_acc"]) < 0.01, (results_two, results_one)

    model, card = convtrain.load_run(two).load_model()  # the checkpoint from 2 ranks loads in one process
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    w_two = torch.load(two / "last.pt", weights_only=True)["model"]
    w_one = torch.load(one / "last.pt", weights_only=True)["model"]
    assert all(torch.allclose(w_two[k], w_one[k], atol=1e-4) for k in w_one)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def test_two_nodes_on_localhost_match_one_node_with_two_processes(two_processes, tmp_path):
    # Two torchrun launches, one per "node", meeting through c10d rendezvous; gloo between them.
    nodes, (one, done) = tmp_path / "nodes", two_processes
    rendezvous = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d"]
    rendezvous += ["--rdzv-endpoint", f"localhost:{free_port()}", "--rdzv-id", "convtrain-two-nodes"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONVTRAIN_DIST_TIMEOUT": "60"}
    launches = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", *rendezvous, "--node-rank", str(rank)]
            + ["-m", "convtrain", "train", "--out", str(nodes), *SHORT_RUN],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank in (0, 1)
    ]
    outputs = [launch.communicate(timeout=600) for launch in launches]
    assert [launch.returncode for launch in launches] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sum(out.count("epoch 1/1") for out, _ in outputs) == 1, "only the global rank 0 prints"
    assert len(list(nodes.glob("events.out.tfevents.*"))) == 1, "one run folder, written once"
    assert done.returncode == 0, done.stderr[-3000:]
    results_nodes = json.loads((nodes / "results.json").read_text())
    results_one = json.loads((one / "results.json").read_text())
    assert results_nodes["test_images"] == results_one["test_images"] == 10000
    w_nodes = torch.load(nodes / "last.pt", weights_only=True)["model"]
    w_one = torch.load(one / "last.pt", weights_only=True)["model"]
    assert all(torch.allclose(w_nodes[k], w_one[k], atol=1e-6) for k in w_one)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_killed_rank_stops_the_other_with_an_error(tmp_path):
    run = tmp_path / "killed"
    args = ["train", "--nproc", "2", "--out", str(run), *SHORT_RUN]
    args[args.index("--epochs") + 1] = "50"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONVTRAIN_DIST_TIMEOUT": "30"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "convtrain", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 180
    while not (run / "config.yaml").exists() and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.1)
    workers = _children(launcher.pid)
    assert len(workers) >= 2, "torchrun did not start two workers"
    os.kill(workers[-1], signal.SIGKILL)
    started = time.time()
    try:
        launcher.wait(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            for pid in workers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    assert launcher.returncode != 0
    assert time.time() - started < 120
    error = launcher.stderr.read()
    assert "error: distributed run failed: process " in error and "ended with signal SIGKILL" in error, error
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_bad_input_under_nproc_is_the_processes_one_line_and_exit_2(tmp_path):
    args = ["train", "--nproc", "2", "--out", str(tmp_path / "bad"), *SHORT_RUN]
    args[args.index("--dataset") + 1] = "mnits"
    done = run_cli(args, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    # both processes refused the same input: the line is said once; torchrun's log lines are not shown
    assert len(lines) == 1 and lines[0].startswith("error: unknown dataset 'mnits'"), lines
    bad = tmp_path / "bad"
    assert not bad.exists() or not any(bad.iterdir()), "nothing written"

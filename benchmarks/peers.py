"""Benchmark 5, the peers side by side: LeNet-5 on MNIST, one epoch, as a whole process each.

Four contenders train the same network (convtrain's `lenet5`) on the same 60,000 MNIST training
images with the same optimizer (SGD, lr 0.01, momentum 0.9, constant), batch size 128 and shuffling,
in two modes:

- defaults: what each gives a user who changes nothing else. convtrain with its progress line,
  fp32, channels_last on the CPU; Lightning's Trainer as it comes (logger, checkpoint, progress
  bar and model summary on), fp32, NCHW;
- best: each at its fastest for this job. convtrain with `--precision auto` (bf16 where the CPU
  has bf16 units) and `--quiet`; Lightning lean (no logger, checkpoint or progress bar), with
  `precision="bf16-mixed"` where the CPU has bf16 units, else fp32, and the model and each batch
  in channels_last. The tutorial and bare loops are the same in both modes.

The contenders:

- convtrain: `python -m convtrain train ...` (device loader, no validation split, no pictures; it
  also writes its run folder and measures the test split, as a real run does);
- PyTorch Lightning: a lean LightningModule over a TensorDataset of the normalised tensors and a
  DataLoader (no logger, no checkpointing, no progress bar, no validation) - the `bench` extra;
- the tutorial loop: torchvision's MNIST dataset decoding each image through PIL with ToTensor and
  Normalize, a DataLoader with 0 workers, `.to(device)` and `running_loss += loss.item()`;
- a bare loop over the normalised tensors in memory: permute, index, forward, backward, step.

Each is a separate process, started in interleaved rounds (the order reverses every round, after a
discarded warm-up round). The parent takes the whole-process wall time and the peak resident memory
(os.wait4's ru_maxrss); each child reports the seconds of its training epoch.

    python -m benchmarks.run --only peers [--quick]
    python -m benchmarks.peers worker lightning --threads 1 --count 6400 --mode best   # one child
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import MNIST_MEAN, MNIST_STD, REPO, median, mnist_tensors, ratio_median, spread, table

LR, MOMENTUM, BATCH = 0.01, 0.9, 128
CONTENDERS = ("convtrain", "lightning", "tutorial", "bare")
MODES = ("defaults", "best")


# ----- the children: one epoch each, printing {"epoch_seconds": s} as their last line -----


def _model():
    import torch

    from convtrain.models import build_model

    torch.manual_seed(0)
    return build_model("lenet5", 1, 10, 28)


def run_lightning(count: int, out: Path, mode: str) -> float:
    import lightning as L
    import torch
    import torch.nn.functional as F

    from convtrain.system.runtime import cpu_bf16_units

    best = mode == "best"
    layout = torch.channels_last if best else torch.contiguous_format

    class LitLeNet(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _model().to(memory_format=layout)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x.contiguous(memory_format=layout)), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LR, momentum=MOMENTUM)

    x, y = mnist_tensors(count)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    lean = dict(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    precision = "bf16-mixed" if best and cpu_bf16_units() else "32-true"
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        precision=precision,
        default_root_dir=str(out),
        **(lean if best else {}),
    )
    module = LitLeNet()
    started = time.perf_counter()
    trainer.fit(module, loader)
    return time.perf_counter() - started


def run_tutorial(count: int, out: Path, mode: str) -> float:
    import torch
    import torchvision
    from torchvision import transforms

    from benchmarks.tutorial import mnist_root, tutorial_rate

    dataset = torchvision.datasets.MNIST(
        mnist_root(out),
        train=True,
        transform=transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
        ),
    )
    dataset = torch.utils.data.Subset(dataset, range(count))
    return count / tutorial_rate(dataset, "lenet5", 0, torch.device("cpu"), (1, 28))


def run_bare(count: int, out: Path, mode: str) -> float:
    import torch
    import torch.nn.functional as F

    x, y = mnist_tensors(count)
    model = _model().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    started = time.perf_counter()
    for idx in torch.randperm(count).split(BATCH):
        loss = F.cross_entropy(model(x[idx]), y[idx])  # x[idx]: (B, 1, 28, 28)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def run_convtrain(count: int, out: Path, mode: str) -> float:
    from convtrain.cli import main

    code = main(
        ["train", "--dataset", "mnist", "--model", "lenet5", "--epochs", "1", "--batch-size", str(BATCH)]
        + ["--optimizer", "sgd", "--lr", str(LR), "--momentum", str(MOMENTUM), "--no-nesterov"]
        + ["--weight-decay", "0", "--schedule", "constant", "--val-split", "0", "--limit-train", str(count)]
        + ["--no-plots", "--out", str(out / "run")]
        + (["--precision", "auto", "--quiet"] if mode == "best" else [])
    )
    if code:
        raise SystemExit(code)
    return json.loads((out / "run" / "results.json").read_text())["training_seconds"]


WORKERS = {"convtrain": run_convtrain, "lightning": run_lightning, "tutorial": run_tutorial, "bare": run_bare}


def worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers worker")
    parser.add_argument("name", choices=CONTENDERS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--count", type=int, default=60000)
    parser.add_argument("--mode", choices=MODES, default="best")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="convtrain-peers-") as out:
        seconds = WORKERS[args.name](args.count, Path(out), args.mode)
    print(json.dumps({"epoch_seconds": seconds}), flush=True)
    return 0


# ----- the parent: interleaved rounds of whole processes -----


def one_process(name: str, threads: int, count: int, mode: str = "best") -> dict[str, float]:
    """Start one child; its wall time, peak memory (MiB) and the epoch seconds it reports."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": f"{REPO}:{REPO / 'src'}"}
    command = [sys.executable, "-m", "benchmarks.peers", "worker", name, "--threads", str(threads)]
    command += ["--count", str(count), "--mode", mode]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    output = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"{name} exited with {child.returncode}: {output[-500:]}")
    epoch = json.loads(output.strip().splitlines()[-1])["epoch_seconds"]
    return {"wall": wall, "epoch": epoch, "peak_mib": usage.ru_maxrss / 1024}


def run(quick: bool = False, threads_list: tuple[int, ...] = (2,)) -> str:
    rounds = 1 if quick else 3
    count = 6400 if quick else 60000
    title = (
        f"### The peers side by side (LeNet-5, MNIST {count} images, one epoch, batch {BATCH}, SGD; "
        f"whole processes, {rounds} interleaved rounds after a warm-up, medians)\n\n"
    )
    try:
        import lightning  # noqa: F401
    except ImportError:
        return title + "skipped: PyTorch Lightning is not installed (pip install 'convtrain[bench]')"
    rows = []
    for mode, threads in [(mode, threads) for mode in MODES for threads in threads_list]:
        figures: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
        for round_ in range(rounds + 1):
            for name in CONTENDERS if round_ % 2 == 0 else CONTENDERS[::-1]:
                result = one_process(name, threads, count, mode)
                if round_:
                    figures[name].append(result)
        ours = figures["convtrain"]
        for name in CONTENDERS:
            theirs = figures[name]
            epoch = [r["epoch"] for r in theirs]
            wall = [r["wall"] for r in theirs]
            rows.append(
                [
                    mode,
                    threads,
                    name,
                    f"{median(epoch):.2f} ({spread(epoch)})",
                    f"{median(wall):.2f} ({spread(wall)})",
                    f"{median([r['peak_mib'] for r in theirs]):.0f}",
                    f"{ratio_median(epoch, [r['epoch'] for r in ours]):.2f}x",
                    f"{ratio_median(wall, [r['wall'] for r in ours]):.2f}x",
                ]
            )
        print(f"  peers: {mode}, {threads} thread(s) done", flush=True)
    header = [
        "mode",
        "threads",
        "contender",
        "epoch s",
        "whole process s",
        "peak MiB",
        "epoch vs convtrain",
        "process vs convtrain",
    ]
    return (
        title
        + table(header, rows)
        + "\n\nepoch s: the training epoch as each contender times it; whole process: start to exit, imports "
        "included; x: the contender's time over convtrain's, per round (above 1: convtrain is faster)."
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        sys.exit(worker(sys.argv[2:]))
    print(run(quick="--quick" in sys.argv))

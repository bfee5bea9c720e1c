"""Worker processes for many runs on one machine: CPU threads split between them, or one GPU each.

Each worker is a fresh (spawned) process that keeps its datasets between runs (data/memory_cache.py), so a
dataset is read once per worker and only the model is rebuilt per run. Spawn, not fork: a fork of a
process whose OpenMP pool has already run can hang in its first parallel region.

    start_workers(2, my_loop, arg)   # my_loop(index, arg) in two processes; join() them
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any, TextIO

import torch

from convtrain.base.errors import ConvtrainError
from convtrain.config.train_config import TrainConfig
from convtrain.data.memory_cache import keep_datasets


def start_workers(jobs: int, loop: Callable[..., None], *args: Any) -> list[multiprocessing.Process]:
    """Start `jobs` processes running loop(index, *args); `loop` must be a module-level function."""
    context = multiprocessing.get_context("spawn")
    threads = max(1, torch.get_num_threads() // jobs)
    workers = [
        context.Process(target=_worker_main, args=(loop, index, threads, *args), daemon=True)
        for index in range(jobs)
    ]
    for worker in workers:
        worker.start()
    return workers


def _worker_main(loop: Callable[..., None], index: int, threads: int, *args: Any) -> None:
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for anything the worker starts in turn
    try:
        with keep_datasets():
            loop(index, *args)
    except ConvtrainError as error:  # one line, as the CLI prints it, instead of a worker's traceback
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def worker_device(config: TrainConfig, index: int) -> TrainConfig:
    """With several GPUs, worker i trains on GPU i (mod the count); otherwise the config as given."""
    count = torch.cuda.device_count()
    if count > 1 and config.device in ("auto", "cuda"):
        return config.replace(device=f"cuda:{index % count}")
    return config


class PrefixedLines(io.TextIOBase):
    """A text stream that writes each whole line to `stream` behind a prefix ('[seed 3] ')."""

    def __init__(self, stream: TextIO, prefix: str) -> None:
        self.stream, self.prefix, self.pending = stream, prefix, ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.stream.write(f"{self.prefix}{line}\n")
        self.stream.flush()
        return len(text)


def prefixed(prefix: str):
    """Inside this block, print() goes to stdout line by line behind `prefix`."""
    return redirect_stdout(PrefixedLines(sys.stdout, prefix))


def silenced():
    """Inside this block, print() output is dropped (a sweep prints one line per trial instead)."""
    return redirect_stdout(io.StringIO())

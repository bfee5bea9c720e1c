"""Several processes, one run: PyTorch's DistributedDataParallel under torchrun.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; with them present, training joins the process
group (NCCL on GPUs, gloo on CPUs), each rank draws its own shard of every batch, metrics are
summed across ranks, and only rank 0 prints and writes files.

    torchrun --nproc-per-node 2 -m convtrain train --device cpu
"""

from __future__ import annotations

import datetime
import gc
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist

from convtrain.base.atomic_files import write_text_atomic
from convtrain.base.errors import ConfigError, first_line


def world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) when run alone."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("LOCAL_RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
    )


def cuda_device_of(local_rank: int) -> torch.device:
    """This process's GPU (one per process, by LOCAL_RANK), made current; refused in one line when
    the machine has fewer GPUs than processes (torch would fail later with "invalid device ordinal")."""
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(
            f"process {local_rank} on this machine needs GPU {local_rank}, but there are {count}: "
            f"use --nproc {count} or fewer (one process per GPU), or --device cpu"
        )
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def start(device: torch.device) -> None:
    """Join the process group; a rank that stops answering fails the others within the timeout."""
    if dist.is_initialized() or world()[2] == 1:
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=float(os.environ.get("CONVTRAIN_DIST_TIMEOUT", 120)))
    dist.init_process_group(backend=backend, timeout=timeout)


def stop(completed: bool) -> None:
    """Leave the process group, and take its connections and threads down now, while the interpreter
    is whole. Left to the interpreter's exit, gloo's teardown can abort the process ("terminate called
    without an active exception", exit code -6). The first DDP wrapper a process makes is held by a
    reference cycle, garbage that only the collector frees, and the wrapper keeps the group alive:
    without a collection here, that may be during the exit. So the caller drops its own reference to
    the wrapper first; this collects, which frees the wrapper, then destroys the group.

    After a completed run every rank first waits for the others, so that none takes its connections
    down while another still uses them. After an error there is no wait: a rank that failed never
    arrives, and the others would sit out the whole timeout."""
    if not dist.is_initialized():
        return
    if completed:
        dist.barrier()
    gc.collect()  # the DDP wrapper's cycle, and with it its hold on the group
    dist.destroy_process_group()


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def sum_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks in place (a no-op alone)."""
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_text(text: str) -> str:
    """Rank 0's string on every rank (e.g. the run folder it chose)."""
    if not dist.is_initialized():
        return text
    box = [text]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


ERRORS_ENV = "CONVTRAIN_ERRORS_DIR"  # set by launch() for the processes it starts


def launch(nproc: int, argv: list[str]) -> int:
    """Re-run this command under torchrun with `nproc` processes on this machine. The exit code is 2
    when a process refused its input (it has said why in one line), else 1 on any failure."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    # torchrun's own log lines (thread settings, which process it stops) would bury the one line that matters
    for name in ("torch.distributed.run", "torch.distributed.elastic"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    args = ["--standalone", f"--nproc-per-node={nproc}", "-m", "convtrain", *argv]
    errors = tempfile.TemporaryDirectory(prefix="convtrain-errors-")
    os.environ[ERRORS_ENV] = errors.name  # the processes write their one-line errors there (refusal)
    try:
        torchrun_main(args)
    except ChildFailedError as error:
        failures = sorted(error.failures.items())
        if any(failure.exitcode == 2 for _, failure in failures):
            _say_refusals(Path(errors.name))
            return 2
        # Once one process fails, torchrun stops the others with SIGTERM, and a peer of a killed process
        # fails with an error of its own: the cause is a process killed by another signal, if any.
        caused = [(rank, failure) for rank, failure in failures if failure.exitcode != -signal.SIGTERM]
        rank, failure = min(caused or failures, key=lambda item: (item[1].exitcode >= 0, item[0]))
        how = f"signal {failure.signal_name()}" if failure.exitcode < 0 else f"exit code {failure.exitcode}"
        print(f"error: distributed run failed: process {rank} ended with {how}", file=sys.stderr)
        return 1
    except Exception as error:
        print(f"error: distributed run failed: {first_line(error)}", file=sys.stderr)
        return 1
    finally:
        os.environ.pop(ERRORS_ENV, None)
        errors.cleanup()
    return 0


def refusal(line: str) -> None:
    """Say a process's one-line error. Under launch() each process writes it to a file of its own
    and the launcher says each different line once, in process order: every process reads the same
    input and would otherwise print the same line."""
    folder = os.environ.get(ERRORS_ENV)
    if folder and world()[2] > 1 and Path(folder).is_dir():  # else the launcher is gone
        try:  # written whole (a temporary file, renamed), in case torchrun stops this process meanwhile
            write_text_atomic(Path(folder) / f"{world()[0]:06d}.txt", line + "\n")
            return
        except OSError:
            pass  # say it here
    print(line, file=sys.stderr)


def _say_refusals(folder: Path) -> None:
    said: list[str] = []
    for path in sorted(folder.glob("*.txt")):
        line = path.read_text().rstrip("\n")
        if line not in said:
            said.append(line)
            print(line, file=sys.stderr)

"""Checkpoints: atomic save and safe load of plain dicts of state_dicts and tensors.

A checkpoint is a plain dict of state_dicts and tensors, written to a temporary file and renamed,
so a crash never leaves a half-written best.pt or last.pt. Ctrl-C waits while one is written
(`interrupts_deferred`). Loading uses weights_only=True: a file that tries to unpickle code is
refused, never executed; and it loads on the CPU, whatever device trains (`load_state_dict` puts each
tensor where it belongs; torch's RNG state must stay a CPU tensor).

    ckpt = load_checkpoint("runs/mnist-fastnet-tiny/best.pt")
"""

from __future__ import annotations

import pickle
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from convtrain.base.atomic_files import atomic_write
from convtrain.base.errors import CheckpointError, first_line
from convtrain.system.runtime import rng_state, set_rng_state


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` atomically; one that cannot fit on the disk is refused before a byte is written."""
    with interrupts_deferred():
        atomic_write(path, lambda file: torch.save(state, file), size=checkpoint_bytes(state))


def checkpoint_bytes(state: Any) -> int:
    """About what torch.save writes for `state`: its tensors' bytes, plus a zip record for each and
    the pickled rest (an upper bound within a few kB)."""
    tensors = list(_tensors(state))
    return sum(t.untyped_storage().nbytes() for t in tensors) + 128 * len(tensors) + 64_000


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back while the body runs, then raise it as usual.

    A KeyboardInterrupt inside torch.save leaves its zip writer half done, and the error that writer
    raises on the way out ("unexpected pos") replaces the KeyboardInterrupt: a traceback and exit 1
    instead of a clean stop. Only the main thread receives signals; elsewhere this does nothing.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield  # another thread, or SIGINT ignored / left to the OS: nothing to defer
        return
    caught: list[tuple[int, Any]] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        previous(*caught[0])  # Python's default handler raises KeyboardInterrupt here


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; refuse anything that would execute code while unpickling."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train a run first or check the path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch raises this for corrupt bytes too; an unsafe file names the global it refused
        unsafe = [line for line in str(error).splitlines() if "global" in line.lower()]
        if not unsafe:
            raise CheckpointError(
                f"checkpoint {path} is unreadable or corrupt; retrain or restore it"
            ) from None
        first_line = unsafe[0]
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds more than weights ({first_line[:120]}); "
            "only load checkpoints written by convtrain"
        ) from None
    except Exception as error:  # outside bytes: torch's unpickler raises struct, zip, Runtime... errors
        raise CheckpointError(
            f"checkpoint {path} is unreadable or truncated ({type(error).__name__}); retrain or restore it"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} has no 'model' weights; it was not written by convtrain")
    return state


@dataclass
class TrainState:
    """Everything --resume needs, saved and loaded as one object: last.pt is state_dict()."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    ema: Any = None  # a WeightAverage, or None without --ema
    epoch: int = -1  # the last finished epoch, counted from 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_value: float | None = None
    before: dict[str, float] = field(default_factory=dict)  # --eval-before's figures
    config: dict[str, Any] = field(default_factory=dict)  # the resolved TrainConfig, for the record

    PARTS: ClassVar = ("model", "optimizer", "scheduler", "scaler", "ema")  # objects with state_dict()
    VALUES: ClassVar = ("epoch", "step", "history", "best_value", "before", "config")

    def state_dict(self) -> dict[str, Any]:
        state = {name: _part_state(getattr(self, name)) for name in self.PARTS}
        state.update({name: getattr(self, name) for name in self.VALUES})
        state["rng"] = rng_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Every part from `state`; a part whose saved state does not fit (a checkpoint from a
        convtrain whose network or optimizer had other parameters) is a one-line CheckpointError."""
        for name in self.PARTS:
            part = getattr(self, name)
            if part is not None and state.get(name) is not None:
                try:
                    part.load_state_dict(state[name])
                except (RuntimeError, ValueError, KeyError) as mismatch:
                    raise CheckpointError(
                        f"the checkpoint's {name} state does not fit this run's {name} ({first_line(mismatch)}); it was saved by "
                        "another convtrain version (model.json has it): resume with that version, or start a new "
                        "run from its weights with --init-from RUN_DIR:last"
                    ) from None
        for name in self.VALUES:
            setattr(self, name, state.get(name, getattr(self, name)))
        set_rng_state(state["rng"])


def _part_state(part: Any) -> Any:
    return None if part is None else part.state_dict()

"""Checkpoints and the model card: everything a run folder needs to be used without its trainer.

A checkpoint is a plain dict of state_dicts and tensors, written to a temporary file and renamed,
so a crash never leaves a half-written best.pt or last.pt. Loading uses weights_only=True: a
file that tries to unpickle code is refused, never executed.

    ckpt = load_checkpoint("runs/mnist-mnist-cnn/best.pt")
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from convtrain.errors import CheckpointError

CARD_NAME = "model.json"


def atomic_write(path: Path, write: Any) -> None:
    """Call write(file_object) on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda file: file.write(text.encode()))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda file: torch.save(state, file))


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
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path} is unreadable or truncated ({type(error).__name__}); retrain or restore it"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} has no 'model' weights; it was not written by convtrain")
    return state


def write_model_card(run_dir: Path, card: dict[str, Any]) -> None:
    write_text_atomic(Path(run_dir) / CARD_NAME, json.dumps(card, indent=2) + "\n")


def read_model_card(run_dir: str | Path) -> dict[str, Any]:
    """The model card: architecture, classes, input channels/size and normalisation."""
    path = Path(run_dir) / CARD_NAME
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; pass the folder `convtrain train` wrote")
    if not path.is_file():
        raise CheckpointError(f"run folder {run_dir} has no {CARD_NAME}; it is not a complete convtrain run")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise CheckpointError(f"{path} is not valid JSON; restore it or retrain the run") from None
    missing = [
        k for k in ("architecture", "classes", "in_channels", "image_size", "mean", "std") if k not in card
    ]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; it is not a convtrain model card")
    return card


def tested_weights(run_dir: str | Path) -> str:
    """'best' or 'last': the weights the run's final test measured (test_weights in its config.yaml)."""
    from convtrain.config import read_yaml

    path = Path(run_dir) / "config.yaml"
    choice = read_yaml(path).get("test_weights", "best") if path.is_file() else "best"
    return choice if choice in ("best", "last") else "best"


def load_model(run_dir: str | Path, which: str | None = None, device: str | torch.device = "cpu"):
    """Rebuild the network of a run folder from its model card and load its weights.

    Returns (model in eval mode, card). `which` is 'best' or 'last' (or a path to a .pt file); None
    takes the weights the run's final test measured. With EMA the averaged weights are loaded: best.pt
    holds only those, last.pt holds them beside the raw ones.
    """
    from convtrain.models import build_model

    run_dir = Path(run_dir)
    card = read_model_card(run_dir)
    which = which or tested_weights(run_dir)
    if which not in ("best", "last") and not which.endswith(".pt"):
        raise CheckpointError(f"weights {which!r} must be best, last or a .pt file of the run")
    path = Path(which) if which.endswith(".pt") else run_dir / f"{which}.pt"
    state = load_checkpoint(path, map_location=device)
    model = build_model(card["architecture"], card["in_channels"], len(card["classes"]), card["image_size"])
    weights = state["ema"] if state.get("ema") is not None else state["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        detail = str(error).splitlines()[0]
        raise CheckpointError(
            f"checkpoint {path} does not fit {card['architecture']} with {len(card['classes'])} classes "
            f"({detail[:160]}); it belongs to another architecture or class count"
        ) from None
    return model.to(device).eval(), card

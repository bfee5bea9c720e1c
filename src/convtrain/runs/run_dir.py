"""The run folder, and the one class that names, reads and writes every file in it.

runs/mnist-fastnet-tiny/
  run.lock       held while a process trains into the folder: its pid, host and start time
  config.yaml    the fully resolved TrainConfig
  model.json     model card: architecture, classes, input size/channels, mean/std
  split.json     the train/validation indices
  excluded.json  training images left out by --exclude (split.json counts after removing them)
  metrics.csv    one row per epoch
  best.pt        weights with the best monitored validation metric
  last.pt        full training state for --resume
  results.json   final metrics, test loss/accuracy
  evaluation_<split>.json, per_class_<split>.csv, confusion_<split>.csv   from `convtrain evaluate`
  plots/explain_{mistakes,correct}_<split>.png   heat maps, from `convtrain evaluate --explain`
  plots/*.png, report.html   pictures and the report page
  events.out.tfevents.*      TensorBoard scalars

Every module goes through RunDir for these files, so there is one idea of what a run is. Files are
replaced atomically, so `evaluate`, `predict`, `plot` and `export` may read a folder while it trains.

    run = convtrain.load_run("runs/mnist-fastnet-tiny")
    run.results["test_acc"], run.history[-1], run.model
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from convtrain.base.atomic_files import (
    check_room,
    disk_error,
    human_bytes,
    write_json_atomic,
    write_text_atomic,
)
from convtrain.base.errors import CheckpointError, ConfigError, first_line
from convtrain.config.train_config import TrainConfig, read_yaml
from convtrain.models import build_model
from convtrain.runs.checkpoint import load_checkpoint, save_checkpoint
from convtrain.runs.file_formats import (
    evaluation_tables,
    metrics_text,
    parse_card,
    parse_metrics,
    parse_split,
    split_json,
)
from convtrain.runs.lock import RunLock
from convtrain.runs.notebook import run_html

WEIGHTS = ("best", "last")
# the pictures, report.html and the small files: 0.86 MB for a LeNet-5 run on MNIST (measured 2026-12-06);
# 4 MB leaves room for RGB photos, 100 classes and split.json for 50,000 images
PICTURES_BYTES = 4_000_000


class RunFile:
    """A file name in the run folder: `run.config_path` is run.path / "config.yaml"."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, run: RunDir | None, owner: type | None = None) -> Any:
        return self if run is None else run.path / self.name


def numbered(base: Path) -> Path:
    """base, or base-2, base-3... : the first that does not exist yet."""
    candidate, number = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{number}")
        number += 1
    return candidate


class Folder:
    """A folder of convtrain's making, named by its path (a run, a seeds folder, a sweep)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)


class RunDir(Folder):
    """A run folder: its file names, readers and writers. Read attributes (config, card, history,
    results, model) load lazily from disk; a finished `convtrain.train` fills them from memory."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._lock: RunLock | None = None
        self._made = False  # claim() made the folder: a set-up that fails removes it (abandon)
        self._loaded: dict[str, Any] = {}

    @classmethod
    def of(cls, run: str | Path | RunDir) -> RunDir:
        """A RunDir as given, or one for a path."""
        return run if isinstance(run, RunDir) else cls(run)

    # ----- names -----
    config_path = RunFile("config.yaml")
    card_path = RunFile("model.json")
    split_path = RunFile("split.json")
    excluded_path = RunFile("excluded.json")
    metrics_path = RunFile("metrics.csv")
    results_path = RunFile("results.json")
    lock_path = RunFile("run.lock")
    best_path = RunFile("best.pt")
    last_path = RunFile("last.pt")
    plots_dir = RunFile("plots")
    report_path = RunFile("report.html")

    def weights_path(self, which: str) -> Path:
        """best.pt, last.pt, or a .pt file given by path."""
        if which in WEIGHTS:
            return self.path / f"{which}.pt"
        if which.endswith(".pt"):
            return Path(which)
        raise CheckpointError(f"weights {which!r} must be best, last or a .pt file of the run")

    def evaluation_paths(self, split: str) -> tuple[Path, Path, Path]:
        """evaluation_<split>.json, per_class_<split>.csv and confusion_<split>.csv."""
        return (
            self.path / f"evaluation_{split}.json",
            self.path / f"per_class_{split}.csv",
            self.path / f"confusion_{split}.csv",
        )

    def explanation_paths(self, split: str) -> tuple[Path, Path]:
        """plots/explain_mistakes_<split>.png and plots/explain_correct_<split>.png: the heat-map
        galleries of `convtrain evaluate --explain` (highest losses; right predictions per class)."""
        return (
            self.plots_dir / f"explain_mistakes_{split}.png",
            self.plots_dir / f"explain_correct_{split}.png",
        )

    # ----- creating and claiming -----
    @classmethod
    def new(cls, out: str | Path | None, dataset: str, model: str) -> RunDir:
        """`out` as given, or runs/<dataset>-<model>, numbered -2, -3... when already taken."""
        if out:
            return cls(out)
        return cls(numbered(Path("runs") / f"{dataset.split(':')[0]}-{model.replace(':', '-')}"))

    def holds_run(self) -> bool:
        return self.last_path.exists() or self.config_path.exists()

    def claim(self, resume: bool) -> str:
        """Take the folder for this process alone: a new run needs a folder without a run in it,
        --resume one with last.pt. Returns a note when a dead holder's lock was taken over."""
        self._made = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = RunLock(self.lock_path)
            taken_over = self._lock.acquire(resume)
        except OSError as error:  # a full or read-only disk: one line, and no empty folder left
            if self._made and self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()
            raise disk_error(self.lock_path, error) from None
        try:
            if resume and not self.last_path.is_file():
                raise ConfigError(
                    f"cannot resume {self.path}: it has no last.pt; pass a run folder that trained an epoch"
                )
            if not resume and self.holds_run():
                raise ConfigError(
                    f"run folder {self.path} already holds a run; pass --resume {self.path} or another --out"
                )
        except BaseException:
            self.release()
            raise
        return taken_over

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def abandon(self) -> None:
        """Give the folder up after a set-up that failed (bad input, Ctrl-C): released, and removed
        when this claim made it, so that a bad --dataset leaves no empty run folder behind. A folder
        that existed before is left as it was found, less the lock."""
        made, self._made = self._made, False
        self.release()
        if made:  # nothing in it predates this process, which held the lock from its making
            shutil.rmtree(self.path, ignore_errors=True)

    # ----- config, card, split -----
    def write_config(self, config) -> None:
        import yaml

        write_text_atomic(self.config_path, yaml.safe_dump(config.to_dict(), sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        """config.yaml as a dict of options (a run of an older convtrain may lack newer fields)."""

        self._require_folder()
        if not self.config_path.is_file():
            raise CheckpointError(
                f"run folder {self.path} has no config.yaml; it is not a complete convtrain run"
            )
        return read_yaml(self.config_path)

    @property
    def config(self):
        """The run's TrainConfig, as resolved and saved when it started."""
        if "config" not in self._loaded:
            self._loaded["config"] = TrainConfig.from_dict(self.read_config(), source=str(self.config_path))
        return self._loaded["config"]

    def write_card(self, card: dict[str, Any]) -> None:
        write_json_atomic(self.card_path, card)

    @property
    def card(self) -> dict[str, Any]:
        """The model card: architecture, classes, input channels/size and normalisation."""
        if "card" not in self._loaded:
            self._loaded["card"] = self._read_card()
        return self._loaded["card"]

    def _read_card(self) -> dict[str, Any]:
        self._require_folder()
        if not self.card_path.is_file():
            raise CheckpointError(
                f"run folder {self.path} has no model.json; it is not a complete convtrain run"
            )
        return parse_card(self.card_path)

    def write_split(self, train_idx: torch.Tensor, val_idx: torch.Tensor) -> None:
        write_json_atomic(self.split_path, split_json(train_idx, val_idx), compact=True)

    def write_excluded(self, record: dict[str, Any]) -> None:
        write_json_atomic(self.excluded_path, record)

    def read_excluded(self) -> dict[str, Any] | None:
        """What --exclude left out of training, or None for a run that excluded nothing."""
        return json.loads(self.excluded_path.read_text()) if self.excluded_path.is_file() else None

    def read_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(train_idx, val_idx) as the run held them out."""
        path = self.split_path
        if not path.is_file():
            raise CheckpointError(
                f"{path} does not exist; this run folder has no saved train/validation split"
            )
        return parse_split(path)

    # ----- metrics and results -----
    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.csv from the whole history (so a resumed run never keeps stale rows)."""
        write_text_atomic(self.metrics_path, metrics_text(history))

    @property
    def history(self) -> list[dict[str, float]]:
        """metrics.csv as one dict per epoch (empty before the first epoch ends)."""
        if "history" in self._loaded:
            return self._loaded["history"]
        if not self.metrics_path.is_file():
            return []
        return parse_metrics(self.metrics_path)

    def write_results(self, results: dict[str, Any]) -> None:
        write_json_atomic(self.results_path, results)

    @property
    def results(self) -> dict[str, Any]:
        """results.json (empty while the run trains)."""
        if "results" in self._loaded:
            return self._loaded["results"]
        try:
            values = json.loads(self.results_path.read_text()) if self.results_path.is_file() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return values if isinstance(values, dict) else {}

    def write_evaluation(self, result: dict[str, Any], name: str | None = None) -> list[Path]:
        """evaluation_<name>.json, per_class_<name>.csv and confusion_<name>.csv; name is the split's
        unless given (a subset of it)."""
        paths = self.evaluation_paths(name or result["split"])
        write_json_atomic(paths[0], {**result, "files": [str(p) for p in paths]})
        per_class, confusion = evaluation_tables(result)
        write_text_atomic(paths[1], per_class)
        write_text_atomic(paths[2], confusion)
        return list(paths)

    # ----- weights -----
    def check_room(self, last_bytes: int, best_bytes: int, pictures: bool, resumed: bool) -> None:
        """Refuse, before the first epoch, a run whose files cannot fit on its disk: last.pt and best.pt,
        one more last.pt while it is rewritten (the old file stays until the new one is whole), and the
        pictures and report at the end. A resumed run's checkpoints are on the disk already."""
        needed = (
            last_bytes + (0 if resumed else last_bytes + best_bytes) + (PICTURES_BYTES if pictures else 0)
        )
        files = f"last.pt {human_bytes(last_bytes)} " + (
            "once more" if resumed else "twice while it is rewritten"
        )
        files += "" if resumed else f", best.pt {human_bytes(best_bytes)}"
        what = f"run folder {self.path} ({files}{', the pictures and report' if pictures else ''})"
        check_room(self.path, needed, what, "free some space there, or pass --out on another disk")

    def save_weights(self, which: str, state: dict[str, Any]) -> None:
        save_checkpoint(self.weights_path(which), state)

    def load_state(self, which: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        return load_checkpoint(self.weights_path(which), map_location)

    def tested_weights(self) -> str:
        """'best' or 'last': the weights the run's final test measured (test_weights in config.yaml)."""
        choice = self.read_config().get("test_weights", "best") if self.config_path.is_file() else "best"
        return choice if choice in WEIGHTS else "best"

    def load_model(self, which: str | None = None, device: str | torch.device = "cpu"):
        """(network rebuilt from the card with its weights loaded, in eval mode; card).

        `which` is 'best', 'last' or a .pt path; None takes the weights the run's final test measured.
        With EMA the averaged weights are loaded: best.pt holds only those, last.pt both.
        """
        card = self.card
        which = which or self.tested_weights()
        path = self.weights_path(which)
        state = load_checkpoint(path)  # on the CPU; the model moves to `device` once built
        weights = state["ema"] if state.get("ema") is not None else state["model"]
        return self.model_with(weights, path).to(device), card

    def model_with(self, weights: dict[str, torch.Tensor], source: str | Path = "weights") -> torch.nn.Module:
        """The network rebuilt from the card with `weights` loaded (copied): on the CPU, in eval mode."""
        card = self.card
        model = build_model(
            card["architecture"], card["in_channels"], len(card["classes"]), card["image_size"]
        )
        try:
            model.load_state_dict(weights)
        except (RuntimeError, TypeError, AttributeError) as error:
            raise CheckpointError(
                f"checkpoint {source} does not fit {card['architecture']} with {len(card['classes'])} classes "
                f"({first_line(error)[:160]}); it belongs to another architecture or class count"
            ) from None
        return model.eval()

    @property
    def model(self) -> torch.nn.Module:
        """The network with the weights the final test measured, on the CPU, in eval mode."""
        if "model" not in self._loaded:
            self._loaded["model"] = self.load_model()[0]
        return self._loaded["model"]

    def remember(self, **values: Any) -> None:
        """Keep values known in memory (config, history, results, model) instead of reading them back."""
        self._loaded.update(values)

    # ----- in a notebook -----
    def _repr_html_(self) -> str:

        return run_html(self)

    def _require_folder(self) -> None:
        if not self.path.is_dir():
            raise CheckpointError(
                f"run folder {self.path} does not exist; pass the folder `convtrain train` wrote"
            )

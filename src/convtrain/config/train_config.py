"""TrainConfig: every option of a training run, in one flat dataclass.

The CLI builds its `train` flags from these fields, a YAML file (`--config`) or a packaged recipe
(`--recipe`) sets any of them, and `config.yaml` in each run folder is this dataclass written out.
Precedence, lowest first: defaults < the model's own training options < recipe < config file <
command-line flags. Five options (batch_size, lr, momentum, weight_decay, label_smoothing) default to
None, "the model's own": `with_model_defaults` fills them when the job starts, so `--model lenet5`
alone trains LeNet-5 with the generic SGD settings and the default fastnet-tiny with its own.

    convtrain train --model lenet5 --epochs 5 --optimizer adam --lr 1e-3
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from convtrain.base.errors import ConfigError
from convtrain.data.augment import parse_augment
from convtrain.models.init_schemes import INIT_SCHEMES
from convtrain.models.model_registry import ADAM_TRAINING, GENERIC_TRAINING, own_training

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "linear", "triangle")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
MONITORS = ("val_loss", "val_acc")
TEST_WEIGHTS = ("best", "last")
LOADERS = ("device", "stream")
CLASS_WEIGHTS = ("none", "balanced")
CHANNELS_LAST = ("auto", "on", "off")
PRETRAINED_LIBRARY = "library"  # --pretrained alone: the library's own weights for a timm:/torchvision: model


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a run. Frozen: resolving 'auto' values makes a new config (`replace`)."""

    # ----- data -----
    dataset: str = "mnist"
    """A registered name (mnist, fashion-mnist, cifar10, cifar100), folder:PATH or npz:PATH."""
    data_dir: str | None = None
    """Where datasets live; None means $CONVTRAIN_DATA, else ~/.cache/convtrain."""
    image_size: int | None = None
    """Side in pixels that images are resized to; None keeps the dataset's own size."""
    channels: int | None = None
    """1 (gray) or 3 (RGB); None keeps the dataset's own (folders: the majority of files)."""
    val_split: float = 0.1
    """Held-out validation: a fraction below 1 (0.1) or a count of images (5000); 0 for none."""
    augment: str | None = None
    """Comma list applied on the device per batch, e.g. 'flip,crop:4,rotate:15,cutout:8,mixup:0.2', or
    'none'; unset, the small-data rule: translate:2 (and flip for RGB) up to 2,000 training images."""
    normalize: bool = True
    """Normalise pixels with the dataset's mean/std; off only scales them to 0-1."""
    loader: str = "device"
    """'device' keeps the split as uint8 on the training device; 'stream' reads files with workers."""
    workers: int = 2
    """DataLoader worker processes for the 'stream' loader."""
    drop_last: bool = True
    """Drop the last short training batch of each epoch (keeps BatchNorm off tiny batches)."""
    limit_train: int = 0
    """Use only the first N training images after the split (quick trials); 0 uses all. A fractional
    val_split shrinks in proportion (2000 train images at 0.1 keep 222 for validation)."""
    strict: bool = False
    """Refuse a folder dataset with unreadable images instead of skipping them."""
    exclude: str | None = None
    """Train without these training images: an issues.csv from `convtrain data check`, or a file of
    indices (into the dataset's train split) or folder file paths, one per line; excluded.json records them."""
    cache: bool = True
    """Keep a folder or csv dataset's decoded pixels in the data folder's decoded/ cache for later runs."""
    csv_columns: str | None = None
    """csv:PATH datasets: the path and label columns, e.g. 'file,label' (default: found by name)."""
    download: bool = True
    """Download a missing registered dataset (and --pretrained library weights) from its public address."""

    # ----- model -----
    model: str = "fastnet-tiny"
    """A name from `convtrain models`, or timm:NAME / torchvision:NAME (`convtrain models --source timm`)."""
    init: str = "default"
    """Weight init: default (PyTorch's), kaiming, xavier, or normal (mean 0, std 0.02)."""
    pretrained: str | None = dataclasses.field(default=None, metadata={"flag_alone": PRETRAINED_LIBRARY})
    """Start from pretrained weights: 'library' (the flag alone) takes timm's or torchvision's weights for a
    timm:/torchvision: model from their local cache; a path loads a .safetensors or .pth file."""
    init_from: str | None = None
    """Start from an earlier run's weights: RUN_DIR (its best.pt) or RUN_DIR:last. Same architecture; the
    optimizer, schedule and epochs start fresh (unlike --resume); other classes get a new head."""

    # ----- optimisation -----
    epochs: int | None = None
    """Passes over the training split; unset, 2, or more for a small dataset (at least 40 steps, at most
    40 epochs: convtrain/training/epochs_and_size.py), said in the run's first line."""
    batch_size: int | str | None = None
    """Images per step (global across processes), or 'auto' for the largest that fits on the GPU;
    unset, the model's own (`convtrain models` lists each model's)."""
    optimizer: str = "sgd"
    """sgd, adam or adamw."""
    lr: float | None = None
    """Peak learning rate; unset, the model's own (`convtrain models` lists each model's)."""
    momentum: float | None = None
    """SGD momentum (adam/adamw: beta1); unset, the model's own."""
    nesterov: bool = True
    """Nesterov momentum for SGD."""
    weight_decay: float | None = None
    """L2 penalty (sgd, adam) or decoupled decay (adamw); unset, the model's own."""
    schedule: str = "onecycle"
    """constant, step, cosine, onecycle, linear (decay to zero) or triangle (the CIFAR-10 speed
    records': from 0.2 of the peak up to it after 0.23 of the steps, then down to 0.07 of it)."""
    warmup_epochs: float = 0.0
    """Linear warm-up from 0 to lr over this many epochs, before the schedule."""
    step_epochs: int = 10
    """'step' schedule: multiply lr by step_gamma every this many epochs."""
    step_gamma: float = 0.1
    """'step' schedule: factor applied every step_epochs."""
    label_smoothing: float | None = None
    """Cross-entropy label smoothing, 0 to <1; unset, the model's own."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this value; 0 for no clipping."""
    ema: float = 0.0
    """Decay of an exponential moving average of the weights (e.g. 0.999); 0 for none."""
    lookahead: bool = False
    """With --ema: every 5 steps training goes on from the average (the speed records' Lookahead),
    whose decay grows over the run from 0 to ema^5."""
    class_weights: str = "none"
    """'balanced' weighs the loss by inverse class frequency, for imbalanced data."""
    monitor: str = "val_loss"
    """Validation metric that picks best.pt and drives early stopping: val_loss or val_acc."""
    epoch_eval: str = "val"
    """Split measured after every epoch: 'val', or 'test' as some tutorials do (it then also picks best.pt)."""
    test_weights: str = "best"
    """Weights the final test measures: best (best.pt, picked by --monitor) or last (after the final
    epoch, as the classic tutorials test); evaluate, predict, export and the report follow it."""
    test: bool = True
    """Measure the test split once training ends. --no-test leaves it unread, for choosing settings on
    the validation split (seeds, sweeps); evaluate, predict --index and the report then use val too,
    until `convtrain evaluate RUN --split test` reads it once at the end."""
    eval_before: bool = False
    """Also measure the epoch-eval split before the first step: the untrained model's (chance) accuracy."""
    patience: int = 0
    """Stop after this many epochs without improvement of the monitored metric; 0 never stops."""
    max_time: float = 0.0
    """Stop after the epoch that passes this many seconds of training; 0 for no limit."""
    max_steps: int = 0
    """Stop after this many optimizer steps (smoke tests); 0 for no limit."""
    freeze_epochs: int = 0
    """Train only the classifier head for this many epochs, then everything; fewer than epochs."""
    backbone_lr_mult: float = 1.0
    """The backbone's lr as a multiple of the head's: discriminative rates, e.g. 0.1 when fine-tuning."""
    train_bn: bool = False
    """While the backbone is frozen, let its BatchNorm layers learn and update their statistics."""

    # ----- runtime -----
    device: str = "auto"
    """auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps."""
    precision: str = "auto"
    """auto: bf16 on a GPU that has it, and on a CPU with bf16 units (AMX, AVX512-BF16) for a model measured
    to gain from them, else fp32 (the first line says which and why); or fp32, bf16 or fp16 (autocast; a
    gradient scaler only for fp16)."""
    channels_last: str = "auto"
    """Memory format for conv nets: auto (on for the CPU, and for CUDA with bf16/fp16), on, off."""
    compile: bool | str = False
    """torch.compile the model: true, false, or auto (on for a CUDA GPU only: on a CPU it was measured
    slower than eager for the fastnets)."""
    seed: int = 0
    """Seeds the split, initialisation, shuffling, augmentation and dropout."""
    deterministic: bool = False
    """Bitwise-repeatable GPU runs and resumes: torch's deterministic algorithms, cuDNN benchmark off,
    CUBLAS_WORKSPACE_CONFIG set (slower; an op without a deterministic version is refused)."""
    nproc: int = 1
    """Processes to launch on this machine with torchrun (one per GPU, or CPU processes)."""
    sync_bn: bool = False
    """Synchronise BatchNorm statistics across processes."""

    # ----- output -----
    out: str | None = None
    """Run folder; None means runs/<dataset>-<model>, numbered if taken."""
    resume: str | None = None
    """A run folder whose last.pt to continue from."""
    log_every: int = 0
    """Also print loss/accuracy averaged over the last N steps, every N steps; 0: one line per epoch."""
    quiet: bool = False
    """No progress bar; only the per-epoch summary lines."""
    tta: bool = False
    """Average views at the final test evaluation: the image shifted by a pixel right and down, and its
    mirror if the run trained on flips (a mirrored digit is another shape)."""
    plots: bool = True
    """Make the pictures and report.html at the end of training."""
    recipe: str | None = None
    """The packaged recipe this config started from: `--recipe`, and `convtrain.train(recipe=...)`,
    apply its options; on a TrainConfig built by hand it only records the name."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_size", _parse_batch_size(self.batch_size))  # frozen: set once here
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("schedule", self.schedule, SCHEDULES)
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("monitor", self.monitor, MONITORS)
        _one_of("init", self.init, INIT_SCHEMES)
        _one_of("loader", self.loader, LOADERS)
        _one_of("class_weights", self.class_weights, CLASS_WEIGHTS)
        _one_of("channels_last", self.channels_last, CHANNELS_LAST)
        if self.compile not in (True, False, "auto"):
            raise ConfigError(f"compile must be true, false or auto; got {self.compile!r}")
        _one_of("epoch_eval", self.epoch_eval, ("val", "test"))
        _one_of("test_weights", self.test_weights, TEST_WEIGHTS)
        if not self.test and self.epoch_eval == "test":
            raise ConfigError(
                "epoch_eval 'test' reads the test split every epoch; drop --no-test or use 'val'"
            )
        if self.epochs is not None:  # None: chosen from the dataset's size when the job starts
            _at_least("epochs", self.epochs, 1)
        _at_least("workers", self.workers, 0)
        _at_least("nproc", self.nproc, 1)
        for name in ("limit_train", "patience", "max_steps", "log_every", "step_epochs", "freeze_epochs"):
            _at_least(name, getattr(self, name), 0)
        for name in ("lr", "weight_decay", "momentum", "warmup_epochs", "grad_clip", "max_time"):
            if getattr(self, name) is not None:  # None: the model's own, filled by with_model_defaults
                _at_least(name, getattr(self, name), 0.0)
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.label_smoothing is not None and not (
            isinstance(self.label_smoothing, int | float) and 0.0 <= self.label_smoothing < 1.0
        ):
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema must be a decay in [0, 1) such as 0.999, got {self.ema}")
        if self.lookahead and not self.ema:
            raise ConfigError("lookahead goes on from the weights' average: it needs --ema, such as 0.95")
        if self.val_split < 0 or (self.val_split >= 1 and self.val_split != int(self.val_split)):
            raise ConfigError(
                f"val_split must be a fraction in [0, 1) or a whole count of images, got {self.val_split}"
            )
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"channels must be 1 (gray) or 3 (RGB), got {self.channels}")
        if self.image_size is not None and not 8 <= self.image_size <= 1024:
            raise ConfigError(f"image_size must be between 8 and 1024 pixels, got {self.image_size}")
        if self.freeze_epochs and self.epochs is not None and self.freeze_epochs >= self.epochs:
            raise ConfigError(
                f"freeze_epochs {self.freeze_epochs} must be fewer than epochs {self.epochs}, or nothing unfreezes"
            )
        if not isinstance(self.backbone_lr_mult, int | float) or not self.backbone_lr_mult > 0:
            raise ConfigError(
                f"backbone_lr_mult must be a positive factor such as 0.1, got {self.backbone_lr_mult!r}"
            )
        if self.pretrained is not None and self.init_from is not None:
            raise ConfigError(
                "pass either --pretrained or --init-from, not both: they name the starting weights"
            )
        if self.pretrained == "" or self.init_from == "":
            raise ConfigError(
                "pretrained and init_from need a value: 'library', a weights file or a run folder"
            )
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError("dataset must be a name such as mnist, or folder:PATH / npz:PATH")
        if self.augment is not None:  # unset: training/epochs_and_size.py picks it
            parse_augment(self.augment)  # raises ConfigError on a bad spec, before any work starts

    # ----- conversions -----
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        unknown = sorted(set(changes) - field_names())
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(unknown)}; see `convtrain train --help`")
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        unknown = sorted(set(values) - field_names())
        if unknown:
            raise ConfigError(
                f"{source}: unknown option(s) {', '.join(unknown)}; valid options are the flags of `convtrain train`"
            )
        try:
            return cls(**values)
        except TypeError as error:  # e.g. a list where a number belongs
            raise ConfigError(f"{source}: {error}") from None


def with_model_defaults(config: TrainConfig) -> TrainConfig:
    """The config with every option left unset (None) filled from the model's own training options
    (with adam or adamw: lr 1e-3 and beta1 0.9, whatever the model)."""
    defaults = {**GENERIC_TRAINING, **own_training(config.model)}
    if config.optimizer != "sgd":
        defaults |= ADAM_TRAINING
    unset = {name: value for name, value in defaults.items() if getattr(config, name) is None}
    return config.replace(**unset) if unset else config


def field_names() -> set[str]:
    return {f.name for f in fields(TrainConfig)}


def field_docs() -> dict[str, str]:
    """The docstring under each field, read from this file's source, for `--help`."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(following, ast.Expr):
            docs[node.target.id] = following.value.value
    return docs


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of options, with a one-line error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}; fix the syntax") from None
    except ValueError as error:  # a value YAML parses but cannot build, e.g. the date 2001-13-01
        raise ConfigError(
            f"config file {path} holds a value YAML cannot read ({error}); quote it or fix it"
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must be a mapping of option: value")
    return {str(key).replace("-", "_"): value for key, value in values.items()}


def _parse_batch_size(value: int | str | None) -> int | str | None:
    if value is None:  # the model's own, filled by with_model_defaults
        return None
    if isinstance(value, str):
        if value == "auto":
            return value
        if not value.isdigit():
            raise ConfigError(f"batch_size must be a positive whole number or 'auto', got {value!r}")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"batch_size must be a positive whole number or 'auto', got {value!r}")
    return value


def _one_of(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _at_least(name: str, value: Any, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"{name} must be a number >= {minimum}, got {value!r}")

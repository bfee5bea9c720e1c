"""The sweep file: a base config, a search space over TrainConfig fields, and how to search it.

    convtrain sweep space.yaml --trials 20

    # space.yaml
    base:                       # any TrainConfig option; `recipe: NAME` starts from a packaged recipe
      recipe: lenet5-mnist-fast
      epochs: 1
    space:
      lr: {type: log-float, low: 1.0e-4, high: 1.0e-1}
      weight_decay: {type: float, low: 0, high: 1.0e-3}
      batch_size: {type: int, low: 32, high: 256, step: 32}
      optimizer: {type: categorical, choices: [sgd, adam]}
    objective: val_acc          # val_acc (maximised) or val_loss (minimised): its best epoch is the value
    sampler: tpe                # tpe, random or grid
    pruner: median              # none, median or halving; or {name: median, startup_trials: 5, warmup_epochs: 1}
    trials: 20

Everything is checked here, before any trial: unknown fields, empty or inverted ranges, a
categorical without choices, and values at the ends of each range that TrainConfig refuses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convtrain.base.errors import ConfigError
from convtrain.config.recipes import load_recipe
from convtrain.config.train_config import TrainConfig, field_names, read_yaml

KINDS = ("float", "log-float", "int", "categorical")
OBJECTIVES = {"val_acc": "maximize", "val_loss": "minimize"}
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "halving")
KEYS = {"base", "recipe", "space", "objective", "sampler", "pruner", "trials", "seed"}
PLAIN_BASE = {"quiet": True, "plots": False}  # trial defaults: one line per trial, pictures on request


@dataclass(frozen=True)
class Param:
    """One searched field: a float/int range (optionally log or stepped) or a list of choices."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid(self, source: str) -> list[Any]:
        """Every value the grid sampler visits."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None or self.log:
            raise ConfigError(f"{source}: sampler grid needs a step (or choices) for float {self.name}")
        count = int(round((self.high - self.low) / self.step)) + 1
        return [self.low + i * self.step for i in range(count)]

    def ends(self) -> list[Any]:
        """The values at the ends of the range (every choice): each must make a valid TrainConfig."""
        if self.kind == "categorical":
            return list(self.choices)
        convert = int if self.kind == "int" else float
        return [convert(self.low), convert(self.high)]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, checked sweep file."""

    base: dict[str, Any]  # TrainConfig options (a recipe's already merged in), without trial outputs
    space: tuple[Param, ...]
    objective: str = "val_acc"
    sampler: str = "tpe"
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    trials: int = 20
    seed: int = 0
    source: str = "sweep file"

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.objective]

    def base_config(self) -> TrainConfig:
        return TrainConfig.from_dict({**PLAIN_BASE, **self.base}, source=self.source)

    def trial_config(self, params: dict[str, Any], out: str) -> TrainConfig:
        return self.base_config().replace(**params, out=out, resume=None)

    def grid_space(self) -> dict[str, list[Any]]:
        return {p.name: p.grid(self.source) for p in self.space}

    def fingerprint(self) -> str:
        """What must match for a worker to join an existing study: base, space and objective."""
        space = [p.__dict__ | {"choices": list(p.choices)} for p in self.space]
        return json.dumps(
            {"base": self.base, "space": space, "objective": self.objective}, sort_keys=True, default=str
        )

    def to_dict(self) -> dict[str, Any]:
        """The file as read, for sweep.yaml (read back by --resume)."""
        space = {}
        for p in self.space:
            if p.kind == "categorical":
                space[p.name] = {"type": "categorical", "choices": list(p.choices)}
            else:
                entry = {
                    "type": "log-float" if p.log and p.kind == "float" else p.kind,
                    "low": p.low,
                    "high": p.high,
                }
                if p.step is not None:
                    entry["step"] = p.step
                if p.log and p.kind == "int":
                    entry["log"] = True
                space[p.name] = entry
        return {
            "base": self.base,
            "space": space,
            "objective": self.objective,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "trials": self.trials,
            "seed": self.seed,
        }


def read_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; every mistake is one ConfigError naming the file and the field."""
    return parse_spec(read_yaml(path), str(path))


def parse_spec(values: dict[str, Any], source: str) -> SweepSpec:
    unknown = sorted(set(values) - KEYS)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; a sweep file has {', '.join(sorted(KEYS))}"
        )
    base = _base(values, source)
    space = values.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{source}: 'space' must map at least one TrainConfig field to a range or choices")
    params = tuple(_param(str(name).replace("-", "_"), entry, source) for name, entry in space.items())
    objective = values.get("objective", "val_acc")
    if objective not in OBJECTIVES:
        raise ConfigError(f"{source}: objective must be one of {', '.join(OBJECTIVES)}; got {objective!r}")
    sampler = values.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise ConfigError(f"{source}: sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    spec = SweepSpec(
        base,
        params,
        objective,
        sampler,
        _pruner(values.get("pruner", "none"), source),
        _count(values.get("trials", 20), "trials", source),
        _count(values.get("seed", 0), "seed", source, 0),
        source,
    )
    _check_configs(spec)
    if sampler == "grid":
        spec.grid_space()  # a float range without a step fails here
    return spec


def _base(values: dict[str, Any], source: str) -> dict[str, Any]:
    base = values.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{source}: 'base' must be a mapping of TrainConfig options")
    base = {str(k).replace("-", "_"): v for k, v in base.items()}
    recipe = values.get("recipe") or base.get("recipe")
    if recipe:
        base = {**load_recipe(recipe), **base, "recipe": recipe}
    unknown = sorted(set(base) - field_names())
    if unknown:
        raise ConfigError(
            f"{source}: unknown option(s) {', '.join(unknown)} in base; see `convtrain train --help`"
        )
    for name in ("out", "resume"):
        if base.get(name):
            raise ConfigError(
                f"{source}: base sets {name}; a sweep names each trial's folder itself (use --out DIR)"
            )
    return base


def _param(name: str, entry: Any, source: str) -> Param:
    where = f"{source}: space.{name}"
    if name not in field_names():
        raise ConfigError(
            f"{where}: unknown field {name!r}; search over the options of `convtrain train --help`"
        )
    if name in ("out", "resume"):
        raise ConfigError(f"{where}: {name} cannot be searched")
    if isinstance(entry, list):  # shorthand: a list is a categorical
        entry = {"type": "categorical", "choices": entry}
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{where}: give {{type: float|log-float|int|categorical, low, high}} or {{choices: [...]}}"
        )
    kind = entry.get("type", "categorical" if "choices" in entry else None)
    if kind not in KINDS:
        raise ConfigError(f"{where}: type must be one of {', '.join(KINDS)}; got {kind!r}")
    extra = sorted(set(entry) - {"type", "low", "high", "step", "log", "choices"})
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)}; use low, high, step, log or choices")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: a categorical needs a non-empty list of choices")
        return Param(name, kind, choices=tuple(choices))
    low, high = (_number(entry.get(end), f"{where}.{end}") for end in ("low", "high"))
    step = _number(entry["step"], f"{where}.step") if entry.get("step") is not None else None
    log = kind == "log-float" or bool(entry.get("log", False))
    if low >= high:
        raise ConfigError(
            f"{where}: the range [{low:g}, {high:g}] is {'empty' if low == high else 'inverted'}; need low < high"
        )
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range must start above 0, got low {low:g}")
    if step is not None and (step <= 0 or step > high - low):
        raise ConfigError(f"{where}: step {step:g} must be positive and at most high - low")
    if kind == "int" and any(v != int(v) for v in (low, high, step or 1)):
        raise ConfigError(f"{where}: an int range needs whole numbers")
    return Param(name, "int" if kind == "int" else "float", low, high, step, log)


def _number(value: Any, where: str) -> float:
    """A YAML number; '1e-4' (a string to YAML 1.1, which wants '1.0e-4') is taken as a number too."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{where} must be a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a number, got {value!r}") from None


def _pruner(value: Any, source: str) -> dict[str, Any]:
    pruner = {"name": value} if isinstance(value, str) else value
    if not isinstance(pruner, dict) or pruner.get("name") not in PRUNERS:
        raise ConfigError(f"{source}: pruner must be one of {', '.join(PRUNERS)} (or {{name: median, ...}})")
    allowed = {"name", "startup_trials", "warmup_epochs", "min_epochs", "reduction_factor"}
    extra = sorted(set(pruner) - allowed)
    if extra:
        raise ConfigError(
            f"{source}: unknown pruner option(s) {', '.join(extra)}; use {', '.join(sorted(allowed))}"
        )
    for key in allowed - {"name"}:
        if key in pruner:
            _count(pruner[key], f"pruner.{key}", source, 0)
    return dict(pruner)


def _count(value: Any, name: str, source: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{source}: {name} must be a whole number >= {minimum}, got {value!r}")
    return value


def _check_configs(spec: SweepSpec) -> None:
    """The base config, and the base with each end of each range, must all be valid TrainConfigs."""
    base = spec.base_config()
    if base.val_split == 0 and base.epoch_eval == "val":
        raise ConfigError(
            f"{spec.source}: {spec.objective} needs a validation split; set val_split above 0 in base"
        )
    for param in spec.space:
        for value in param.ends():
            try:
                base.replace(**{param.name: value})
            except ConfigError as error:
                raise ConfigError(
                    f"{spec.source}: space.{param.name} = {value!r} is not a valid option: {error}"
                ) from None

"""CheckConfig: every setting of one `convtrain data check`, checked once when it is made.

It sits beside TrainConfig: `check(dataset, **settings)` builds one, and the CLI's flags are its
fields. Frozen, so no part of the check can change what another part reads.

    python -c "from convtrain.datacheck.check_config import CheckConfig; print(CheckConfig(split='test', labels=True))"
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convtrain.base.errors import ConfigError
from convtrain.datacheck.crossval import SCORING_MODELS
from convtrain.datacheck.duplicates import NEAR_THRESHOLD
from convtrain.datacheck.edited_copies import EDITED_THRESHOLD
from convtrain.datacheck.labels import DEFAULT_TOP, METHODS, RANKINGS


def _whole(value: Any, least: int, flag: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"--{flag} must be a whole number of at least {least}, got {value!r}")


@dataclass(frozen=True)
class CheckConfig:
    """What to check and how. split: train, val, test or all. labels: also find label issues, which
    trains `folds` models (K-fold on train) or `scoring_models` models (when train is not checked)
    with `recipe` (default: the dataset's kind's, crossval.FAMILY_RECIPES, with more epochs for a small
    training set) or `model` with that recipe's settings; train_options overrides any TrainConfig
    field of them, e.g. {'epochs': 2}. top: the N
    most suspicious images of each checked split, ranked for review. out: a folder for check.json,
    issues.csv, ranking.csv and check.html; None writes nothing."""

    split: str = "all"
    labels: bool = False
    folds: int = 5
    model: str | None = None
    recipe: str | None = None
    out: str | Path | None = None
    data_dir: str | None = None
    near_threshold: float = NEAR_THRESHOLD
    edited_threshold: float = EDITED_THRESHOLD
    method: str = "confident_joint"
    rank_by: str = "self_confidence"
    min_share: float | None = None
    seed: int = 0
    device: str = "auto"
    train_options: dict[str, Any] | None = field(default=None, hash=False)
    quiet: bool = False
    top: int = DEFAULT_TOP
    scoring_models: int = SCORING_MODELS

    def __post_init__(self) -> None:
        if self.labels:
            _whole(self.folds, 2, "folds")
            _whole(self.top, 0, "top")
            _whole(self.scoring_models, 1, "scoring-models")
        if self.method not in METHODS or self.rank_by not in RANKINGS:
            raise ConfigError(f"method must be one of {METHODS} and rank_by one of {RANKINGS}")
        for name in ("near_threshold", "edited_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be in (0, 1], got {value!r}")

    @classmethod
    def of(cls, settings: dict[str, Any]) -> CheckConfig:
        """A CheckConfig from keyword settings; a name that is not a setting is one clear line."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(
                f"check() has no setting {', '.join(unknown)}; it takes {', '.join(sorted(known))}"
            )
        return cls(**settings)

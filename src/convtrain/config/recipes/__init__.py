"""Packaged recipes: YAML files of TrainConfig options, used with `convtrain train --recipe NAME`.

Each file may carry `description` and `published` keys that are shown by `convtrain recipes`
and are not options. Any flag given on the command line overrides the recipe.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from convtrain.base.errors import ConfigError

INFO_KEYS = ("description", "published")


def recipe_names() -> list[str]:
    return sorted(
        p.name[: -len(".yaml")] for p in resources.files(__package__).iterdir() if p.name.endswith(".yaml")
    )


def _read(name: str) -> dict[str, Any]:
    path = resources.files(__package__) / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown recipe {name!r}; `convtrain recipes` lists: {', '.join(recipe_names())}")
    return yaml.safe_load(path.read_text()) or {}


def load_recipe(name: str) -> dict[str, Any]:
    """The recipe's options, without its informational keys."""
    return {k.replace("-", "_"): v for k, v in _read(name).items() if k not in INFO_KEYS}


def format_recipes() -> str:
    rows = [(name, _read(name).get("description", "")) for name in recipe_names()]
    width = max((len(name) for name, _ in rows), default=10)
    return "\n".join(f"{name:<{width}}  {text}" for name, text in rows)

"""CheckConfig: the data check's settings, checked once when made; check() takes one or its fields."""

from __future__ import annotations

import dataclasses

import pytest

from convtrain.base.errors import ConfigError
from convtrain.cli import main
from convtrain.datacheck import check
from convtrain.datacheck.check_config import CheckConfig


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"labels": True, "folds": 1}, "--folds must be a whole number of at least 2, got 1"),
        ({"labels": True, "folds": True}, "--folds must be a whole number of at least 2, got True"),
        ({"labels": True, "top": -1}, "--top must be a whole number of at least 0, got -1"),
        ({"labels": True, "scoring_models": 0}, "--scoring-models must be a whole number of at least 1"),
        ({"method": "vote"}, "method must be one of"),
        ({"rank_by": "loss"}, "rank_by one of"),
        ({"near_threshold": 0}, "--near-threshold must be in (0, 1], got 0"),
        ({"near_threshold": 1.5}, "--near-threshold must be in (0, 1], got 1.5"),
        ({"edited_threshold": 0}, "--edited-threshold must be in (0, 1], got 0"),
        ({"edited_threshold": "high"}, "--edited-threshold must be in (0, 1], got 'high'"),
        ({"edited_threshold": True}, "--edited-threshold must be in (0, 1], got True"),
    ],
)
def test_a_bad_setting_is_refused_when_the_config_is_made(settings, message):
    with pytest.raises(ConfigError) as raised:
        CheckConfig(**settings)
    assert message in str(raised.value)


def test_folds_top_and_scoring_models_only_matter_with_labels():
    assert CheckConfig(folds=1, top=-1, scoring_models=0).labels is False


def test_it_is_frozen_and_check_takes_it_or_its_fields_but_not_both(tiny_npz):
    settings = CheckConfig(split="test", quiet=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.split = "train"  # type: ignore[misc]
    by_config = check(f"npz:{tiny_npz}", settings)
    by_keywords = check(f"npz:{tiny_npz}", split="test", quiet=True)
    assert by_config.summary["settings"] == by_keywords.summary["settings"]
    assert by_config.summary["settings"]["split"] == "test"
    with pytest.raises(ConfigError, match="not both"):
        check(f"npz:{tiny_npz}", settings, top=3)
    with pytest.raises(ConfigError, match="no setting folder, splt; it takes"):
        check(f"npz:{tiny_npz}", splt="test", folder="x")


def test_the_cli_refuses_a_bad_setting_in_one_line(tiny_npz, capsys):
    assert main(["data", "check", f"npz:{tiny_npz}", "--labels", "--folds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--folds must be" in err and "\n" not in err

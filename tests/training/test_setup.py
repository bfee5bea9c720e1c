"""The set-up's notes: what a run says before its first epoch about choices that change its figures."""

from __future__ import annotations

import pytest

import convtrain
from helpers import tiny_config


@pytest.mark.parametrize("test_weights, noted", [("best", True), ("last", False)])
def test_a_best_checkpoint_picked_on_the_test_split_is_noted(tiny_npz, tmp_path, capsys, test_weights, noted):
    config = tiny_config(tiny_npz, tmp_path / "run", epochs=1, epoch_eval="test", test_weights=test_weights)
    convtrain.train(config.replace(quiet=False, log_every=0))
    out = capsys.readouterr().out
    assert ("final test figure is chosen on the test split" in out) is noted
    assert "epoch 1/1" in out


def test_no_note_when_epochs_are_measured_on_validation(tiny_npz, tmp_path, capsys):
    convtrain.train(tiny_config(tiny_npz, tmp_path / "run", epochs=1, quiet=False, log_every=0))
    assert "chosen on the test split" not in capsys.readouterr().out

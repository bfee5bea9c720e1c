"""--no-test: a run (or seeds, or sweep trials) that leaves the test split unread until settings are chosen."""

from __future__ import annotations

import pytest

import convtrain
from convtrain.base.errors import ConfigError
from convtrain.config.train_config import TrainConfig


def test_a_run_without_test_reads_only_val_until_asked(tiny_npz, tmp_path, capsys):
    run = convtrain.train(
        dataset=f"npz:{tiny_npz}", model="lenet5", epochs=1, test=False, out=str(tmp_path / "run"), quiet=True
    )
    assert "test_acc" not in run.results and run.results["test_unread"] is True
    assert "test split left unread (--no-test)" in capsys.readouterr().out
    # the report measured the validation images only
    assert run.evaluation_paths("val")[0].is_file() and not run.evaluation_paths("test")[0].exists()
    assert convtrain.evaluate(run, write=False)["split"] == "val"  # the default follows the run
    chosen = convtrain.evaluate(run, split="test", write=False)  # read once, on request
    assert chosen["split"] == "test" and chosen["images"] == 96


def test_seeds_without_test_summarise_validation(tiny_npz, tmp_path, capsys):
    config = TrainConfig(
        dataset=f"npz:{tiny_npz}", model="lenet5", epochs=1, test=False, plots=False, quiet=True
    )
    folder = convtrain.train_seeds(config.replace(out=str(tmp_path / "seeds")), seeds=2)
    out = capsys.readouterr().out
    assert "validation accuracy (last epoch)" in out and "over 2 seeds" in out and "test accuracy" not in out
    assert folder.summary_path.is_file()


def test_no_test_with_a_test_epoch_eval_is_refused():
    with pytest.raises(ConfigError, match="drop --no-test or use 'val'"):
        TrainConfig(test=False, epoch_eval="test")

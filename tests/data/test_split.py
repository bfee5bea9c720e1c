"""Validation split: stratified, seeded, exact counts, saved and read back.

.venv/bin/python -m pytest tests/data/test_split.py -q
"""

import json

import pytest
import torch

from convtrain.base.errors import CheckpointError, ConfigError
from convtrain.data.split import split_indices
from convtrain.runs.run_dir import RunDir


def _labels(*sizes: int) -> torch.Tensor:
    """Class k repeated sizes[k] times, shuffled so classes are interleaved."""
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(sizes)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(123))]


def _check_partition(train, val, n):
    assert torch.equal(train, train.sort().values) and torch.equal(val, val.sort().values)
    assert train.dtype == val.dtype == torch.long
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(n))  # disjoint, nothing lost


def test_fraction_is_stratified_per_class():
    labels = _labels(500, 300, 200)
    train, val = split_indices(labels, 0.1, seed=0)
    _check_partition(train, val, 1000)
    assert torch.bincount(labels[val], minlength=3).tolist() == [50, 30, 20]
    assert torch.bincount(labels[train], minlength=3).tolist() == [450, 270, 180]


def test_count_and_leftovers_keep_every_class_in_training():
    labels = _labels(3, 3, 4)  # 5 of 10: quotas 1.5, 1.5, 2
    train, val = split_indices(labels, 5, seed=1)
    _check_partition(train, val, 10)
    assert len(val) == 5
    per_class = torch.bincount(labels[val], minlength=3)
    assert per_class[2] == 2 and sorted(per_class[:2].tolist()) == [1, 2]
    assert (torch.bincount(labels[train], minlength=3) >= 1).all()


def test_same_seed_same_split_other_seed_differs():
    labels = _labels(40, 40, 40)
    a = split_indices(labels, 0.25, seed=7)
    b = split_indices(labels, 0.25, seed=7)
    c = split_indices(labels, 0.25, seed=8)
    assert torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])
    assert not torch.equal(a[1], c[1])
    assert len(c[1]) == 30


def test_zero_means_no_validation():
    train, val = split_indices(_labels(5, 5), 0, seed=0)
    assert torch.equal(train, torch.arange(10)) and len(val) == 0 and val.dtype == torch.long


def test_tiny_fraction_still_holds_out_one_image():
    train, val = split_indices(_labels(10, 10), 0.01, seed=0)
    assert len(val) == 1 and len(train) == 19


@pytest.mark.parametrize("value", [10, 11, 1.5, -0.1])
def test_impossible_or_malformed_counts_are_config_errors(value):
    with pytest.raises(ConfigError, match="val_split"):
        split_indices(_labels(5, 5), value, seed=0)


def test_fraction_that_leaves_no_training_image_is_refused():
    with pytest.raises(ConfigError, match="no training images"):
        split_indices(torch.tensor([0]), 0.5, seed=0)


def test_save_and_load_round_trip(tmp_path):
    train, val = split_indices(_labels(20, 30), 0.2, seed=3)
    run = RunDir(tmp_path)
    run.write_split(train, val)
    assert json.loads(run.split_path.read_text())["val"] == val.tolist()
    loaded = run.read_split()
    assert torch.equal(loaded[0], train) and torch.equal(loaded[1], val)
    assert [p.name for p in tmp_path.iterdir()] == ["split.json"]  # no temporary file left behind


def test_load_missing_or_corrupt_split_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        RunDir(tmp_path).read_split()
    (tmp_path / "bad").mkdir()
    bad = RunDir(tmp_path / "bad")
    bad.split_path.write_text('{"train": [1, 2]')
    with pytest.raises(CheckpointError, match="not a valid split"):
        bad.read_split()

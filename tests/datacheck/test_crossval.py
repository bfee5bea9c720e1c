"""The scoring models of the label check train and score as their recipe says: its weight average
(--ema) is the model that scores, and its test-time views (tta) are the ones `evaluate --tta` uses."""

from __future__ import annotations

import pytest
import torch

from convtrain.data.dataset_registry import load_dataset
from convtrain.datacheck import crossval
from convtrain.datacheck.crossval import (
    _train_fold,
    fold_config,
    predict_probs,
    score_held_out,
    scoring_words,
)
from convtrain.evaluation.scoring import split_logits

# cifar10-fast's rules on 256 tiny photos: small batches so that two epochs take several steps
OPTIONS = {"epochs": 2, "batch_size": 32, "compile": False, "precision": "fp32"}


@pytest.fixture(scope="module")
def photos(tiny_rgb_npz):
    return load_dataset(f"npz:{tiny_rgb_npz}", in_memory=True)


def _trained(photos, **options):
    config = fold_config(None, None, {**OPTIONS, **options}, "photos")
    rows = torch.arange(len(photos.train))
    return _train_fold(photos.train, rows, photos, config, torch.device("cpu"), seed=0), config


def test_the_photo_recipe_scores_with_its_weight_average_and_test_time_views():
    config = fold_config(None, None, None, "photos")  # cifar10-fast
    assert (config.ema, config.tta, config.label_smoothing) == (0.95, True, 0.0)
    assert scoring_words(config) == "weights averaged (ema 0.95), test-time views"
    plain = fold_config(None, None, {"ema": 0.0, "tta": False}, "photos")
    assert scoring_words(plain) == ""
    assert fold_config(None, None, None, "digits").tta is False  # mnist-fast has neither


def test_the_weight_average_is_the_model_that_scores(photos):
    plain, _ = _trained(photos, ema=0.0)
    barely, _ = _trained(photos, ema=1e-6)  # an average that is all but the last weights
    averaged, _ = _trained(photos, ema=0.9)
    weights = [dict(m.named_parameters()) for m in (plain, barely, averaged)]
    gaps = [max((w[k] - weights[0][k]).abs().max().item() for k in w) for w in weights[1:]]
    assert gaps[0] < 1e-4  # the same training, read at its last step
    assert gaps[1] > 1e-3  # the average of the last ~10 steps is another model


def test_test_time_views_are_evaluate_s_and_change_the_probabilities(photos):
    model, config = _trained(photos, ema=0.0, epochs=1)
    device = torch.device("cpu")
    with_views = predict_probs(model, photos.test, photos, config, device)
    expected = split_logits(model, photos, photos.test, tta=True, mirror=True)[0].softmax(1)
    assert torch.allclose(with_views, expected, atol=1e-5)
    assert torch.allclose(with_views.sum(1), torch.ones(len(photos.test)), atol=1e-5)
    without = predict_probs(model, photos.test, photos, config.replace(tta=False), device)
    assert (with_views - without).abs().max() > 1e-4


def test_a_long_training_says_each_epoch_and_a_short_one_stays_quiet(photos, monkeypatch):
    # fastnet-tiny: a small network keeps the two trainings to about a second
    config = fold_config(None, "fastnet-tiny", {**OPTIONS, "epochs": 3, "tta": False}, "photos")
    lines: list[str] = []
    score_held_out(photos, photos.train, {"test": photos.test}, config=config, device="cpu", log=lines.append)
    assert [line for line in lines if "epoch" in line] == []  # seconds a model: no epoch lines
    monkeypatch.setattr(crossval, "PROGRESS_SECONDS", 0.0)  # as if every epoch took minutes
    lines.clear()
    score_held_out(photos, photos.train, {"test": photos.test}, config=config, device="cpu", log=lines.append)
    epochs = [line.split(" [")[0] for line in lines if "epoch" in line]
    assert epochs == ["labels: scoring model 1/1, epoch 1/3", "labels: scoring model 1/1, epoch 2/3"]
    assert lines[-1].startswith("labels: scoring model 1/1 trained on all")  # the last epoch's line

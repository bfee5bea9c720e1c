"""Fuzzed run-folder files: model.json, split.json, metrics.csv and checkpoints read from outside bytes.

A run folder may be copied, edited by hand or truncated by a full disk. Whatever its bytes, reading it
gives a result or a one-line ConvtrainError, never another exception, and writes nothing.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from convtrain.base.errors import ConvtrainError
from convtrain.models import build_model
from convtrain.runs.run_dir import RunDir

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from helpers import copy_run  # noqa: E402

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
CARD = {
    "architecture": "lenet5",
    "classes": ["a", "b", "c"],
    "in_channels": 1,
    "image_size": 28,
    "mean": [0.5],
    "std": [0.25],
}


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, truncations, and single-byte changes of a valid file."""
    flips = st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)).map(
        lambda change: valid[: change[0]] + bytes([change[1]]) + valid[change[0] + 1 :]
    )
    return st.one_of(st.binary(max_size=300), st.integers(0, len(valid)).map(lambda n: valid[:n]), flips)


def one_line(error: ConvtrainError) -> None:
    assert str(error) and "\n" not in str(error)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / "run"
    run = RunDir(folder)
    folder.mkdir()
    run.write_card(CARD)
    torch.save({"model": build_model("lenet5", 1, 3, 28).state_dict()}, run.best_path)
    return folder


def read_everything(folder: Path) -> None:
    run = RunDir(folder)
    try:
        run.card  # noqa: B018
        run.load_model("best")
    except ConvtrainError as error:
        one_line(error)


@FUZZ
@given(data=st.data())
def test_fuzzed_model_cards_load_or_fail_in_one_line(run_folder, tmp_path_factory, data):
    folder = copy_run(run_folder, tmp_path_factory.mktemp("card") / "run")
    card = (folder / "model.json").read_bytes()
    (folder / "model.json").write_bytes(data.draw(mutations(card)))
    before = sorted(p.name for p in folder.iterdir())
    read_everything(folder)
    assert sorted(p.name for p in folder.iterdir()) == before  # reading writes nothing


@FUZZ
@given(
    values=st.dictionaries(
        st.sampled_from(sorted(CARD)), st.from_type(object).filter(lambda v: True), max_size=6
    )
)
def test_cards_with_values_of_any_type_fail_in_one_line(run_folder, tmp_path_factory, values):
    folder = copy_run(run_folder, tmp_path_factory.mktemp("typed") / "run")
    try:
        text = json.dumps({**CARD, **values})
    except (TypeError, ValueError):
        return
    (folder / "model.json").write_text(text)
    read_everything(folder)


@FUZZ
@given(data=st.data())
def test_fuzzed_checkpoints_split_and_metrics_fail_in_one_line(run_folder, tmp_path_factory, data):
    folder = copy_run(run_folder, tmp_path_factory.mktemp("files") / "run")
    run = RunDir(folder)
    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 1}, buffer)
    run.best_path.write_bytes(data.draw(mutations(buffer.getvalue())))
    run.split_path.write_bytes(data.draw(mutations(b'{"train": [0, 1, 2], "val": [3]}')))
    run.metrics_path.write_bytes(data.draw(mutations(b"epoch,train_loss,train_acc\n1,0.5,0.9\n")))
    for read in (lambda: run.load_state("best"), run.read_split, lambda: run.history, run.load_model):
        try:
            read()
        except ConvtrainError as error:
            one_line(error)

"""convtrain evaluate: metrics against a hand computation, the files it writes, and bad run folders."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import convtrain
from convtrain.base.errors import CheckpointError, DataError
from convtrain.cli import main
from convtrain.cli.run_commands import format_evaluation
from convtrain.evaluation.metrics import metrics_from_logits
from convtrain.evaluation.scoring import evaluate as evaluate_run
from convtrain.runs.run_dir import RunDir
from helpers import copy_run


@pytest.fixture(scope="module")
def mnist_run(shared_datasets, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mnist") / "run"
    convtrain.train(
        dataset="mnist",
        data_dir=str(shared_datasets),
        download=False,
        model="lenet5",
        epochs=1,
        limit_train=2000,
        val_split=500,
        batch_size=32,
        lr=0.05,
        out=str(out),
        quiet=True,
        plots=False,
    )
    return out


def read_idx(path: Path) -> np.ndarray:
    """An IDX file read straight from its bytes: big-endian dims after a 4-byte magic number."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = np.frombuffer(raw[4 : 4 + 4 * ndim], dtype=">u4")
    return np.frombuffer(raw[4 + 4 * ndim :], dtype=np.uint8).reshape(dims)


def hand_metrics(logits: np.ndarray, labels: np.ndarray, k: int) -> dict:
    """Every number evaluate reports, with numpy loops and no convtrain code."""
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    predicted = logits.argmax(1)
    confusion = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(labels, predicted, strict=True):
        confusion[t, p] += 1
    per_class = []
    for c in range(k):
        tp = confusion[c, c]
        precision = tp / confusion[:, c].sum() if confusion[:, c].sum() else 0.0
        recall = tp / confusion[c].sum()
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append((precision, recall, f1, confusion[c].sum()))
    top5 = np.mean([t in np.argsort(-row)[:5] for row, t in zip(logits, labels, strict=True)])
    return {
        "loss": -log_probs[np.arange(len(labels)), labels].mean(),
        "top1": (predicted == labels).mean(),
        "top5": top5,
        "confusion": confusion,
        "per_class": per_class,
    }


def test_evaluate_json_matches_a_hand_computation_on_mnist(mnist_run, shared_datasets, capsys):
    assert main(["evaluate", str(mnist_run), "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)

    raw = shared_datasets / "MNIST" / "raw"
    images = torch.from_numpy(read_idx(raw / "t10k-images-idx3-ubyte.gz").copy()).float()[
        :, None
    ]  # (N, 1, 28, 28)
    labels = read_idx(raw / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    model, card = RunDir(mnist_run).load_model()
    with torch.no_grad():
        logits = model((images / 255 - card["mean"][0]) / card["std"][0]).numpy()
    expected = hand_metrics(logits.astype(np.float64), labels, 10)

    assert result["images"] == 10000 and np.sum(result["confusion"]) == 10000
    assert np.array_equal(np.array(result["confusion"]), expected["confusion"])
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-4)
    assert result["top1"] == pytest.approx(expected["top1"], abs=1e-9)
    assert result["top5"] == pytest.approx(expected["top5"], abs=1e-9)
    assert result["top1"] > 0.5  # a real, if brief, training run
    for row, (precision, recall, f1, support) in zip(result["per_class"], expected["per_class"], strict=True):
        assert row["precision"] == pytest.approx(precision, abs=1e-6)
        assert row["recall"] == pytest.approx(recall, abs=1e-6) and row["accuracy"] == row["recall"]
        assert row["f1"] == pytest.approx(f1, abs=1e-6)
        assert row["support"] == support
    normalized = np.array(result["confusion_normalized"])
    assert np.allclose(normalized.sum(1), 1.0)

    # the files in the run folder say the same
    saved = json.loads((mnist_run / "evaluation_test.json").read_text())
    assert saved["top1"] == result["top1"] and saved["confusion"] == result["confusion"]
    rows = list(csv.DictReader((mnist_run / "per_class_test.csv").open()))
    assert [r["class"] for r in rows] == [str(d) for d in range(10)]
    assert [int(r["support"]) for r in rows] == np.bincount(labels, minlength=10).tolist()
    grid = list(csv.reader((mnist_run / "confusion_test.csv").open()))
    assert sum(int(v) for row in grid[1:] for v in row[1:]) == 10000

    # most-confused pairs and top losses agree with the confusion matrix and the probabilities
    off_diagonal = expected["confusion"] - np.diag(np.diag(expected["confusion"]))
    first = result["most_confused"][0]
    assert first["count"] == off_diagonal.max()
    assert off_diagonal[int(first["true"]), int(first["predicted"])] == first["count"]
    losses = [item["loss"] for item in result["top_losses"]]
    assert losses == sorted(losses, reverse=True)
    worst = result["top_losses"][0]
    assert worst["loss"] == pytest.approx(-np.log(worst["true_probability"]), rel=1e-4)
    assert labels[worst["index"]] == int(worst["true"])
    text = format_evaluation(result)
    assert "top-1" in text and f"{first['true']} -> {first['predicted']}" in text


def test_metrics_from_logits_on_a_small_hand_example():
    # 3 classes; class 2 is never predicted, so its precision is 0 by definition
    logits = torch.tensor([[5.0, 0, 0], [0, 5, 0], [0, 5, 0], [4, 0, 3], [0, 2, 1]])
    labels = torch.tensor([0, 1, 0, 2, 2])
    result = metrics_from_logits(logits, labels, ["a", "b", "c"], top_losses=2)
    assert result["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 1, 0]]
    a, b, c = result["per_class"]
    assert (a["precision"], a["recall"]) == pytest.approx((1 / 2, 1 / 2))
    assert (b["precision"], b["recall"]) == pytest.approx((1 / 3, 1.0))
    assert b["f1"] == pytest.approx(2 * (1 / 3) / (1 / 3 + 1))
    assert (c["precision"], c["recall"], c["f1"]) == (0.0, 0.0, 0.0)
    assert result["top1"] == pytest.approx(2 / 5)
    assert result["top5_k"] == 3 and result["top5"] == 1.0
    assert result["macro_f1"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert {(p["true"], p["predicted"]) for p in result["most_confused"]} == {
        ("a", "b"),
        ("c", "a"),
        ("c", "b"),
    }
    assert [t["index"] for t in result["top_losses"]] == [2, 4]  # the two confidently wrong rows


def test_val_split_uses_the_saved_indices_and_tta_matches_hand_views(tiny_run, tiny_npz, tmp_path):
    run = copy_run(tiny_run, tmp_path / "copy")  # evaluate writes evaluation_val.json into the folder
    result = evaluate_run(run, split="val", device="cpu")
    val_idx = json.loads((run / "split.json").read_text())["val"]
    arrays = np.load(tiny_npz)
    y_val = arrays["y_train"][val_idx]
    assert [row["support"] for row in result["per_class"]] == np.bincount(y_val, minlength=4).tolist()
    assert (run / "evaluation_val.json").is_file()
    assert not (tiny_run / "evaluation_val.json").exists()

    model, card = RunDir(run).load_model()
    x = torch.from_numpy(arrays["x_test"]).permute(0, 3, 1, 2).float()  # (N, 1, 28, 28)
    x = (x / 255 - card["mean"][0]) / card["std"][0]
    right = torch.cat([x[..., :, :1], x[..., :, :-1]], dim=3)  # shifted one pixel right, edge repeated
    down = torch.cat([x[..., :1, :], x[..., :-1, :]], dim=2)
    y = torch.from_numpy(arrays["y_test"])

    def tta_loss(views):
        with torch.no_grad():
            mean_log_probs = torch.stack([model(v).log_softmax(1) for v in views]).mean(0)
        return float(torch.nn.functional.cross_entropy(mean_log_probs, y))

    # trained without flips: the shifts only; a mirror image would be a shape the model never saw
    tta = evaluate_run(run, split="test", tta=True, device="cpu", write=False)
    assert tta["loss"] == pytest.approx(tta_loss([x, right, down]), rel=1e-4)
    assert tta["loss"] != pytest.approx(tta_loss([x, x.flip(3), right, down]), rel=1e-4)
    # the same weights recorded as trained with flips: the mirror joins the views
    config = (run / "config.yaml").read_text()
    assert "augment: none" in config
    (run / "config.yaml").write_text(config.replace("augment: none", "augment: flip"))
    tta = evaluate_run(run, split="test", tta=True, device="cpu", write=False)
    assert tta["loss"] == pytest.approx(tta_loss([x, x.flip(3), right, down]), rel=1e-4)


def test_convtrain_evaluate_stays_the_function_after_training(tiny_run):
    import convtrain.evaluation.metrics  # noqa: F401

    for _ in range(2):  # training imported the evaluation loop's module; the public function must survive it
        assert convtrain.evaluate(tiny_run, split="val", device="cpu", write=False)["images"] == 48


# ----- bad run folders: one clear line, exit code 2 -----


@pytest.mark.parametrize("missing", ["model.json", "config.yaml", "best.pt"])
def test_a_run_folder_missing_a_file_is_refused_in_one_line(tiny_run, tmp_path, capsys, missing):
    run = copy_run(tiny_run, tmp_path / "copy")
    (run / missing).unlink()
    assert main(["evaluate", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and missing in err and "\n" not in err


def test_no_such_run_folder_and_no_test_split(tiny_run, tiny_npz, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        evaluate_run(tmp_path / "nothing")
    run = copy_run(tiny_run, tmp_path / "copy")
    arrays = np.load(tiny_npz)
    no_test = tmp_path / "no_test.npz"
    np.savez(no_test, x_train=arrays["x_train"], y_train=arrays["y_train"])
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace(str(tiny_npz), str(no_test)))
    with pytest.raises(DataError, match="no test split; use --split val"):
        evaluate_run(run, split="test", device="cpu")
    assert evaluate_run(run, split="val", device="cpu", write=False)["images"] == 48
    measured = evaluate_run(run, device="cpu", write=False)  # no split named: the one it was measured on
    assert measured["split"] == "val" and measured["images"] == 48


def test_checkpoints_of_another_architecture_or_class_count_are_refused(tiny_run, tmp_path):
    from convtrain.models import build_model

    run = copy_run(tiny_run, tmp_path / "copy")
    for model in (build_model("lenet5", 1, 7, 28), build_model("mnist-cnn", 1, 4, 28)):
        torch.save({"model": model.state_dict()}, run / "best.pt")
        with pytest.raises(CheckpointError, match="another architecture or class count"):
            evaluate_run(run, device="cpu")


class RunsACommand:
    """Unpickling this calls os.system: a checkpoint must never be able to do that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "copy")
    marker = tmp_path / "code-ran"
    torch.save({"model": RunsACommand(marker)}, run / "best.pt")
    with pytest.raises(CheckpointError, match="refused"):
        evaluate_run(run, device="cpu")
    assert main(["evaluate", str(run), "--device", "cpu"]) == 2
    assert "refused" in capsys.readouterr().err
    assert not marker.exists()

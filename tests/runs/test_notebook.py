"""convtrain in a real Jupyter kernel: train, re-run the same cell, evaluate and predict."""

from __future__ import annotations

from pathlib import Path

import pytest

import convtrain

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

SRC = str(Path(convtrain.__file__).resolve().parents[1])


def test_a_notebook_trains_reruns_a_cell_evaluates_and_predicts(tiny_npz, tmp_path):
    import numpy as np
    from PIL import Image

    digit = tmp_path / "digit.png"
    Image.fromarray(np.load(tiny_npz)["x_test"][0].squeeze()).save(digit)  # (28, 28) gray
    train_cell = "run = convtrain.train(config)\nrun"
    cells = [
        f"import os, sys\nsys.path.insert(0, {SRC!r})\nos.chdir({str(tmp_path)!r})\nimport torch\n"
        "torch.set_num_threads(1)\nimport convtrain\n"
        f"config = convtrain.TrainConfig(dataset='npz:{tiny_npz}', model='lenet5', epochs=1, batch_size=64, plots=False)",
        train_cell,
        train_cell,  # the reader runs the cell again: a second run folder, no error
        "print(run.path, convtrain.load_run(run.path).results['epochs'])",
        "result = convtrain.evaluate(run)\nprint(result['split'], round(result['top1'], 3))",
        f"print(convtrain.predict(run, [{str(digit)!r}])[0]['labels'])",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3").execute()

    outputs = [cell.outputs for cell in notebook.cells]
    assert all(o.get("output_type") != "error" for cell in outputs for o in cell)
    shown = [o for o in outputs[1] if o.get("output_type") == "execute_result"]
    assert shown and "convtrain run" in shown[0]["data"]["text/html"]  # the run shows itself as a card
    assert "runs/npz-lenet5-2" in "".join(o.get("text", "") for o in outputs[3])
    assert "".join(o.get("text", "") for o in outputs[4]).startswith("test ")
    text = "".join(o.get("text", "") for cell in outputs for o in cell)
    assert len(text.splitlines()) < 30, text  # the output stays short: a few lines per run

"""convtrain: train convolutional image classifiers from scratch, fast.

    import convtrain
    run = convtrain.train(dataset="mnist", model="lenet5", epochs=3)
    print(run.results["test_acc"], run.path)
    again = convtrain.load_run(run.path)       # the same run folder, read back: .model, .history, ...
    convtrain.evaluate(run)                    # test split (val when there is none)
    convtrain.predict(run, ["digit.png"])
    convtrain.check("mnist", split="test", labels=True, out="checks/mnist")   # audit the data itself
    convtrain.train_seeds(convtrain.TrainConfig(epochs=1), seeds=5)   # mean ± std over seeds 0-4
    convtrain.run_sweep("space.yaml", trials=20)                      # Optuna search (convtrain[sweep])

The public names are re-exported from the modules that hold them (training/loop.py,
evaluation/scoring.py, evaluation/prediction.py, ...). No layer folder is named like a public
function (training/ holds `train`, evaluation/ holds `evaluate`), so `import convtrain.training` and
`convtrain.train` never shadow each other. README's "How the package is built" lists the layers.
"""

from pathlib import Path

from convtrain.base.errors import ConvtrainError
from convtrain.base.version import __version__
from convtrain.config.train_config import TrainConfig
from convtrain.datacheck import check
from convtrain.evaluation.prediction import predict_paths as predict
from convtrain.evaluation.scoring import evaluate
from convtrain.runs.run_dir import RunDir
from convtrain.sweep import run_sweep, train_seeds
from convtrain.training.loop import train


def load_run(path: str | Path) -> RunDir:
    """A run folder, read lazily: .config, .card, .history, .results and .model (the tested weights)."""
    run = RunDir(path)
    run.card  # noqa: B018  (fails now, with a one-line error, if the folder is not a run)
    return run


__all__ = [
    "TrainConfig",
    "ConvtrainError",
    "RunDir",
    "train",
    "load_run",
    "evaluate",
    "predict",
    "check",
    "train_seeds",
    "run_sweep",
    "__version__",
]

"""convtrain: train convolutional image classifiers from scratch, fast.

import convtrain
run = convtrain.train(dataset="mnist", model="lenet5", epochs=3)
print(run.results["test_acc"])
"""

__version__ = "0.1.0"

# The submodules train, evaluate and predict share their names with the functions below: import
# them first, so that the functions, defined after, are what `convtrain.train` etc. refer to.
import convtrain.evaluate  # noqa: E402, F401
import convtrain.train  # noqa: E402, F401
from convtrain.config import TrainConfig  # noqa: E402
from convtrain.errors import ConvtrainError  # noqa: E402


def train(config: TrainConfig | None = None, **overrides):
    """Train a model; keyword arguments override TrainConfig fields. Returns a Run."""
    from convtrain.train import train as _train

    return _train(config, **overrides)


def load_run(run_dir, which: str | None = None, device: str = "cpu"):
    """(model in eval mode, model card) of a run folder."""
    from convtrain.checkpoint import load_model

    return load_model(run_dir, which, device)


def evaluate(run_dir, split: str = "test", tta: bool = False, **kwargs):
    """Detailed metrics of a run on its test or validation split."""
    from convtrain.metrics import evaluate_run

    return evaluate_run(run_dir, split=split, tta=tta, **kwargs)


def predict(run_dir, paths, topk: int = 3, **kwargs):
    """Top-k labels and probabilities for image files, folders or globs."""
    from convtrain.prediction import predict_paths

    return predict_paths(run_dir, paths, topk=topk, **kwargs)


__all__ = ["TrainConfig", "ConvtrainError", "train", "load_run", "evaluate", "predict", "__version__"]

"""The model zoo: a registry of network builders by name, and weight initialisation.

Each family lives in its own file here (lenet.py, tutorial_cnns.py, mnist_cnn.py, resnet.py, ...)
and registers its builders with `@register_model` (model_registry.py); init_schemes.py re-initialises
weights, heads.py finds and freezes heads, external.py builds timm:/torchvision: names.

    >>> from convtrain.models import build_model, model_names
    >>> model_names()
    >>> build_model("lenet5", in_channels=1, num_classes=10, image_size=28)

    convtrain models                       # the table: parameters, FLOPs per image, own training options
    convtrain models --summary resnet18    # one model's layers and output shapes
"""

from convtrain.models.init_schemes import INIT_SCHEMES, init_weights
from convtrain.models.model_registry import (
    ADAM_TRAINING,
    GENERIC_TRAINING,
    build_model,
    gains_from_cpu_bf16,
    model_description,
    model_min_size,
    model_names,
    own_training,
    register_model,
    registered_model,
)

__all__ = [
    "ADAM_TRAINING",
    "GENERIC_TRAINING",
    "INIT_SCHEMES",
    "build_model",
    "gains_from_cpu_bf16",
    "init_weights",
    "model_description",
    "model_min_size",
    "model_names",
    "own_training",
    "register_model",
    "registered_model",
]

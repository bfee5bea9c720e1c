"""Why did the network say that: heat maps through Captum (attribution.py), their pictures
(overlay.py), and the pictures predict, evaluate and the report make of a run (pictures.py).

from convtrain.evaluation.explain import explain, plot_explanation
heat = explain(model, batch, "gradcam")               # (N, H, W) in [0, 1]
convtrain predict runs/mnist-fastnet-tiny digit.png --explain gradcam --out why/
"""

from convtrain.evaluation.explain.attribution import (
    METHODS,
    ExplainError,
    check_method,
    conv_layer_names,
    default_layer,
    explain,
)
from convtrain.evaluation.explain.overlay import (
    overlay,
    plot_explanation,
    plot_explanation_grid,
    prediction_colors,
)
from convtrain.evaluation.explain.pictures import write_gallery, write_prediction_pictures

__all__ = [
    "METHODS",
    "ExplainError",
    "check_method",
    "conv_layer_names",
    "default_layer",
    "explain",
    "overlay",
    "plot_explanation",
    "plot_explanation_grid",
    "prediction_colors",
    "write_gallery",
    "write_prediction_pictures",
]

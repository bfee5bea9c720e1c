"""Why did the network say that: heat maps through Captum (attribution.py) and their pictures (overlay.py).

from convtrain.explain import explain, plot_explanation
heat = explain(model, batch, "gradcam")               # (N, H, W) in [0, 1]
convtrain predict runs/mnist-mnist-cnn digit.png --explain gradcam --out why/
"""

from convtrain.explain.attribution import (
    METHODS,
    ExplainError,
    conv_layer_names,
    default_layer,
    explain,
)
from convtrain.explain.overlay import overlay, plot_explanation, plot_explanation_grid, prediction_colors

__all__ = [
    "METHODS",
    "ExplainError",
    "conv_layer_names",
    "default_layer",
    "explain",
    "overlay",
    "plot_explanation",
    "plot_explanation_grid",
    "prediction_colors",
]

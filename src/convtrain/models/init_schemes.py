"""Weight initialisation schemes: the one list of their names, and the function that applies one.

>>> init_weights(model, "kaiming")
"""

from __future__ import annotations

import torch.nn as nn

from convtrain.base.errors import ConfigError

INIT_SCHEMES = ("default", "kaiming", "xavier", "normal")
NORMAL_STD = 0.02
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def init_weights(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv and linear layers in place; norm layers get weight 1, bias 0.

    default: keep PyTorch's own init (and any init the model does itself), touch nothing.
    kaiming: He normal, fan_in, ReLU gain. xavier: Glorot uniform. normal: N(0, 0.02).
    Biases of conv and linear layers are set to zero for every scheme but default.
    """
    if scheme not in INIT_SCHEMES:
        raise ConfigError(f"init must be one of {', '.join(INIT_SCHEMES)}; got {scheme!r}")
    if scheme == "default":
        return
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.normal_(module.weight, mean=0.0, std=NORMAL_STD)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORMS) and getattr(module, "weight", None) is not None:
            nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

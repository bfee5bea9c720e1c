"""Many runs of one config: seed statistics (seeds.py) and hyper-parameter sweeps on Optuna (study.py).

    convtrain train --recipe lenet5-mnist-fast --seeds 5 --jobs 2
    convtrain sweep space.yaml --trials 20
    python -c "import convtrain.sweep as s; print(s.run_sweep('space.yaml', trials=4).path)"

Optuna is imported only by the sweep modules (the `sweep` extra); seeds need nothing beyond convtrain.
"""

from convtrain.sweep.seeds import train_seeds
from convtrain.sweep.study import run_sweep  # imports Optuna only when called

__all__ = ["train_seeds", "run_sweep"]

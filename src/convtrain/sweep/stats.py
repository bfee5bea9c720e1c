"""Summary statistics over seeds: mean, sample std, a Student-t 95% confidence interval, min and max.

    python -c "from convtrain.sweep.stats import summarize; print(summarize([0.991, 0.993, 0.992]))"

The t quantile is computed (the density integrated with Simpson's rule, then bisection), so any
number of seeds works without scipy or a table.
"""

from __future__ import annotations

import functools
import math
import statistics
from typing import Any


def summarize(values: list[float]) -> dict[str, Any]:
    """mean, std (n-1), ci95 [low, high] of the mean, min, max, n and the values; std/ci None for one value."""
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else None
    half = t_quantile(0.975, n - 1) * std / math.sqrt(n) if std is not None else None
    return {
        "mean": mean,
        "std": std,
        "ci95": [mean - half, mean + half] if half is not None else None,
        "min": min(values),
        "max": max(values),
        "n": n,
        "values": list(values),
    }


@functools.cache  # one value per seed count
def t_quantile(p: float, df: int) -> float:
    """The p-quantile (0.5 < p < 1) of Student's t distribution with df degrees of freedom."""
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        high *= 2
    for _ in range(50):  # bisection, far below the integration error
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def _t_cdf(t: float, df: int, intervals: int = 2000) -> float:
    """P(T <= t) for t >= 0: 1/2 plus the density integrated over [0, t] (Simpson's rule)."""
    log_scale = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x: float) -> float:
        return math.exp(log_scale - (df + 1) / 2 * math.log1p(x * x / df))

    h = t / intervals
    total = density(0.0) + density(t)
    total += 4 * sum(density((2 * i - 1) * h) for i in range(1, intervals // 2 + 1))
    total += 2 * sum(density(2 * i * h) for i in range(1, intervals // 2))
    return 0.5 + total * h / 3

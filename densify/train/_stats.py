"""Statistics over seeds: t-intervals of means and paired gains (same seed, same data order, across recipes)."""

from __future__ import annotations

import math

import numpy as np

# Two-sided 95% quantiles of Student's t by degrees of freedom (interpolated between, 1.96 beyond 120).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}  # fmt: skip


def t95(df: int) -> float:
    """Two-sided 95% Student-t quantile for ``df`` degrees of freedom."""
    if df < 1:
        return math.inf
    keys = sorted(_T95)
    if df >= keys[-1]:
        return 1.96
    if df in _T95:
        return _T95[df]
    lo = max(k for k in keys if k < df)
    hi = min(k for k in keys if k > df)
    return _T95[lo] + (_T95[hi] - _T95[lo]) * (df - lo) / (hi - lo)


def mean_t_ci(values, bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95% t-interval (infinite half-width for a single value), otherwise
    clipped to ``bounds`` (an accuracy's interval never leaves [0, 1], a gain's never [-1, 1])."""
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, -math.inf, math.inf
    half = t95(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean, max(mean - half, bounds[0]), min(mean + half, bounds[1])

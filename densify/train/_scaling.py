"""Data-scaling curves and the effective data multiplier: how many real samples a recipe is worth."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from densify.train._stats import mean_t_ci


@dataclass(frozen=True)
class Multiplier:
    """Effective data multiplier of a recipe at training size ``n``: the size at which the ``none`` curve reaches
    the recipe's accuracy, over ``n``. Mean and 95% t-interval over seeds of log multipliers, reported as ratios;
    ``bound`` is ">=" when the recipe beats the whole ``none`` curve (the value is then a lower bound), "<=" when
    it falls below it, else ""."""

    n: int
    value: float
    low: float
    high: float
    bound: str = ""

    def to_dict(self) -> dict:
        def finite(x):
            return x if math.isfinite(x) else None

        return {
            "n": self.n,
            "value": finite(self.value),
            "low": finite(self.low),
            "high": finite(self.high),
            "bound": self.bound,
        }


def equivalent_size(
    sizes: Sequence[int], base_accuracy: Sequence[float], accuracy: float
) -> tuple[float, str]:
    """(N, bound): where the baseline curve reaches ``accuracy``, interpolated linearly in log N on the curve's
    running maximum (noise can make the raw curve dip). Outside the curve, N is the nearest end and bound is
    ">=" (above the curve) or "<=" (below it)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    order = np.argsort(sizes)
    sizes, curve = sizes[order], np.maximum.accumulate(np.asarray(base_accuracy, dtype=np.float64)[order])
    if accuracy >= curve[-1]:
        return float(sizes[-1]), ">=" if accuracy > curve[-1] else ""
    if accuracy <= curve[0]:
        return float(sizes[0]), "<=" if accuracy < curve[0] else ""
    i = int(np.searchsorted(curve, accuracy, side="left"))
    lo, hi = i - 1, i
    while curve[hi] == curve[lo]:  # flat stretch from the running maximum
        lo -= 1
    frac = (accuracy - curve[lo]) / (curve[hi] - curve[lo])
    return float(np.exp(np.log(sizes[lo]) + frac * (np.log(sizes[hi]) - np.log(sizes[lo])))), ""


def effective_multiplier(
    sizes: Sequence[int], base: dict[int, dict[int, float]], recipe: dict[int, dict[int, float]], n: int
) -> Multiplier:
    """The multiplier at size ``n`` from per-seed accuracies ``base[size][seed]`` (``none``) and ``recipe[size][seed]``;
    each seed's recipe accuracy is read against that seed's own baseline curve (paired), then averaged in log space."""
    seeds = sorted(set(recipe[n]) & set.intersection(*(set(base[s]) for s in sizes)))
    logs, bounds = [], set()
    for seed in seeds:
        size, bound = equivalent_size(sizes, [base[s][seed] for s in sizes], recipe[n][seed])
        logs.append(math.log(size / n))
        bounds.add(bound)
    mean, low, high = mean_t_ci(logs)
    bound = ">=" if ">=" in bounds else ("<=" if "<=" in bounds else "")
    return Multiplier(
        n,
        math.exp(mean),
        math.exp(low) if math.isfinite(low) else 0.0,
        math.exp(high) if math.isfinite(high) else math.inf,
        bound,
    )

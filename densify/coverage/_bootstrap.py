"""Bootstrap confidence intervals of means and ratios of means (percentile method), and per-class means."""

from __future__ import annotations

import numpy as np

N_BOOT = 1000
_CHUNK = 100  # bootstrap replicates drawn at a time, so memory is _CHUNK × n indices
#: at most this many resampled values (int64 index + float64 value each) at a time: a chunk of replicates is drawn
#: in as many rows as fit, which draws the same indices in the same order (numpy's integers fill row by row)
_MAX_DRAWN = 1 << 22
_MAX_LEVELS = 64


def boot_means(values: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """float64 (n_boot,): means of ``values`` (n,) over resamples with replacement, seeded.

    Values with few distinct levels (indicators, gains in {-1, 0, 1}) are resampled through the multinomial
    distribution of their level counts, which is the same distribution as resampling indices at O(levels) per
    replicate instead of O(n).
    """
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    levels, counts = np.unique(values, return_counts=True)
    if len(levels) <= _MAX_LEVELS:
        draws = rng.multinomial(len(values), counts / len(values), size=n_boot)
        return draws @ levels / len(values)
    out = np.empty(n_boot)
    rows = max(1, min(_CHUNK, _MAX_DRAWN // len(values)))
    for start in range(0, n_boot, rows):
        m = min(rows, n_boot - start)
        idx = rng.integers(0, len(values), size=(m, len(values)), dtype=np.int64)
        out[start : start + m] = values[idx].mean(axis=1)
    return out


def mean_ci(
    values: np.ndarray, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` and its percentile bootstrap interval at ``level``."""
    values = np.asarray(values, dtype=np.float64)
    means = boot_means(values, n_boot, seed)
    tail = (1 - level) / 2 * 100
    return float(values.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def ratio_ci(
    numerator: np.ndarray, denominator: np.ndarray, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean(num) / mean(den), low, high) with the two samples resampled independently."""
    num = boot_means(numerator, n_boot, seed)
    den = boot_means(denominator, n_boot, seed + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = num / den
        value = float(np.mean(numerator) / np.mean(denominator))
    tail = (1 - level) / 2 * 100
    return value, float(np.nanpercentile(ratios, tail)), float(np.nanpercentile(ratios, 100 - tail))


def per_class_means(values: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """float64 (n_classes,): mean of ``values`` per label (NaN for a class with no points)."""
    sums = np.bincount(labels, weights=np.asarray(values, dtype=np.float64), minlength=n_classes)
    counts = np.bincount(labels, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

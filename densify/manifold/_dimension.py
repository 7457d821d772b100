"""Intrinsic dimension of a point cloud: TwoNN (Facco et al. 2017) and the Levina–Bickel MLE, with bootstrap
intervals, overall and per class.

Both estimators read only each point's nearest-neighbour distances, so they measure the dimension of the manifold
the points sample (a curve in 128-d space has dimension 1), not the space they live in:

- **TwoNN**: with r1, r2 a point's first and second neighbour distances, mu = r2 / r1 follows a Pareto law with
  shape d on a d-dimensional manifold of locally uniform density, whose maximum-likelihood estimate is
  d = 1 / mean(log mu) (Facco et al. 2017, Scientific Reports 7: 12140).
- **MLE**: with T_1..T_k a point's k neighbour distances, g_k = mean_{j<k} log(T_k / T_j) estimates 1 / d
  (Levina & Bickel, NIPS 2004); the local inverses are averaged over points (MacKay & Ghahramani's correction)
  and over k in [k1, k2] (Levina & Bickel's recommendation), d = 1 / mean(g).

Because both are the inverse of a mean over points, their bootstrap intervals come from resampling the points'
terms (the neighbour graph held fixed). Exact duplicates (a zero neighbour distance) carry no scale information and
are left out, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densify.coverage._bootstrap import boot_means
from densify.coverage._knn import self_neighbours_squared
from densify.errors import CoverageError

METHODS = ("twonn", "mle")
MLE_K = (10, 20)
#: ``dimensions`` estimates each group (all points, each class) on a seeded random sample of at most this many
#: points: the neighbour search is quadratic in the group's size, and both estimators are scale-free, so a
#: sample of the same density's points estimates the same dimension (an audit's default 2,000 images never reach it)
MAX_POINTS = 20_000


@dataclass(frozen=True)
class Dimension:
    """An intrinsic-dimension estimate: ``value`` with its percentile bootstrap interval [low, high], from ``n``
    points (``duplicates`` more were left out: a zero neighbour distance)."""

    value: float
    low: float
    high: float
    n: int
    duplicates: int = 0

    def to_dict(self) -> dict:
        return {
            "value": round(self.value, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "n": self.n,
            "duplicates": self.duplicates,
        }


def twonn_terms(distances: np.ndarray) -> np.ndarray:
    """log(r2 / r1) of each point from its (N, >=2) ascending neighbour distances (self excluded), rows with
    r1 = 0 dropped. TwoNN's estimate is 1 / mean of these."""
    distances = np.asarray(distances, dtype=np.float64)
    keep = distances[:, 0] > 0
    return np.log(distances[keep, 1] / distances[keep, 0])


def mle_terms(distances: np.ndarray, k1: int = MLE_K[0], k2: int = MLE_K[1]) -> np.ndarray:
    """Each point's inverse local dimension, averaged over k in [k1, k2]: mean_k (1/(k-1)) sum_{j<k} log(T_k/T_j),
    from (N, >=k2) ascending neighbour distances (self excluded), rows with T_1 = 0 dropped. The MLE is 1 / mean."""
    distances = np.asarray(distances, dtype=np.float64)
    if not 2 <= k1 <= k2 <= distances.shape[1]:
        raise CoverageError(
            f"MLE needs 2 <= k1 <= k2 <= {distances.shape[1]} neighbours, got k1={k1}, k2={k2}"
        )
    d = distances[distances[:, 0] > 0]
    logs = np.log(d)
    cumulative = np.cumsum(logs, axis=1)  # sum_{j<=m} log T_j
    terms = []
    for k in range(k1, k2 + 1):
        terms.append(logs[:, k - 1] - cumulative[:, k - 2] / (k - 1))
    return np.mean(terms, axis=0)


def _estimate(terms: np.ndarray, total: int, n_boot: int, seed: int, level: float) -> Dimension:
    if len(terms) < 3 or not np.all(np.isfinite(terms)) or terms.mean() <= 0:
        return Dimension(float("nan"), float("nan"), float("nan"), len(terms), total - len(terms))
    means = boot_means(terms, n_boot, seed)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return Dimension(
        float(1.0 / terms.mean()),
        float(1.0 / hi) if hi > 0 else float("nan"),
        float(1.0 / lo) if lo > 0 else float("inf"),
        len(terms),
        total - len(terms),
    )


def neighbour_distances(points: np.ndarray, k: int) -> np.ndarray:
    """float64 (N, k): each point's k nearest-neighbour distances, ascending, itself excluded (exact)."""
    return np.sqrt(self_neighbours_squared(points, k)[:, 1:])


def intrinsic_dimension(
    points: np.ndarray,
    method: str = "twonn",
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    distances: np.ndarray | None = None,
) -> Dimension:
    """Estimate the intrinsic dimension of ``points`` (float (N, d)) by ``method`` ("twonn" or "mle").

    ``distances`` (N, >= 20) may pass precomputed ascending neighbour distances (self excluded) to share one
    neighbour search between methods.
    """
    if method not in METHODS:
        raise CoverageError(f"unknown intrinsic-dimension method {method!r}; methods: {', '.join(METHODS)}")
    need = 2 if method == "twonn" else MLE_K[1]
    if distances is None:
        points = np.asarray(points)
        if len(points) <= need:
            raise CoverageError(f"{method} needs more than {need} points, got {len(points)}")
        distances = neighbour_distances(points, need)
    terms = twonn_terms(distances) if method == "twonn" else mle_terms(distances)
    return _estimate(terms, len(distances), n_boot, seed, level)


def dimensions(
    points: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    min_points: int = 25,
) -> dict:
    """Both estimators overall and per class (classes with fewer than ``min_points`` points get None); a group of
    more than :data:`MAX_POINTS` points is estimated on a seeded random sample of that many (``Dimension.n``).

    Returns ``{"twonn": {"overall": Dimension, "per_class": {name: Dimension | None}}, "mle": {...}}``.
    """
    labels = np.asarray(labels)
    out: dict = {m: {"overall": None, "per_class": {}} for m in METHODS}
    groups = [("overall", np.arange(len(labels)))] + [
        (name, np.flatnonzero(labels == c)) for c, name in enumerate(classes)
    ]
    for name, rows in groups:
        if len(rows) < min_points or len(rows) <= MLE_K[1]:
            for m in METHODS:
                if name != "overall":
                    out[m]["per_class"][name] = None
            continue
        if len(rows) > MAX_POINTS:
            rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_POINTS, replace=False))
        distances = neighbour_distances(np.asarray(points)[rows], MLE_K[1])
        for m in METHODS:
            estimate = intrinsic_dimension(None, m, n_boot=n_boot, seed=seed, distances=distances)
            if name == "overall":
                out[m]["overall"] = estimate
            else:
                out[m]["per_class"][name] = estimate
    return out

"""Off-manifold outliers: samples far from their own class's other samples, relative to that class's spread."""

from __future__ import annotations

import numpy as np

OUTLIER_K = 5
#: a sample is flagged when its k-th same-class neighbour is this many times farther than its class's median
OUTLIER_RATIO = 2.0


def outlier_scores(features: np.ndarray, labels: np.ndarray, k: int = OUTLIER_K) -> np.ndarray:
    """(N,) per sample: the distance to its k-th nearest other sample of the same class, divided by the median of
    that distance over its class (1: typical; large: off its class's manifold). NaN for classes of k or fewer
    samples (no k-th neighbour)."""
    from densify.coverage._knn import kth_neighbour_distance

    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    scores = np.full(len(labels), np.nan)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) <= k:
            continue
        d = kth_neighbour_distance(features[rows], k)
        typical = np.median(d)
        scores[rows] = d / typical if typical > 0 else np.where(d > 0, np.inf, 1.0)
    return scores

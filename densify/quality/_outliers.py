"""Off-manifold outliers: samples far from their own class's other samples, relative to that class's spread."""

from __future__ import annotations

import numpy as np

OUTLIER_K = 5
#: a sample is flagged when its k-th same-class neighbour is this many times farther than its class's median
OUTLIER_RATIO = 2.0


def class_spread(features: np.ndarray, labels: np.ndarray, k: int = OUTLIER_K) -> tuple[np.ndarray, dict]:
    """(distances float64 (N,), typical {class: median}): each sample's distance to its k-th nearest other sample of
    the same class (NaN for classes of k or fewer samples) and each such class's median of it. One search per
    class; :func:`outlier_scores` and :func:`heldout_outlier_scores` both take it, so it is computed once."""
    from densify.coverage._knn import kth_neighbour_distance

    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    dist = np.full(len(labels), np.nan)
    typical = {}
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) <= k:
            continue
        dist[rows] = kth_neighbour_distance(features[rows], k)
        typical[int(c)] = float(np.median(dist[rows]))
    return dist, typical


def _ratio(d: np.ndarray, typical: float) -> np.ndarray:
    return d / typical if typical > 0 else np.where(d > 0, np.inf, 1.0)


def outlier_scores(
    features: np.ndarray, labels: np.ndarray, k: int = OUTLIER_K, *, spread: tuple | None = None
) -> np.ndarray:
    """(N,) per sample: the distance to its k-th nearest other sample of the same class, divided by the median of
    that distance over its class (1: typical; large: off its class's manifold). NaN for classes of k or fewer
    samples (no k-th neighbour). ``spread``: :func:`class_spread` of the same arguments, if already computed."""
    labels = np.asarray(labels)
    dist, typical = spread if spread is not None else class_spread(features, labels, k)
    scores = np.full(len(labels), np.nan)
    for c, t in typical.items():
        rows = np.flatnonzero(labels == c)
        scores[rows] = _ratio(dist[rows], t)
    return scores


def heldout_outlier_scores(
    train: np.ndarray,
    train_labels: np.ndarray,
    heldout: np.ndarray,
    heldout_labels: np.ndarray,
    k: int = OUTLIER_K,
    *,
    spread: tuple | None = None,
) -> np.ndarray:
    """(M,) per held-out sample: its distance to its k-th nearest training sample of its class over that class's
    median training distance (the scale of :func:`outlier_scores`); NaN where the class has k or fewer training
    samples. ``spread``: :func:`class_spread` of the training arguments, if already computed."""
    from densify.coverage._knn import knn

    train = np.asarray(train, dtype=np.float32)
    heldout = np.asarray(heldout, dtype=np.float32)
    train_labels, heldout_labels = np.asarray(train_labels), np.asarray(heldout_labels)
    _, typical = spread if spread is not None else class_spread(train, train_labels, k)
    scores = np.full(len(heldout_labels), np.nan)
    for c in np.unique(heldout_labels):
        if int(c) not in typical:
            continue
        rows = np.flatnonzero(heldout_labels == c)
        d = knn(heldout[rows], train[train_labels == c], k)[0][:, k - 1]
        scores[rows] = _ratio(d, typical[int(c)])
    return scores

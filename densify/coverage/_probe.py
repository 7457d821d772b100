"""A linear probe on frozen embeddings: the training-free stand-in for "train a model with the views".

Dao et al. (2019, "A Kernel Theory of Modern Data Augmentation") show that training a linear model on augmented
features is, to first order, training on view-averaged features plus a variance penalty; fitting the same probe on
T and on T ∪ A and scoring both on H is the cheapest "fine-tune proxy" of the issue's list. The probe is ridge
regression on one-hot labels (closed form, deterministic): features standardised by T's mean and deviation,
``W = (X'X / n + lam I)^-1 X'Y / n``. Two predictors come from it, each per held-out point:
- *probe accuracy gain*: correct with T ∪ A minus correct with T;
- *probe margin gain*: the change of the margin (true-class score minus the best other score), the margin-based
  generalisation signal of Ji et al.'s augmentation analyses, which moves before accuracy does.
"""

from __future__ import annotations

import numpy as np

#: ridge penalty on standardised features (unit variance), relative to the mean Gram matrix
RIDGE = 0.1


#: above this many rows the probe's normal equations are accumulated over blocks of rows (a float64 copy of a
#: million 32-d rows, its centred copy and the one-hot targets would otherwise hold about 1 GB)
PROBE_BLOCK = 1 << 18


def fit_probe(x, labels: np.ndarray, n_classes: int, mean: np.ndarray, scale: np.ndarray, lam: float = RIDGE):
    """(W, b) of the ridge probe on rows ``x`` (an array, or a list of arrays whose rows are stacked) standardised
    by ``mean`` / ``scale``. Up to ``PROBE_BLOCK`` rows in one pass; more are accumulated block by block (the same
    solution up to float64 rounding)."""
    parts = list(x) if isinstance(x, list | tuple) else [x]
    labels = np.asarray(labels)
    if sum(len(p) for p in parts) > PROBE_BLOCK:
        return _fit_probe_blocked(parts, labels, n_classes, mean, scale, lam)
    z = (np.asarray(np.concatenate(parts) if len(parts) > 1 else parts[0], dtype=np.float64) - mean) / scale
    y = np.zeros((len(z), n_classes))
    y[np.arange(len(z)), labels] = 1.0
    z_mean, y_mean = z.mean(axis=0), y.mean(axis=0)
    zc = z - z_mean
    gram = zc.T @ zc / len(z) + lam * np.eye(z.shape[1])
    w = np.linalg.solve(gram, zc.T @ (y - y_mean) / len(z))
    return w, y_mean - z_mean @ w


def _blocks(parts: list, rows: int = PROBE_BLOCK):
    """(first row, standardised-later float64 block) over the stacked rows of ``parts``, ``rows`` at a time."""
    offset = 0
    for part in parts:
        for start in range(0, len(part), rows):
            block = np.asarray(part[start : start + rows], dtype=np.float64)
            yield offset + start, block
        offset += len(part)


def _fit_probe_blocked(parts: list, labels: np.ndarray, n_classes: int, mean, scale, lam: float):
    n = len(labels)
    # each block standardised in one new array, in place (the same operations in the same order as
    # ``(block - mean) / scale - z_mean``, so the same bits, with one float64 copy instead of three)
    z_sum = np.zeros(len(mean))
    for _, block in _blocks(parts):
        z = block - mean
        z /= scale
        z_sum += z.sum(axis=0)
    z_mean = z_sum / n
    y_mean = np.bincount(labels, minlength=n_classes) / n
    gram = np.zeros((len(mean), len(mean)))
    zty = np.zeros((len(mean), n_classes))
    for start, block in _blocks(parts):
        zc = block - mean
        zc /= scale
        zc -= z_mean
        gram += zc.T @ zc
        y = np.zeros((len(zc), n_classes))
        y[np.arange(len(zc)), labels[start : start + len(zc)]] = 1.0
        zty += zc.T @ (y - y_mean)
    w = np.linalg.solve(gram / n + lam * np.eye(len(mean)), zty / n)
    return w, y_mean - z_mean @ w


def probe_scores(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, mean: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """float64 (N, C): the probe's outputs for rows ``x``; above ``PROBE_BLOCK`` rows, block by block (three
    float64 copies of a million 32-d views would otherwise be 0.75 GB; each row's outputs do not depend on it)."""
    if len(x) <= PROBE_BLOCK:
        return ((np.asarray(x, dtype=np.float64) - mean) / scale) @ w + b
    out = np.empty((len(x), w.shape[1]))
    for start, block in _blocks([x], SCORE_BLOCK):  # each block standardised in place: one float64 copy
        block = block - mean  # a new array even when ``x`` is float64: ``x`` itself is never written
        block /= scale
        out[start : start + len(block)] = block @ w + b
    return out


#: rows scored at a time above ``PROBE_BLOCK`` (a quarter of it: its float64 copies held 256 MB at the peak of a
#: million-view audit; a row's outputs do not depend on the blocking)
SCORE_BLOCK = PROBE_BLOCK // 4


def correct_and_margin(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether the top score is the true class (ties: the lowest index), and true minus best other score."""
    n = len(scores)
    true = scores[np.arange(n), labels]
    other = scores.copy()
    other[np.arange(n), labels] = -np.inf
    return scores.argmax(axis=1) == labels, true - other.max(axis=1)


def standardiser(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    train = np.asarray(train, dtype=np.float64)
    scale = train.std(axis=0)
    return train.mean(axis=0), np.where(scale > 1e-12, scale, 1.0)


def prediction_variance(clean_scores: np.ndarray, view_scores: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Per training sample with views: the variance of the clean-fitted probe's outputs over the sample and its
    views, summed over classes (after DivAug, Liu et al., ICCV 2021, whose "variance diversity" is the variance of a
    model's predictions over a sample's augmentations). The ridge probe's outputs estimate class probabilities
    (least squares on one-hot targets), so they stand in for the softmax; NaN for a sample without views.

    Args:
        clean_scores: (N, C) probe outputs of the clean samples. view_scores: (N·V, C) of the views.
        sources: (N·V,) index of each view's clean sample.
    """
    clean_scores = np.asarray(clean_scores, dtype=np.float64)
    view_scores = np.asarray(view_scores, dtype=np.float64)
    counts = 1 + np.bincount(sources, minlength=len(clean_scores))
    total = clean_scores.copy()
    # by blocks of views, in order: the same additions in the same order as one pass, without its (N·V, C)
    # temporaries (three of 80 MB at a million views and 10 classes)
    blocks = range(0, len(view_scores), PROBE_BLOCK)
    for start in blocks:
        np.add.at(total, sources[start : start + PROBE_BLOCK], view_scores[start : start + PROBE_BLOCK])
    mean = total / counts[:, None]
    squares = (clean_scores - mean) ** 2
    for start in blocks:
        rows, scores = sources[start : start + PROBE_BLOCK], view_scores[start : start + PROBE_BLOCK]
        np.add.at(squares, rows, (scores - mean[rows]) ** 2)
    variance = squares.sum(axis=1) / counts
    return np.where(counts > 1, variance, np.nan)

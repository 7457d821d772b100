"""The centred Gram matrix of a tall array, accumulated in float64 over blocks of rows (principal axes without a
float copy of the whole array, and without SVD factors as tall as the data)."""

from __future__ import annotations

import numpy as np

ROWS = 4096


def centred_gram(x: np.ndarray, divide: float = 1.0, rows: int = ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(mean float64 (D,), gram float64 (D, D)) of ``x / divide`` (any numeric (N, D) array, read ``rows`` rows at a
    time and cast to float64): the column means and ``(X - mean)^T (X - mean)``."""
    n = len(x)
    mean = np.zeros(x.shape[1])
    for start in range(0, n, rows):
        mean += x[start : start + rows].sum(axis=0, dtype=np.float64)
    mean /= n * divide
    gram = np.zeros((x.shape[1],) * 2)
    for start in range(0, n, rows):
        block = x[start : start + rows].astype(np.float64) / divide - mean
        gram += block.T @ block
    return mean, gram

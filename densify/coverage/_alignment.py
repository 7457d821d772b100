"""Kernel-target alignment of augmentation-averaged features (Dao et al., ICML 2019; Cortes et al., JMLR 2012).

Dao et al. show that, to first order, training on a sample's augmented views is training a kernel machine on the
*average* of its views' features. Whether that averaged representation suits the task is measured by the centred
kernel-target alignment of Cortes, Mohri and Rostamizadeh: with K the linear kernel of the features and L = Y Y'
the label kernel (Y one-hot), both centred (Kc = H K H, H = I - 11'/n),

    A(K, L) = <Kc, Lc>_F / (||Kc||_F ||Lc||_F)   in [0, 1].

For a linear kernel it needs no n x n matrix: with X and Y column-centred, <Kc, Lc>_F = ||X'Y||_F^2,
||Kc||_F = ||X'X||_F and ||Lc||_F = ||Y'Y||_F. A recipe's *alignment gain* is A(view-averaged features) minus
A(clean features): an augmentation that averages nuisance variation away raises it, one that averages a sample with
views that look like another class lowers it. Per class, the same alignment with the one-vs-rest target of that
class. Features are standardised by the clean set's mean and deviation (as the linear probe's), and features wider
than :data:`MAX_DIM` are projected onto the clean set's top principal components first.
"""

from __future__ import annotations

import numpy as np

from densify.errors import CoverageError

#: bootstrap replicates of the alignment gain (each costs two d x d Gram matrices)
MAX_BOOT = 200
#: features wider than this are first projected onto the clean set's top MAX_DIM principal components (the same
#: projection for the view-averaged features), so a replicate costs O(n MAX_DIM^2) whatever the encoder's width
MAX_DIM = 128


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    y = np.zeros((len(labels), n_classes))
    y[np.arange(len(labels)), labels] = 1.0
    return y


#: rows of centred, weighted copies made at a time in :func:`_parts` (at most this many rows are one pass, as
#: before: two float64 copies of 250,000 x 32 features held 122 MB at every bootstrap replicate)
_PARTS_BLOCK = 1 << 16


def _parts(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None):
    """(||X'Y||^2 per class column, ||X'X||_F, ||Y'Y||_F, per-class ||y_c||^2) of centred X, Y (weighted rows).
    Above ``_PARTS_BLOCK`` rows the Gram matrices are accumulated over blocks of rows (equal up to rounding)."""
    w = np.ones(len(x)) if weights is None else weights
    total = w.sum()
    x_mean, y_mean = (w @ x) / total, (w @ y) / total
    if len(x) <= _PARTS_BLOCK:
        cross, gram_x, gram_y = _block_parts(x, y, w, x_mean, y_mean)
    else:
        cross, gram_x, gram_y = 0.0, 0.0, 0.0
        for start in range(0, len(x), _PARTS_BLOCK):
            rows = slice(start, start + _PARTS_BLOCK)
            c, gx, gy = _block_parts(x[rows], y[rows], w[rows], x_mean, y_mean)
            cross, gram_x, gram_y = cross + c, gram_x + gx, gram_y + gy
    return (cross**2).sum(axis=0), np.linalg.norm(gram_x), np.linalg.norm(gram_y), np.diag(gram_y)


def _block_parts(x, y, w, x_mean, y_mean):
    """(X_c' W Y_c, X_c' W X_c, Y_c' W Y_c) of rows ``x``, ``y`` centred by the whole set's means."""
    xc = x - x_mean
    yc = y - y_mean
    xw = xc * w[:, None]
    return xw.T @ yc, xw.T @ xc, (yc * w[:, None]).T @ yc


def _alignments(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """(overall alignment, per-class one-vs-rest alignments) of the linear kernel of ``x`` with one-hot ``y``."""
    cross, norm_x, norm_y, per_class_y = _parts(x, y, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        overall = cross.sum() / (norm_x * norm_y)
        per_class = cross / (norm_x * per_class_y)
    return float(overall), per_class


def kernel_alignment(features, labels, n_classes: int | None = None) -> float:
    """Centred kernel-target alignment of the linear kernel of ``features`` (n, d) with the one-hot ``labels``."""
    x = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(labels) or len(x) < 2:
        raise CoverageError(
            f"kernel_alignment: need (n, d) features and n labels, got {x.shape} and {labels.shape}"
        )
    n_classes = n_classes or int(labels.max()) + 1
    return _alignments(x, _one_hot(labels, n_classes))[0]


#: views added to their sources' sums at a time
_VIEW_BLOCK = 1 << 16


def view_averages(train: np.ndarray, views: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Each training sample's features averaged with those of its views (a sample without views keeps its own)."""
    train = np.asarray(train, dtype=np.float64)
    sums = train.copy()
    for start in range(0, len(views), _VIEW_BLOCK):  # in order: the same sums as one pass, without a float64
        rows = slice(start, start + _VIEW_BLOCK)  # copy of every view (256 MB at a million 32-d views)
        np.add.at(sums, sources[rows], np.asarray(views[rows], dtype=np.float64))
    counts = 1 + np.bincount(sources, minlength=len(train))
    sums /= counts[:, None]  # in place: the same quotients without a second (N, d) float64 array
    return sums


def alignment_gain(
    train, views, sources, labels, n_classes: int, n_boot: int = MAX_BOOT, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float, np.ndarray]:
    """(gain, low, high, per-class gains): the alignment of the view-averaged features minus that of the clean
    ones, with a percentile bootstrap interval over training samples (at most :data:`MAX_BOOT` replicates)."""
    train = np.asarray(train, dtype=np.float64)
    n_train = len(train)
    mean, scale = train.mean(axis=0), train.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    clean = (train - mean) / scale
    averaged = view_averages(train, views, sources)
    del train  # the float64 copy (61 MB at 250,000 x 32) is not needed past here
    averaged -= mean
    averaged /= scale
    if (
        clean.shape[1] > MAX_DIM
    ):  # centred by the clean mean already (standardised): the top right singular vectors
        basis = np.linalg.svd(clean, full_matrices=False)[2][:MAX_DIM].T
        clean, averaged = clean @ basis, averaged @ basis
    y = _one_hot(np.asarray(labels, dtype=np.int64), n_classes)
    a_clean, pc_clean = _alignments(clean, y)
    a_avg, pc_avg = _alignments(averaged, y)
    rng = np.random.default_rng(seed)
    gains = np.empty(min(n_boot, MAX_BOOT))
    for b in range(len(gains)):
        w = np.bincount(rng.integers(0, n_train, n_train), minlength=n_train).astype(np.float64)
        gains[b] = _alignments(averaged, y, w)[0] - _alignments(clean, y, w)[0]
    tail = (1 - level) / 2 * 100
    low, high = (
        (float(np.nanpercentile(gains, q)) for q in (tail, 100 - tail)) if len(gains) else (np.nan,) * 2
    )
    return a_avg - a_clean, low, high, pc_avg - pc_clean

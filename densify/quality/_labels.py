"""Label issues by confident learning (Northcutt, Jiang and Chuang, JAIR 2021) and k-NN label disagreement.

Pure functions of labels, predicted probabilities and features. The confident-learning part follows the paper and
the reference implementation's ``filter_by="confident_learning"`` (cleanlab 2.x, ``filter.find_label_issues``;
cross-checked in tests): per class ``j`` a threshold ``t_j``, the mean predicted probability of ``j`` over the samples
labelled ``j``; a sample is *confidently* of class ``j`` when ``p_j >= t_j`` (the largest ``p`` among several such
classes); the confident joint counts (given label, confident class) pairs; a label issue is a sample confidently of
another class than its label, unless its own label is also the top prediction.

The predicted probabilities must be out-of-sample: :func:`out_of_fold_probabilities` fits a multinomial logistic
regression (softmax, L2-penalised, L-BFGS) on frozen features, k-fold and stratified.
"""

from __future__ import annotations

import numpy as np

#: the reference implementation's tolerances (cleanlab.internal.constants)
_FUZZ = 1e-6
_THRESHOLD_FLOOR = 2 * _FUZZ
#: L2 penalty of the softmax probe, on standardised features (per sample-averaged cross-entropy)
PROBE_L2 = 1e-2
#: wider features are projected on their top principal components first (label-free, so no fold sees labels
#: it should not); the probe's cost grows with the width and 64 components hold the bulk of the variance
PROBE_COMPONENTS = 64
FOLDS = 5


def _check(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs must be (N, C) with N = {len(labels)} labels, got shape {probs.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must be in 0..{probs.shape[1] - 1}")
    return labels.astype(np.int64), probs


def confident_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(C,) per class the mean predicted probability of that class over the samples labelled with it (2.0, which no
    probability reaches, for a class without samples), floored at 2e-6."""
    labels, probs = _check(labels, probs)
    n_classes = probs.shape[1]
    counts = np.bincount(labels, minlength=n_classes)
    sums = np.zeros(n_classes)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), 2.0)
    return np.maximum(thresholds, _THRESHOLD_FLOOR)


def confident_classes(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(N,) the class each sample is confidently of (-1 when no class reaches its threshold): the one class at or
    above its threshold, or the most probable class when several are."""
    labels, probs = _check(labels, probs)
    above = probs >= confident_thresholds(labels, probs) - _FUZZ
    n_above = above.sum(axis=1)
    guess = np.where(n_above > 1, probs.argmax(axis=1), above.argmax(axis=1))
    return np.where(n_above > 0, guess, -1)


def confident_joint(labels: np.ndarray, probs: np.ndarray, calibrate: bool = True) -> np.ndarray:
    """(C, C) counts of (given label, confident class) pairs, diagonal at least 1; calibrated (the default) so each
    row sums to that label's count and the whole to N. Divided by N it estimates the joint distribution of given
    and true labels."""
    labels, probs = _check(labels, probs)
    n_classes = probs.shape[1]
    guess = confident_classes(labels, probs)
    sure = guess >= 0
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (labels[sure], guess[sure]), 1.0)
    np.fill_diagonal(joint, np.maximum(joint.diagonal(), 1.0))
    if not calibrate:
        return joint
    counts = np.bincount(labels, minlength=n_classes)
    joint = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1e-100) * counts[:, None]
    return joint / max(joint.sum(), 1e-100) * counts.sum()


def label_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(N,) bool: the samples in the confident joint's off-diagonal (confidently of another class) whose given label
    is not the top prediction (cleanlab's ``filter_by="confident_learning"``)."""
    labels, probs = _check(labels, probs)
    guess = confident_classes(labels, probs)
    issue = (guess >= 0) & (guess != labels)
    nudged = probs.copy()
    nudged[np.arange(len(labels)), labels] += _FUZZ
    return issue & (nudged.argmax(axis=1) != labels)


def self_confidence(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(N,) the predicted probability of each sample's given label (low: likely mislabelled; the reference
    implementation's default ranking)."""
    labels, probs = _check(labels, probs)
    return probs[np.arange(len(labels)), labels]


def noise_rates(joint: np.ndarray) -> np.ndarray:
    """(C,) per given label, the estimated share of its samples whose true class is another: 1 - diagonal / row sum
    of a (calibrated) confident joint."""
    joint = np.asarray(joint, dtype=np.float64)
    rows = joint.sum(axis=1)
    return np.where(rows > 0, 1.0 - joint.diagonal() / np.maximum(rows, 1e-100), 0.0)


def overlapping_classes(joint: np.ndarray, top: int = 5) -> list[tuple[int, int, float]]:
    """The class pairs most often confused for each other: (a, b, share of all samples) with a < b, sorted by the
    share (joint[a, b] + joint[b, a]) / N, largest first; pairs of share 0 are left out."""
    joint = np.asarray(joint, dtype=np.float64)
    total = max(joint.sum(), 1e-100)
    pairs = [
        (a, b, float((joint[a, b] + joint[b, a]) / total))
        for a in range(len(joint))
        for b in range(a + 1, len(joint))
    ]
    pairs = [p for p in pairs if p[2] > 0]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))[:top]


def knn_disagreement(neighbour_labels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) the share of each sample's nearest neighbours (rows of ``neighbour_labels``, the sample itself
    excluded) whose label differs from its own."""
    neighbour_labels = np.asarray(neighbour_labels)
    return (neighbour_labels != np.asarray(labels)[:, None]).mean(axis=1)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(N,) fold of each sample: each class's samples shuffled (seeded) and dealt round-robin over the folds."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        rows = rows[rng.permutation(len(rows))]
        fold[rows] = (offset + np.arange(len(rows))) % folds
        offset += len(rows)
    return fold


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_softmax(x: np.ndarray, labels: np.ndarray, n_classes: int, l2: float = PROBE_L2):
    """(W, b, mean, scale) of a multinomial logistic regression on ``x`` standardised by its own mean and
    deviation, minimising the mean cross-entropy + l2/2 |W|^2 with L-BFGS (deterministic: zero start)."""
    from scipy.optimize import minimize

    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    n, d = z.shape
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), labels] = 1.0

    def loss(theta: np.ndarray):
        w, b = theta[: d * n_classes].reshape(d, n_classes), theta[d * n_classes :]
        logits = z @ w + b
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1))
        value = -(shifted[np.arange(n), labels] - log_norm).mean() + 0.5 * l2 * (w * w).sum()
        residual = (_softmax(logits) - onehot) / n
        grad = np.concatenate([(z.T @ residual + l2 * w).ravel(), residual.sum(axis=0)])
        return value, grad

    theta0 = np.zeros(d * n_classes + n_classes)
    result = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 300})
    theta = result.x
    return theta[: d * n_classes].reshape(d, n_classes), theta[d * n_classes :], mean, scale


#: rows per float64 block of :func:`principal_projection` (up to it, the whole training set in one block)
PROJECTION_CHUNK = 16_384


def softmax_probabilities(x: np.ndarray, model) -> np.ndarray:
    w, b, mean, scale = model
    return _softmax(((np.asarray(x, dtype=np.float64) - mean) / scale) @ w + b)


def principal_projection(
    train: np.ndarray, *others: np.ndarray, components: int | None = None, chunk: int = PROJECTION_CHUNK
):
    """``train`` and ``others`` projected on ``train``'s top ``components`` principal axes (centred on train's
    mean; unchanged when already that narrow). None: ``PROBE_COMPONENTS``, and at most one per 10 training rows
    (so the probe never has more weights per class than a tenth of its samples). Deterministic: axes from the
    covariance's eigenvectors, each signed so its largest-magnitude coefficient is positive. Above ``chunk`` rows
    the covariance and the projections are accumulated block by block in float64, so no float64 copy of the
    features is held (250,000 x 512 features: 2 GB less); up to it, one block, as it always was. ``train`` may
    also be blocks of rows (see :func:`is_blocks`): then the features are read twice and never held."""
    if is_blocks(train):
        return _streamed_projection(train, others, components, chunk)
    train = np.asarray(train)
    if components is None:
        components = max(2, min(PROBE_COMPONENTS, len(train) // 10))
    if train.shape[1] <= components:
        return (np.asarray(train, dtype=np.float64), *(np.asarray(o, dtype=np.float64) for o in others))
    if len(train) <= chunk:
        train = np.asarray(train, dtype=np.float64)
        mean = train.mean(axis=0)
        centred = train - mean
        gram = centred.T @ centred
    else:
        mean = train.mean(axis=0, dtype=np.float64)
        gram = np.zeros((train.shape[1],) * 2)
        for start in range(0, len(train), chunk):
            block = np.asarray(train[start : start + chunk], dtype=np.float64) - mean
            gram += block.T @ block
    axes = _axes(gram, components)

    def project(x) -> np.ndarray:
        x = np.asarray(x)
        out = np.empty((len(x), components))
        for start in range(0, len(x), chunk):
            out[start : start + chunk] = (
                np.asarray(x[start : start + chunk], dtype=np.float64) - mean
            ) @ axes
        return out

    if len(train) <= chunk:
        return (centred @ axes, *(project(o) for o in others))
    return (project(train), *(project(o) for o in others))


def is_blocks(x) -> bool:
    """Features given as an iterable of row blocks with a ``shape`` (not an array): read by streaming."""
    return not isinstance(x, np.ndarray) and hasattr(x, "__iter__") and hasattr(x, "shape")


def _axes(gram: np.ndarray, components: int) -> np.ndarray:
    _, vectors = np.linalg.eigh(gram)
    axes = vectors[:, ::-1][:, :components]
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(components)])
    return axes


def _streamed_projection(train, others, components: int | None, chunk: int):
    """:func:`principal_projection` of training features that are too large to hold, read twice as float32
    blocks of rows by iterating ``train`` (e.g. :class:`densify.estimate.EncodedBlocks`, which encodes them again
    each time): once for the mean and the covariance (about the first block's mean, corrected to the mean: exact
    up to float64 rounding), once to project. Never more than one block of the features in memory."""
    n, d = train.shape
    if components is None:
        components = max(2, min(PROBE_COMPONENTS, n // 10))
    if d <= components:  # as the in-memory path: narrow features are returned as they are
        whole = np.concatenate([np.asarray(b, dtype=np.float64) for b in train]) if n else np.zeros((0, d))
        return (whole, *(np.asarray(o, dtype=np.float64) for o in others))
    total, shifted, shift, seen = np.zeros(d), np.zeros((d, d)), None, 0
    for block in train:
        block = np.asarray(block, dtype=np.float64)
        if shift is None:
            shift = block.mean(axis=0)
        total += block.sum(axis=0)
        block -= shift
        shifted += block.T @ block
        seen += len(block)
    if seen != n:
        raise ValueError(f"streamed features gave {seen} rows, expected {n}")
    mean = total / n
    offset = mean - shift
    gram = shifted - n * np.outer(offset, offset)  # sum of (x - mean)(x - mean)' from sums about the shift
    axes = _axes(gram, components)
    out, start = np.empty((n, components)), 0
    for block in train:
        out[start : start + len(block)] = (np.asarray(block, dtype=np.float64) - mean) @ axes
        start += len(block)

    def project(x) -> np.ndarray:
        x = np.asarray(x)
        res = np.empty((len(x), components))
        for s in range(0, len(x), chunk):
            res[s : s + chunk] = (np.asarray(x[s : s + chunk], dtype=np.float64) - mean) @ axes
        return res

    return (out, *(project(o) for o in others))


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    folds: int = FOLDS,
    seed: int = 0,
    l2: float = PROBE_L2,
) -> np.ndarray:
    """(N, C) each sample's class probabilities from a softmax probe fitted on the other folds (stratified,
    seeded): out-of-sample, as confident learning requires. Features wider than ``PROBE_COMPONENTS`` are first
    projected on their principal axes (:func:`principal_projection`, label-free)."""
    labels = np.asarray(labels, dtype=np.int64)
    (features,) = principal_projection(features)
    fold = stratified_folds(labels, folds, seed)
    probs = np.zeros((len(labels), n_classes))
    for f in range(folds):
        held = fold == f
        if not held.any():
            continue
        model = fit_softmax(features[~held], labels[~held], n_classes, l2)
        probs[held] = softmax_probabilities(features[held], model)
    return probs

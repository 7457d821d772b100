"""Coverage metrics of one recipe's views, as pure functions of embeddings (definitions: the README, "Coverage").

Notation: T = clean training embeddings (N, d), A = the recipe's views (N·V, d) with their source index and label,
H = held-out embeddings (M, d). NND_k(x, S) is the distance from x to its k-th nearest neighbour in S, x excluded.
Everything that depends only on T and H is computed once in :func:`prepare_baseline` and shared by every recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from densify.coverage._bootstrap import N_BOOT, mean_ci, per_class_means, ratio_ci
from densify.coverage._knn import check_embeddings, knn, kth_neighbour_distance, self_neighbours_squared
from densify.coverage._prdc import ball_counts
from densify.errors import CoverageError


@dataclass(frozen=True)
class Metric:
    """A metric's value, its 95% bootstrap interval, and its value per class (NaN where a class has no points)."""

    value: float
    low: float
    high: float
    per_class: tuple[float, ...]

    def to_dict(self) -> dict:
        """JSON-ready: undefined values (NaN, e.g. a class without points) become None."""

        def clean(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None

        return {
            "value": clean(self.value),
            "low": clean(self.low),
            "high": clean(self.high),
            "per_class": [clean(v) for v in self.per_class],
        }


@dataclass(frozen=True, eq=False)
class Baseline:
    """What every recipe shares: the clean set T, the held-out set H, and their neighbourhoods."""

    k: int
    n_classes: int
    train: np.ndarray
    train_labels: np.ndarray
    heldout: np.ndarray
    heldout_labels: np.ndarray
    heldout_radii: np.ndarray  # (M,) NND_k(h, H)
    knn_train_dist: np.ndarray  # (M, k) distances from each h to its k nearest in T
    knn_train_idx: np.ndarray  # (M, k)
    train_radii_sq: np.ndarray  # (N,) NND_k(t, T)^2, the real radii of fidelity's PRDC
    diversity_scale: float  # median NND_1(t, T)
    log_floor: float  # distances below this count as this in densification's logarithms
    memo: dict = field(default_factory=dict, repr=False)  # k-NN of H in T for larger k, computed on demand

    def train_neighbours(self, kk: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices) (M, kk) of each held-out point's kk nearest training points."""
        if kk <= self.k:
            return self.knn_train_dist[:, :kk], self.knn_train_idx[:, :kk]
        if kk not in self.memo:
            self.memo[kk] = knn(self.heldout, self.train, min(kk, len(self.train)))
        return self.memo[kk]


def _labels(labels, n: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise CoverageError(
            f"{name}: expected {n} integer labels, got shape {labels.shape} dtype {labels.dtype}"
        )
    return labels.astype(np.int64)


def prepare_baseline(
    train, train_labels, heldout, heldout_labels, k: int = 5, n_classes: int | None = None
) -> Baseline:
    """Neighbourhoods of the clean training set and of the held-out set (computed once per audit).

    Args:
        train: float (N, d) clean training embeddings. train_labels: int (N,).
        heldout: float (M, d) held-out embeddings. heldout_labels: int (M,).
        k: neighbourhood size of NND_k; needs ``k < M`` and ``k < N``.
    """
    train, heldout = (
        check_embeddings(train, "train embeddings"),
        check_embeddings(heldout, "held-out embeddings"),
    )
    if train.shape[1] != heldout.shape[1]:
        raise CoverageError(
            f"embedding dimensions differ: train d={train.shape[1]}, held-out d={heldout.shape[1]}"
        )
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise CoverageError(f"k must be a positive integer, got {k!r}")
    for name, x in (("training", train), ("held-out", heldout)):
        if len(x) <= k:
            raise CoverageError(f"the {name} set has {len(x)} points; k={k} needs more than k")
    train_labels = _labels(train_labels, len(train), "train labels")
    heldout_labels = _labels(heldout_labels, len(heldout), "held-out labels")
    if len(np.unique(train_labels)) < 2:
        raise CoverageError("the training labels hold a single class; label-aware metrics need at least 2")
    n_classes = n_classes or int(max(train_labels.max(), heldout_labels.max())) + 1
    heldout_radii = kth_neighbour_distance(heldout, k)
    dist, idx = knn(heldout, train, k)
    train_sq = self_neighbours_squared(train, k)  # one search gives fidelity's radii and diversity's scale
    return Baseline(
        k=int(k),
        n_classes=n_classes,
        train=train,
        train_labels=train_labels,
        heldout=heldout,
        heldout_labels=heldout_labels,
        heldout_radii=heldout_radii,
        knn_train_dist=dist,
        knn_train_idx=idx,
        train_radii_sq=train_sq[:, k],
        diversity_scale=float(np.median(np.sqrt(train_sq[:, 1]))),
        log_floor=float(1e-6 * max(np.median(heldout_radii), 1e-12)),
    )


def knn_vote(neighbour_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority label of each row of (M, k) labels ordered nearest first; a tie goes to the tied class whose
    neighbour comes first."""
    m, k = neighbour_labels.shape
    counts = np.zeros((m, n_classes), np.int64)
    np.add.at(counts, (np.repeat(np.arange(m), k), neighbour_labels.ravel()), 1)
    best = counts.max(axis=1, keepdims=True)
    is_best = np.take_along_axis(counts, neighbour_labels, axis=1) == best  # (M, k): neighbour of a top class
    first = is_best.argmax(axis=1)
    return neighbour_labels[np.arange(m), first]


def recipe_metrics(
    base: Baseline,
    views,
    view_sources,
    *,
    view_correct=None,
    clean_correct=None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    max_fidelity_views: int | None = 10_000,
) -> dict[str, Metric]:
    """Every coverage metric of one recipe, with bootstrap intervals and per-class values.

    Args:
        base: from :func:`prepare_baseline`.
        views: float (N·V, d) embeddings of the recipe's views of the training images.
        view_sources: int (N·V,) index in T of each view's source image (views inherit its label).
        view_correct, clean_correct: bool arrays, whether a classifier gets each view / each clean image right;
            label consistency is reported when both are given.
        n_boot, seed: bootstrap replicates and their seed.
        max_fidelity_views: fidelity and PRDC density are estimated on a seeded sample of this many views
            (None: all views); their intervals include the sampling error.

    Returns:
        {name: Metric}. Held-out metrics resample held-out points and break down by held-out class; view metrics
        (fidelity, PRDC density, diversity, label consistency) resample views and break down by the views' class.
        PRDC recall and coverage of the views are not included (they need a k-NN search within the views, the
        costliest step at scale); ``densify.coverage.prdc`` computes all four.
    """
    views = check_embeddings(views, "view embeddings")
    if views.shape[1] != base.train.shape[1]:
        raise CoverageError(
            f"embedding dimensions differ: views d={views.shape[1]}, train d={base.train.shape[1]}"
        )
    sources = np.asarray(view_sources, dtype=np.int64)
    if sources.shape != (len(views),) or sources.min() < 0 or sources.max() >= len(base.train):
        raise CoverageError("view_sources must give, for every view, the index of its source training image")
    k, c, y_h = base.k, base.n_classes, base.heldout_labels
    view_labels = base.train_labels[sources]

    # Held-out neighbourhoods in T ∪ A: merge the k-NN in T (shared by all recipes) with the k-NN in A.
    # The k-NN vote in T ∪ A uses k (1 + V) neighbours, the same neighbourhood scale as k in T alone (T ∪ A is
    # 1 + V times denser), so a recipe whose views duplicate their sources changes no vote.
    per_image = len(views) / len(base.train)
    k_vote = max(k, round(k * (1 + per_image)))
    t_dist, t_idx = base.train_neighbours(k_vote)
    d_a, i_a = knn(base.heldout, views, min(k_vote, len(views)))
    dist = np.concatenate([t_dist, d_a], axis=1)
    labs = np.concatenate([base.train_labels[t_idx], view_labels[i_a]], axis=1)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k_vote]
    dist_ta, labs_ta = np.take_along_axis(dist, order, axis=1), np.take_along_axis(labs, order, axis=1)
    d_t, d_ta = base.knn_train_dist[:, 0], dist_ta[:, 0]
    lab_t = base.train_labels[base.knn_train_idx[:, 0]]

    cov_t = d_t < base.heldout_radii
    cov_ta = d_ta < base.heldout_radii
    label_cov_t = cov_t & (lab_t == y_h)
    label_cov_ta = cov_ta & (labs_ta[:, 0] == y_h)
    knn_t = knn_vote(base.train_labels[base.knn_train_idx], c) == y_h
    knn_ta = knn_vote(labs_ta, c) == y_h
    floor = base.log_floor
    densification = np.log(np.maximum(d_t, floor)) - np.log(np.maximum(d_ta, floor))

    held = {
        "coverage_clean": cov_t,
        "coverage_augmented": cov_ta,
        "coverage_gain": cov_ta.astype(float) - cov_t,
        "densification": densification,
        "label_coverage_clean": label_cov_t,
        "label_coverage_augmented": label_cov_ta,
        "label_coverage_gain": label_cov_ta.astype(float) - label_cov_t,
        "knn_accuracy_clean": knn_t,
        "knn_accuracy_augmented": knn_ta,
        "knn_accuracy_gain": knn_ta.astype(float) - knn_t,
        "nn_accuracy_augmented": labs_ta[:, 0] == y_h,
    }
    identical = np.array_equal(views, base.train[sources])  # every view is its source (``none``)
    held.update(_probe_gains(base, views, sources, identical))
    variance = _prediction_variance(base, views, sources, identical)
    held["class_margin_gain"] = _class_margin(base, views, sources, identical) - _clean_class_margin(base)
    out = {name: _metric(v, y_h, c, n_boot, seed) for name, v in held.items()}

    # Fidelity is a mean over views: on a seeded random sample of at most `max_fidelity_views` views (a Monte
    # Carlo estimate whose bootstrap interval reflects the sample), it costs one pass over sample × T.
    sample = np.arange(len(views))
    if max_fidelity_views is not None and len(views) > max_fidelity_views:
        sample = np.sort(np.random.default_rng(seed).choice(len(views), max_fidelity_views, replace=False))
    balls = ball_counts(base.train, views[sample], k, real_radii_sq=base.train_radii_sq)
    out["fidelity"] = _metric(balls > 0, view_labels[sample], c, n_boot, seed)
    out["prdc_density"] = _metric(balls / k, view_labels[sample], c, n_boot, seed)
    moved = _displacements(views, base.train, sources)
    out["diversity"] = _metric(moved / max(base.diversity_scale, 1e-12), view_labels, c, n_boot, seed)
    with_views = np.isfinite(variance)
    out["prediction_variance"] = _metric(variance[with_views], base.train_labels[with_views], c, n_boot, seed)
    out["alignment_gain"] = _alignment(base, views, sources, identical, n_boot, seed)
    if view_correct is not None and clean_correct is not None:
        view_correct = np.asarray(view_correct, dtype=float)
        clean_correct = np.asarray(clean_correct, dtype=float)
        value, low, high = ratio_ci(view_correct, clean_correct, n_boot, seed)
        with np.errstate(
            divide="ignore", invalid="ignore"
        ):  # a class the classifier never gets right: NaN/inf
            per_class = per_class_means(view_correct, view_labels, c) / per_class_means(
                clean_correct, base.train_labels, c
            )
        per_class = np.where(np.isfinite(per_class), per_class, np.nan)
        out["label_consistency"] = Metric(value, low, high, tuple(float(v) for v in per_class))
    return out


def class_margins(points: np.ndarray, labels: np.ndarray, reference: np.ndarray, reference_labels: np.ndarray,
                  n_classes: int) -> np.ndarray:  # fmt: skip
    """Per point: distance to the nearest reference sample of another class minus distance to the nearest of its
    own class (Ji et al., 2021: held-out accuracy grows with this local class margin). Classes absent from the
    reference count as infinitely far; a point with no own-class reference gets -inf, clipped below."""
    own = np.full(len(points), np.inf)
    other = np.full(len(points), np.inf)
    for c in range(n_classes):
        members = reference[reference_labels == c]
        if len(members) == 0:
            continue
        d = knn(points, members, 1)[0][:, 0]
        mine = labels == c
        own[mine] = np.minimum(own[mine], d[mine])
        other[~mine] = np.minimum(other[~mine], d[~mine])
    margin = other - own
    finite = margin[np.isfinite(margin)]
    bound = float(np.abs(finite).max()) if len(finite) else 0.0
    return np.clip(margin, -bound, bound)


def _clean_class_margin(base: Baseline) -> np.ndarray:
    if "class_margin" not in base.memo:
        base.memo["class_margin"] = class_margins(
            base.heldout, base.heldout_labels, base.train, base.train_labels, base.n_classes
        )
    return base.memo["class_margin"]


def _class_margin(base: Baseline, views: np.ndarray, sources: np.ndarray, identical: bool) -> np.ndarray:
    """Class margins of the held-out points against T ∪ A (the clean margins when every view is its source)."""
    if identical:
        return _clean_class_margin(base)
    ref = np.concatenate([base.train, views])
    labels = np.concatenate([base.train_labels, base.train_labels[sources]])
    return class_margins(base.heldout, base.heldout_labels, ref, labels, base.n_classes)


def _probe_gains(
    base: Baseline, views: np.ndarray, sources: np.ndarray, identical: bool
) -> dict[str, np.ndarray]:
    """Per held-out point: the linear probe's correctness and margin gains from adding the views
    (``densify/coverage/_probe.py``); the probe on T alone is fitted once per baseline."""
    from densify.coverage._probe import correct_and_margin, fit_probe, probe_scores

    mean, scale, ok_t, margin_t, _, _ = _probe(base)
    if identical:  # the probe is the same, exactly (no float noise from the refit)
        return {"probe_accuracy_gain": np.zeros(len(ok_t)), "probe_margin_gain": np.zeros(len(ok_t))}
    y = np.concatenate([base.train_labels, base.train_labels[sources]])
    w, b = fit_probe([base.train, views], y, base.n_classes, mean, scale)
    ok_ta, margin_ta = correct_and_margin(probe_scores(base.heldout, w, b, mean, scale), base.heldout_labels)
    return {"probe_accuracy_gain": ok_ta.astype(float) - ok_t, "probe_margin_gain": margin_ta - margin_t}


def _probe(base: Baseline):
    """(mean, scale, held-out correct, held-out margin, W, b) of the ridge probe on T (fitted once per baseline)."""
    from densify.coverage._probe import correct_and_margin, fit_probe, probe_scores, standardiser

    if "probe" not in base.memo:
        mean, scale = standardiser(base.train)
        w, b = fit_probe(base.train, base.train_labels, base.n_classes, mean, scale)
        ok, margin = correct_and_margin(probe_scores(base.heldout, w, b, mean, scale), base.heldout_labels)
        base.memo["probe"] = (mean, scale, ok, margin, w, b)
    return base.memo["probe"]


#: rows of views whose float64 displacement is computed at a time (row norms do not depend on the blocking)
_DISPLACEMENT_ROWS = 1 << 16


def _displacements(views: np.ndarray, train: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """float64 (V,): each view's Euclidean distance to its source's embedding, in blocks of rows (two float64
    copies of a million views would be 0.5 GB at d = 32)."""
    out = np.empty(len(views))
    for start in range(0, len(views), _DISPLACEMENT_ROWS):
        rows = slice(start, start + _DISPLACEMENT_ROWS)
        diff = views[rows].astype(np.float64) - train[sources[rows]].astype(np.float64)
        out[rows] = np.linalg.norm(diff, axis=1)
    return out


def _prediction_variance(
    base: Baseline, views: np.ndarray, sources: np.ndarray, identical: bool
) -> np.ndarray:
    """Per training sample: the clean probe's output variance over the sample and its views (NaN without views)."""
    from densify.coverage._probe import prediction_variance, probe_scores

    mean, scale, _, _, w, b = _probe(base)
    counts = np.bincount(sources, minlength=len(base.train))
    if identical:  # every view is its source: no variance, exactly
        return np.where(counts > 0, 0.0, np.nan)
    if "probe_train_scores" not in base.memo:
        base.memo["probe_train_scores"] = probe_scores(base.train, w, b, mean, scale)
    return prediction_variance(
        base.memo["probe_train_scores"], probe_scores(views, w, b, mean, scale), sources
    )


def _alignment(base: Baseline, views: np.ndarray, sources: np.ndarray, identical: bool, n_boot: int,
               seed: int) -> Metric:  # fmt: skip
    """The kernel-target alignment gain of the view-averaged features (``densify/coverage/_alignment.py``)."""
    from densify.coverage._alignment import alignment_gain

    if identical:  # averaging a sample with copies of itself changes nothing
        return Metric(0.0, 0.0, 0.0, tuple(0.0 for _ in range(base.n_classes)))
    value, low, high, per_class = alignment_gain(
        base.train, views, sources, base.train_labels, base.n_classes, n_boot, seed
    )
    return Metric(value, low, high, tuple(float(v) for v in per_class))


def _metric(values, labels, n_classes: int, n_boot: int, seed: int) -> Metric:
    values = np.asarray(values, dtype=np.float64)
    value, low, high = mean_ci(values, n_boot, seed)
    return Metric(value, low, high, tuple(float(v) for v in per_class_means(values, labels, n_classes)))


def heldout_coverage(train, heldout, k: int = 5) -> float:
    """cov(S) for S = ``train``: share of held-out points h with min_s d(h, s) < NND_k(h, H)."""
    heldout = check_embeddings(heldout, "held-out embeddings")
    radii = kth_neighbour_distance(heldout, k)
    return float((knn(heldout, train, 1)[0][:, 0] < radii).mean())

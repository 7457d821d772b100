"""How held-out coverage grows with real data, and how much real data a recipe's views are worth.

Notation as in the design: T = clean training embeddings, H = held-out embeddings, k = the neighbourhood size of
held-out coverage (a held-out point h is covered by a set S when d(h, S) < NND_k(h, H)).

- :func:`coverage_curve` measures held-out coverage and the mean log nearest-training-sample distance on nested,
  class-stratified subsets T_n of T (each subset contains the smaller ones), overall and per class.
- :class:`PowerLaw` fits the uncovered share 1 - cov(n) = a * n**(-b) by least squares in log-log space over the
  three largest sizes (where it lies strictly between 0 and 1), and :meth:`PowerLaw.size_for` inverts it: the size at which
  coverage would reach a target. The mean log distance is linear in log n (log d(n) = c - s log n; s is about
  1 / intrinsic dimension for uniform sampling).
- :func:`data_multiplier`: a recipe's *coverage-equivalent data multiplier* is n* / N where cov(n*) equals the
  coverage T ∪ A_r reaches; its *distance-equivalent* multiplier, exp(densification / s), is the growth of the
  clean set that would bring held-out points as much closer as the recipe's views do. Both extrapolate the fitted
  laws beyond N (a recipe adds views, not images), so they are estimates, flagged when far beyond the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from densify.coverage._knn import kth_neighbour_distance, nearest
from densify.errors import CoverageError

#: nested subset fractions of the training set the curve is measured at
FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
#: the default coverage target the per-class needs are computed for
TARGET = 0.95
#: multipliers beyond this are reported as a lower bound (the fit is extrapolated too far to say more)
MAX_MULTIPLIER = 100.0


@dataclass(frozen=True)
class PowerLaw:
    """y = a * n**(-b), fitted in log-log space; ``points`` is how many sizes entered the fit (NaN fit below 2)."""

    a: float
    b: float
    points: int

    def __call__(self, n) -> np.ndarray:
        return self.a * np.asarray(n, dtype=np.float64) ** (-self.b)

    def size_for(self, y: float) -> float:
        """The n at which the law reaches y (inf when it never does, NaN when the fit is undefined)."""
        if not np.isfinite(self.a) or not np.isfinite(self.b) or self.points < 2:
            return float("nan")
        if y <= 0:
            return float("inf")
        if self.b <= 0:
            return float("inf") if y < self.a else 0.0
        log_n = (math.log(self.a) - math.log(y)) / self.b
        return math.exp(log_n) if log_n < 700 else float("inf")

    def to_dict(self) -> dict:
        return {"a": _round(self.a), "b": _round(self.b), "points": self.points}


def _round(x: float, digits: int = 6) -> float | None:
    return round(float(x), digits) if np.isfinite(x) else None


#: the power laws are fitted on the largest this-many sizes: the local slope near N is what extrapolation uses
FIT_POINTS = 3


def fit_power_law(sizes, values, last: int | None = FIT_POINTS) -> PowerLaw:
    """Least-squares fit of log(values) = log(a) - b log(sizes) over the ``last`` largest sizes (None: all) whose
    value lies strictly between 0 and 1 (an uncovered share of 0 or 1 carries no slope information)."""
    sizes, values = np.asarray(sizes, dtype=np.float64), np.asarray(values, dtype=np.float64)
    keep = (values > 0) & (values < 1) & (sizes > 0)
    if last is not None:
        keep &= sizes >= np.sort(sizes)[-min(last, len(sizes))]
    if len(np.unique(sizes[keep])) < 2:  # no slope without two distinct sizes
        return PowerLaw(float("nan"), float("nan"), int(keep.sum()))
    slope, intercept = np.polyfit(np.log(sizes[keep]), np.log(values[keep]), 1)
    return PowerLaw(float(np.exp(intercept)), float(-slope), int(keep.sum()))


def fit_log_distance(sizes, log_distances, last: int | None = FIT_POINTS) -> tuple[float, float]:
    """(c, s) of the least-squares line mean log d(n) = c - s log n over the ``last`` largest sizes."""
    sizes, log_distances = np.asarray(sizes, dtype=np.float64), np.asarray(log_distances, dtype=np.float64)
    if last is not None:
        keep = sizes >= np.sort(sizes)[-min(last, len(sizes))]
        sizes, log_distances = sizes[keep], log_distances[keep]
    if len(np.unique(sizes)) < 2 or not np.all(np.isfinite(log_distances)):
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log(sizes), log_distances, 1)
    return float(intercept), float(-slope)


def nested_subsets(
    labels: np.ndarray, fractions, seed: int = 0, n_classes: int | None = None
) -> list[np.ndarray]:
    """Index arrays of nested class-stratified subsets: each class's images in one seeded random order, and subset
    j takes the first ceil(fraction_j * n_c) of every class c (at least one). Larger fractions contain smaller."""
    labels = np.asarray(labels)
    fractions = sorted(float(f) for f in fractions)
    if not fractions or fractions[0] <= 0 or fractions[-1] > 1:
        raise CoverageError(f"subset fractions must lie in (0, 1], got {fractions}")
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(np.flatnonzero(labels == c)) for c in range(n_classes or labels.max() + 1)]
    out = []
    for f in fractions:
        parts = [order[: max(1, int(np.ceil(f * len(order))))] for order in orders if len(order)]
        out.append(np.sort(np.concatenate(parts)))
    return out


@dataclass(frozen=True)
class CoverageCurve:
    """Held-out coverage and mean log nearest-sample distance versus training size, overall and per class.

    sizes: (S,) training-subset sizes; class_sizes: (S, C) images of each class in each subset.
    coverage / log_distance: (S,) overall; class_coverage / class_log_distance: (S, C), over the held-out points
    of each class (covered, and distances, against the whole subset). fit / class_fits: the power laws of the
    uncovered share; distance_fit: (c, s) of mean log d(n) = c - s log n.
    """

    sizes: np.ndarray
    class_sizes: np.ndarray
    coverage: np.ndarray
    log_distance: np.ndarray
    class_coverage: np.ndarray
    class_log_distance: np.ndarray
    fit: PowerLaw
    class_fits: tuple[PowerLaw, ...]
    distance_fit: tuple[float, float]

    def size_for_coverage(self, coverage: float) -> float:
        """Training size at which the fitted curve reaches ``coverage`` (overall)."""
        return self.fit.size_for(1.0 - coverage)

    def class_needs(
        self, classes: tuple[str, ...], target: float = TARGET, recipes: dict[str, np.ndarray] | None = None
    ) -> list[dict]:
        """Per class: its images now, coverage now, the fitted number of its images that would reach ``target``
        held-out coverage, and that as a multiple of now (None when the fit is undefined).

        ``recipes`` maps recipe names to their per-class coverage of T ∪ A_r; the class's row then names the recipe
        that covers it best (``recipe``), that coverage and its class-level coverage-equivalent multiple."""
        out = []
        now = self.class_sizes[-1]
        for c, name in enumerate(classes):
            cov = float(self.class_coverage[-1, c])
            fit = self.class_fits[c]
            need = None
            if np.isfinite(cov):
                if cov >= target:
                    need = float(now[c])
                else:
                    n_class = fit.size_for(1.0 - target)
                    if np.isfinite(n_class) or n_class == float("inf"):
                        need = max(float(now[c]), n_class)
            ratio = None if need is None or now[c] == 0 else need / now[c]
            out.append(
                {
                    "class": name,
                    "images": int(now[c]),
                    "coverage": _round(cov, 4),
                    "needed": None if need is None else int(np.ceil(min(need, MAX_MULTIPLIER * now[c]))),
                    "multiple": None if ratio is None else round(float(min(ratio, MAX_MULTIPLIER)), 2),
                    "beyond": bool(ratio is not None and ratio > MAX_MULTIPLIER),
                    "exponent": _round(fit.b, 4),
                }
            )
            best = None
            for name, per_class in (recipes or {}).items():
                value = float(per_class[c])
                if np.isfinite(value) and value > cov and (best is None or value > best[1]):
                    best = (name, value)
            if best is not None:
                n_eq = fit.size_for(1.0 - best[1]) if best[1] < 1 else float("inf")
                multiple = (
                    max(1.0, n_eq / now[c])
                    if (np.isfinite(n_eq) or n_eq == float("inf")) and now[c]
                    else None
                )
                out[-1].update(
                    recipe=best[0],
                    recipe_coverage=_round(best[1], 4),
                    recipe_multiple=None if multiple is None else round(min(multiple, MAX_MULTIPLIER), 2),
                )
        return out

    def to_dict(
        self, classes: tuple[str, ...], target: float = TARGET, recipes: dict[str, np.ndarray] | None = None
    ) -> dict:
        return {
            "sizes": [int(s) for s in self.sizes],
            "coverage": [_round(v, 4) for v in self.coverage],
            "log_distance": [_round(v, 4) for v in self.log_distance],
            "class_coverage": {
                name: [_round(v, 4) for v in self.class_coverage[:, c]] for c, name in enumerate(classes)
            },
            "fit": self.fit.to_dict(),
            "distance_fit": {"c": _round(self.distance_fit[0]), "s": _round(self.distance_fit[1])},
            "target": target,
            "class_needs": self.class_needs(classes, target, recipes),
        }


def coverage_curve(
    train: np.ndarray,
    train_labels: np.ndarray,
    heldout: np.ndarray,
    heldout_labels: np.ndarray,
    *,
    k: int = 5,
    fractions=FRACTIONS,
    seed: int = 0,
    n_classes: int | None = None,
    radii: np.ndarray | None = None,
    log_floor: float = float(np.finfo(np.float64).tiny),
) -> CoverageCurve:
    """Measure the coverage-versus-data curve of ``heldout`` by nested stratified subsets of ``train``.

    ``radii`` may pass NND_k(h, H) when already computed (the audit's baseline holds them); distances below
    ``log_floor`` count as it in the logarithms (the baseline's floor, so they match densification's).
    """
    train_labels, heldout_labels = np.asarray(train_labels), np.asarray(heldout_labels)
    n_classes = n_classes or int(max(train_labels.max(), heldout_labels.max()) + 1)
    if radii is None:
        radii = kth_neighbour_distance(heldout, k)
    subsets = nested_subsets(train_labels, fractions, seed, n_classes)
    held_counts = np.bincount(heldout_labels, minlength=n_classes)
    sizes, class_sizes, cov, logd, ccov, clogd = [], [], [], [], [], []
    for rows in subsets:
        dist, _ = nearest(heldout, np.asarray(train)[rows])
        covered = (dist < radii).astype(np.float64)
        logs = np.log(np.maximum(dist, log_floor))
        sizes.append(len(rows))
        class_sizes.append(np.bincount(train_labels[rows], minlength=n_classes))
        cov.append(covered.mean())
        logd.append(logs.mean())
        with np.errstate(invalid="ignore", divide="ignore"):
            ccov.append(np.bincount(heldout_labels, covered, n_classes) / held_counts)
            clogd.append(np.bincount(heldout_labels, logs, n_classes) / held_counts)
    sizes_a = np.asarray(sizes, dtype=np.float64)
    cov_a, ccov_a = np.asarray(cov), np.asarray(ccov)
    class_sizes_a = np.asarray(class_sizes)
    class_fits = tuple(
        fit_power_law(class_sizes_a[:, c], 1.0 - ccov_a[:, c])
        if held_counts[c]
        else PowerLaw(np.nan, np.nan, 0)
        for c in range(n_classes)
    )
    return CoverageCurve(
        sizes=sizes_a.astype(np.int64),
        class_sizes=class_sizes_a,
        coverage=cov_a,
        log_distance=np.asarray(logd),
        class_coverage=ccov_a,
        class_log_distance=np.asarray(clogd),
        fit=fit_power_law(sizes_a, 1.0 - cov_a),
        class_fits=class_fits,
        distance_fit=fit_log_distance(sizes_a, logd),
    )


def data_multiplier(curve: CoverageCurve, coverage_augmented: float, densification: float) -> dict:
    """A recipe's coverage-equivalent and distance-equivalent data multipliers (see the module docstring).

    ``coverage``: n* / N with cov(n*) = ``coverage_augmented`` on the fitted curve (at least 1: T ∪ A_r contains T;
    None when the fit is undefined). ``distance``: exp(densification / s). Values above :data:`MAX_MULTIPLIER` are
    capped there and ``beyond`` is set.
    """
    n = float(curve.sizes[-1])
    cov_now = float(curve.coverage[-1])
    by_cov = None
    if coverage_augmented <= cov_now:
        by_cov = 1.0
    else:
        n_star = curve.size_for_coverage(coverage_augmented)
        if np.isfinite(n_star) or n_star == float("inf"):
            by_cov = max(1.0, n_star / n)
    slope = curve.distance_fit[1]
    by_dist = float(np.exp(densification / slope)) if slope > 0 else None
    beyond = any(v is not None and v > MAX_MULTIPLIER for v in (by_cov, by_dist))
    return {
        "coverage": None if by_cov is None else round(min(by_cov, MAX_MULTIPLIER), 3),
        "distance": None if by_dist is None else round(min(by_dist, MAX_MULTIPLIER), 3),
        "beyond": beyond,
    }

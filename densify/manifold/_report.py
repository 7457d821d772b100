"""The manifold section of an audit: intrinsic dimension, the coverage-versus-data curve, per-class needs and each
recipe's data multipliers, computed from the embeddings the coverage estimator already holds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from densify._gram import centred_gram
from densify.manifold._curve import TARGET, CoverageCurve, coverage_curve, data_multiplier
from densify.manifold._dimension import dimensions

#: principal components of the pixels the image-space intrinsic dimension is measured on (see docs/manifold-lab.md:
#: on the known-factor families it lands within +-1 of the true factor count; trained encoders' embeddings do not)
PIXEL_COMPONENTS = 32


#: above this many rows and columns, principal components come from the smaller side's float64 Gram matrix (its top
#: eigenvectors) instead of a full SVD: 4,000 images of 32x32x3 take 2.5 s instead of 17 s on 2 cores, and agree
#: to 3e-6 (tests/test_manifold.py)
GRAM_FROM = 1024
GRAM_ROWS = 4096
#: no full SVD above this many pixel values (rows x columns) either: its float32 copies and factors grow with the
#: rows, the Gram matrix does not (250,000 16x16 images: 3.1 GB peak through the SVD, benchmarks/bench_scale.py)
SVD_MAX_VALUES = 1 << 24


def pixel_projection(images: np.ndarray, components: int = PIXEL_COMPONENTS) -> np.ndarray:
    """float32 (N, min(components, N, D)): pixels / 255 projected on their top principal components (centred)."""
    flat = images.reshape(len(images), -1)
    rows, cols = flat.shape
    if rows >= cols and (cols > GRAM_FROM or flat.size > SVD_MAX_VALUES):
        return _gram_projection(flat, min(components, cols))
    x = flat.astype(np.float32) / 255.0
    x = x - x.mean(axis=0)
    n = min(components, *x.shape)
    if min(x.shape) <= GRAM_FROM:
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        return (x @ vt[:n].T).astype(np.float32)
    from scipy.linalg import eigh

    rows, cols = x.shape
    x64 = x.astype(
        np.float64
    )  # K = X X^T (rows x rows); the projection is U S = eigenvectors x sqrt(eigenvalues)
    values, vectors = eigh(x64 @ x64.T, subset_by_index=(rows - n, rows - 1))
    return (vectors[:, ::-1] * np.sqrt(np.maximum(values[::-1], 0.0))).astype(np.float32)


def _gram_projection(flat: np.ndarray, n: int) -> np.ndarray:
    """As :func:`pixel_projection` for rows >= columns: C = X^T X (columns x columns) accumulated in float64 over
    blocks of rows of the centred pixels / 255, its top ``n`` eigenvectors, the projection block by block (no copy of
    all the pixels in float)."""
    from scipy.linalg import eigh

    rows, cols = flat.shape
    mean, gram = centred_gram(flat, divide=255.0, rows=GRAM_ROWS)

    def block(start: int) -> np.ndarray:
        return flat[start : start + GRAM_ROWS].astype(np.float64) / 255.0 - mean

    _, vectors = eigh(gram, subset_by_index=(cols - n, cols - 1))
    vectors = vectors[:, ::-1]
    return np.concatenate(
        [(block(start) @ vectors).astype(np.float32) for start in range(0, rows, GRAM_ROWS)]
    )


@dataclass(frozen=True)
class ManifoldReport:
    """Manifold diagnostics of one dataset under one encoder.

    dimension: :func:`densify.manifold.dimensions` of the clean training embeddings; pixel_dimension: the same
    on the training images' top :data:`PIXEL_COMPONENTS` principal components (None when not computed).
    curve: :class:`CoverageCurve` of held-out coverage by nested subsets of the training embeddings.
    multipliers: per recipe, :func:`data_multiplier` of its coverage of T ∪ A_r and densification.
    """

    classes: tuple[str, ...]
    dimension: dict
    curve: CoverageCurve
    pixel_dimension: dict | None = None
    target: float = TARGET
    multipliers: dict[str, dict] = field(default_factory=dict)
    class_coverage: dict[str, np.ndarray] = field(default_factory=dict)
    factor_space: dict[str, dict] | None = None

    def with_recipes(
        self, recipes: dict[str, tuple[float, float, np.ndarray]], factor_space: dict[str, dict] | None = None
    ) -> ManifoldReport:
        """A copy with multipliers for ``{recipe: (coverage of T ∪ A_r, densification, its per-class coverage)}``
        (the per-class coverage names, for each class, the recipe that covers it best) and, for known-factor data,
        each recipe's coverage in factor space (:func:`densify.manifold.factor_coverage`, or why it is unknown)."""
        out = {name: data_multiplier(self.curve, cov, dens) for name, (cov, dens, _) in recipes.items()}
        per_class = {name: np.asarray(pc, dtype=np.float64) for name, (_, _, pc) in recipes.items()}
        return ManifoldReport(
            self.classes,
            self.dimension,
            self.curve,
            self.pixel_dimension,
            self.target,
            out,
            per_class,
            factor_space,
        )

    def to_dict(self) -> dict:
        def dims(d: dict | None) -> dict | None:
            if d is None:
                return None
            return {
                method: {
                    "overall": None if v["overall"] is None else v["overall"].to_dict(),
                    "per_class": {c: None if e is None else e.to_dict() for c, e in v["per_class"].items()},
                }
                for method, v in d.items()
            }

        return {
            "intrinsic_dimension": {"embeddings": dims(self.dimension), "pixels": dims(self.pixel_dimension)},
            "pixel_components": PIXEL_COMPONENTS,
            "curve": self.curve.to_dict(self.classes, self.target, self.class_coverage),
            "multipliers": self.multipliers,
            "factor_space": self.factor_space,
        }


def manifold_diagnostics(
    train: np.ndarray,
    train_labels: np.ndarray,
    heldout: np.ndarray,
    heldout_labels: np.ndarray,
    classes: tuple[str, ...],
    *,
    k: int = 5,
    seed: int = 0,
    n_boot: int = 1000,
    images: np.ndarray | None = None,
    radii: np.ndarray | None = None,
    log_floor: float | None = None,
    target: float = TARGET,
) -> ManifoldReport:
    """Intrinsic dimension (TwoNN and MLE, overall and per class) of the training embeddings, and of the training
    ``images``' principal components when given; the coverage-versus-data curve of the held-out embeddings."""
    dim = dimensions(train, train_labels, classes, n_boot=n_boot, seed=seed)
    pixel = None
    if images is not None:
        pixel = dimensions(pixel_projection(images), train_labels, classes, n_boot=n_boot, seed=seed)
    curve = coverage_curve(
        train,
        train_labels,
        heldout,
        heldout_labels,
        k=k,
        seed=seed,
        n_classes=len(classes),
        radii=radii,
        **({} if log_floor is None else {"log_floor": log_floor}),
    )
    return ManifoldReport(tuple(classes), dim, curve, pixel, target)

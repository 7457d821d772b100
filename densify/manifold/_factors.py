"""Coverage in factor space: where a recipe's views of a known-factor dataset lie on the *true* manifold.

A ``synth:`` image is a pure function of its factor vector (:mod:`densify.data._synth`), and many transforms act on
those factors exactly: a horizontal flip maps (rotation, x) to (-rotation, -x), an affine warp moves the centre
by its matrix, turns the object by its rotation and scales it by the square root of its determinant, a hue shift
adds to the hue. :func:`view_factors` replays a recipe's views (the very views the estimator embeds: same seed,
index and view keys) with albumentations recording what it applied, and maps each applied transform onto the
factors. A view whose transforms are all in :data:`EXACT` gets exact factors; any other transform (noise, blur,
occlusion, shear, contrast, elastic warps) makes the recipe's factor-space coverage undefined, and it is reported
as such rather than guessed.

:func:`factor_coordinates` embeds factor vectors in a Euclidean space where each factor counts in units of its
held-out range (angles on circles whose period is the shape's rotational symmetry, each shape its own component),
so that held-out coverage and densification in factor space can be set beside the estimator's embedding-space
numbers (``benchmarks/manifold/agreement.py``; docs/manifold-lab.md).
"""

from __future__ import annotations

import math

import numpy as np

from densify.data._imageset import ImageSet
from densify.data._synth import FACTORS, FAMILIES, SHAPE_PERIOD, SHAPES
from densify.errors import DataError

#: transforms whose effect on the factors is known exactly (ColorJitter and HueSaturationValue only when they
#: change nothing but hue and brightness; Affine only without shear)
EXACT = (
    "HorizontalFlip",
    "VerticalFlip",
    "Affine",
    "Rotate",
    "ShiftScaleRotate",
    "SafeRotate",
    "ColorJitter",
)
_COL = {name: i for i, name in enumerate(FACTORS)}
#: how far from a similarity (relative to its scale) a warp may be and still count as exact: albumentations'
#: Affine draws x and y scales independently unless keep_ratio is set, so a 0.92-1.08 zoom stretches by up to ~16%
SIMILARITY_TOLERANCE = 0.2
#: coordinate offset between components of the manifold (different shapes): far beyond any factor distance
_COMPONENT_GAP = 100.0


class Unknown(Exception):
    """A transform whose effect on the factors is not known exactly (its name and why)."""


def _flip_matrix(horizontal: bool, size: int) -> np.ndarray:
    m = np.eye(3)
    axis = 0 if horizontal else 1
    m[axis, axis] = -1.0
    m[axis, 2] = size - 1.0
    return m


def _apply_matrix(f: np.ndarray, matrix: np.ndarray, size: int) -> None:
    """Move, turn and scale factor vector ``f`` (in place) by the 3x3 pixel matrix of an affine warp of a
    ``size``-pixel image (dst = M @ (col, row, 1), y down, pixel centres at integers)."""
    a = np.asarray(matrix, dtype=np.float64)[:2, :2]
    shift = np.asarray(matrix, dtype=np.float64)[:2, 2]
    det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
    if det < 0:  # a mirror: orientation theta -> -theta, then the remaining proper rotation
        f[_COL["rotation"]] = -f[_COL["rotation"]]
        a = a @ np.diag([-1.0, 1.0])
    rot = a[0, 0] + a[1, 1], a[0, 1] - a[1, 0]
    # a similarity has a00 = a11 and a01 = -a10; beyond SIMILARITY_TOLERANCE of its scale the shape itself changes
    off = max(abs(a[0, 1] + a[1, 0]), abs(a[0, 0] - a[1, 1])) / math.sqrt(abs(det))
    if off > SIMILARITY_TOLERANCE:
        raise Unknown(f"the warp stretches or shears the shape by {off:.0%}")
    f[_COL["rotation"]] += math.degrees(math.atan2(rot[1], rot[0]))
    f[_COL["scale"]] *= math.sqrt(abs(det))
    centre = (np.array([f[_COL["x"]], f[_COL["y"]]]) + 1.0) * size / 2.0 - 0.5
    moved = np.asarray(matrix, dtype=np.float64)[:2, :2] @ centre + shift
    f[_COL["x"]], f[_COL["y"]] = (moved + 0.5) * 2.0 / size - 1.0


def apply_transform(f: np.ndarray, name: str, params: dict, size: int) -> None:
    """Update factor vector ``f`` in place for one applied albumentations transform; :class:`Unknown` if its
    effect is not known exactly."""
    if name in ("HorizontalFlip", "VerticalFlip"):
        _apply_matrix(f, _flip_matrix(name == "HorizontalFlip", size), size)
    elif name in ("Affine", "Rotate", "ShiftScaleRotate", "SafeRotate"):
        if "matrix" not in params:
            raise Unknown(f"{name} recorded no warp matrix")
        _apply_matrix(f, params["matrix"], size)
    elif name == "ColorJitter":
        if abs(params.get("contrast", 1.0) - 1.0) > 1e-9 or abs(params.get("saturation", 1.0) - 1.0) > 1e-9:
            raise Unknown("ColorJitter with contrast or saturation changes leaves the factor model")
        f[_COL["hue"]] += 360.0 * params.get("hue", 0.0)
        b = params.get("brightness", 1.0)
        if f[_COL["brightness"]] * b > 1.0 + 1e-9:
            raise Unknown("ColorJitter brightness clips the colour")
        f[_COL["brightness"]] *= b
        f[_COL["background"]] *= b
    else:
        raise Unknown(f"{name} has no known effect on the factors")


def view_factors(train: ImageSet, augmenter, views: int) -> tuple[np.ndarray | None, str | None]:
    """Factor vectors (N * views, F) of ``augmenter``'s views of ``train`` (source-major, as the estimator orders
    them), or (None, reason) when some applied transform's effect on the factors is not known exactly."""
    if train.factors is None:
        raise DataError(f"{train.name}: factor-space coverage needs a known-factor (synth:) dataset")
    size = train.source_shape[0]
    out = np.repeat(np.asarray(train.factors, dtype=np.float64), views, axis=0)
    for i in range(len(train)):
        for v in range(views):
            _, applied = augmenter.applied(train.view_sources[i], index=i, view=v)
            for name, params in applied:
                try:
                    apply_transform(out[i * views + v], name, params, size)
                except Unknown as why:
                    return None, f"{name}: {why}"
    return out, None


def factor_coordinates(
    factors: np.ndarray, labels: np.ndarray, family: str, heldout: np.ndarray
) -> np.ndarray:
    """float64 (N, D): factor vectors as Euclidean points in units of each factor's held-out range.

    Linear factors are divided by their held-out range width (the family's default width when the held-out set
    holds it fixed, so a recipe that moves it still counts). Rotation lies on a circle whose period is the
    shape's rotational symmetry and hue on a 360-degree circle, with radii such that short arcs keep the same
    units. Each shape is its own component, far from the others.
    """
    factors = np.asarray(factors, dtype=np.float64)
    heldout = np.asarray(heldout, dtype=np.float64)
    defaults = FAMILIES[family].defaults
    columns = []

    def width(name: str, period: float | None = None) -> float:
        lo, hi = heldout[:, _COL[name]].min(), heldout[:, _COL[name]].max()
        w = hi - lo
        if w <= 1e-9:
            w = defaults[name][1] - defaults[name][0]
        if period is not None:
            w = min(w, period)
        return w if w > 1e-9 else 1.0

    for name in ("scale", "x", "y", "brightness", "background"):
        columns.append(factors[:, _COL[name]] / width(name))
    hue = np.deg2rad(factors[:, _COL["hue"]])
    r_hue = (180.0 / math.pi) / width("hue", 360.0)
    columns += [r_hue * np.cos(hue), r_hue * np.sin(hue)]
    if family == "shapes":
        shapes = np.asarray(SHAPES)[np.asarray(labels)]
    elif family == "colours":
        shapes = np.asarray(SHAPES)[factors[:, len(FACTORS)].astype(np.int64)]
    else:
        shapes = np.full(len(factors), "arrow")
    period = np.array([SHAPE_PERIOD[s] for s in shapes])
    angle = 2.0 * math.pi * factors[:, _COL["rotation"]] / period
    r_rot = period / (2.0 * math.pi) / width("rotation", float(period.max()))
    columns += [r_rot * np.cos(angle), r_rot * np.sin(angle)]
    for s in sorted(set(shapes)):
        columns.append(np.where(shapes == s, _COMPONENT_GAP, 0.0))
    return np.stack(columns, axis=1)


def factor_coverage(
    train: np.ndarray, views: np.ndarray, heldout: np.ndarray, k: int = 5
) -> dict[str, float]:
    """Held-out coverage by T and by T ∪ A, its gain, and densification, computed on factor coordinates (see
    :func:`factor_coordinates`) exactly as the estimator computes them on embeddings (same k, radii NND_k(h, H),
    same log floor)."""
    from densify.coverage import kth_neighbour_distance, nearest

    radii = kth_neighbour_distance(heldout, k)
    floor = float(1e-6 * max(np.median(radii), 1e-12))
    d_t, _ = nearest(heldout, train)
    d_a, _ = nearest(heldout, views) if len(views) else (np.full(len(heldout), np.inf), None)
    d_ta = np.minimum(d_t, d_a)
    cov_t, cov_ta = float(np.mean(d_t < radii)), float(np.mean(d_ta < radii))
    densification = float(np.mean(np.log(np.maximum(d_t, floor)) - np.log(np.maximum(d_ta, floor))))
    return {
        "coverage_clean": cov_t,
        "coverage_augmented": cov_ta,
        "coverage_gain": cov_ta - cov_t,
        "densification": densification,
    }

"""Precision, recall, density and coverage (Naeem et al., 2020), exactly as the reference ``prdc`` package.

The reference builds three all-pairs distance matrices (tens of GB at 60k points). Here the k-NN radii come from
:func:`~densify.coverage._knn.kth_neighbour_distance`, and the fake × real comparisons stream over blocks of fake
rows (one cache-sized block at a time), so memory stays bounded, and every near-tie is settled by exact arithmetic, so
results equal the reference's, ties and duplicates included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densify.coverage._knn import check_embeddings, kth_neighbour_distance, squared_difference
from densify.errors import CoverageError

BLOCK_BYTES = 1 << 22  # one fake-block × real float32 distance block: 4 MiB (fastest of 2-16 MiB measured)


@dataclass(frozen=True)
class PRDC:
    """PRDC of a fake set against a real set (all in [0, 1] except density, which is >= 0)."""

    precision: float
    recall: float
    density: float
    coverage: float


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("nd,nd->n", x, x, dtype=np.float64)  # float64 accumulation of float32 rows


#: row counts are summed as uint16 (4-5x faster than int64 here) over at most this many columns at a time
_COUNT_COLUMNS = 65535


def _row_counts(inside: np.ndarray) -> np.ndarray:
    """int64 (b,): True entries per row of a bool (b, N) block."""
    counts = np.zeros(len(inside), np.int64)
    as_bytes = inside.view(np.uint8)
    for start in range(0, inside.shape[1], _COUNT_COLUMNS):
        counts += as_bytes[:, start : start + _COUNT_COLUMNS].sum(axis=1, dtype=np.uint16)
    return counts


class _Compare:
    """Exact ``d^2(f_j, r_i) < t`` for blocks of fake rows against every real row, ``t`` per real point (a column
    threshold) or per fake point (a row threshold).

    Squared distances come from the float32 GEMM form ``|f|^2 + |r|^2 - 2 f.r``, within
    ``eps = (2 d + 8) 2^-24 (max |f|^2 + max |r|^2)`` of the truth. A pair further than ``eps`` from its threshold
    is decided by it; the rest (near-ties, exact ties such as a view copying a real point that is another real
    point's k-th neighbour, duplicates against a zero radius) are recomputed exactly by the same arithmetic as the
    radii, so ties stay ties under strict ``<``. Only the rows holding such a pair are looked at again, found by
    comparing a row's count below ``t - eps`` with its count up to ``t + eps``.
    """

    def __init__(self, real: np.ndarray, fake: np.ndarray):
        self.real, self.fake = real, fake
        self.fn, self.rn = _sq_norms(fake), _sq_norms(real)
        self.rn32 = self.rn.astype(np.float32)[None, :]
        self.eps = (2 * fake.shape[1] + 8) * 2.0**-24 * (self.fn.max() + self.rn.max()) + 1e-30
        self.rows = max(1, BLOCK_BYTES // (4 * len(real)))

    def bounds(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 (t - eps, t + eps): below the first a GEMM distance is surely under t, above the second not."""
        return (t - self.eps).astype(np.float32), (t + self.eps).astype(np.float32)

    def blocks(self):
        """Yield (start, stop, float32 GEMM squared distances (stop - start, N)) over blocks of fake rows."""
        for start in range(0, len(self.fake), self.rows):
            stop = min(start + self.rows, len(self.fake))
            d2 = (-2.0 * self.fake[start:stop]) @ self.real.T
            d2 += self.fn[start:stop].astype(np.float32)[:, None]
            d2 += self.rn32
            yield start, stop, d2

    def inside(self, d2, start, t, lo, hi):
        """(bool block ``d^2 < t`` exactly, int64 row counts of it). ``t``, ``lo``, ``hi`` broadcast against
        ``d2``: shape (N,) for a column threshold, (b, 1) for a row threshold."""
        inside = d2 < lo
        within = d2 <= hi
        n_inside = _row_counts(inside)
        rows = np.flatnonzero(_row_counts(within) != n_inside)
        if len(rows):
            jj, ii = np.nonzero(within[rows] != inside[rows])
            jj = rows[jj]
            exact = (
                squared_difference(self.fake[start + jj], self.real[ii])
                < np.broadcast_to(t, d2.shape)[jj, ii]
            )
            inside[jj, ii] = exact
            n_inside[rows] = _row_counts(inside[rows])
        return inside, n_inside


def ball_counts(
    real: np.ndarray, fake: np.ndarray, k: int = 5, real_radii_sq: np.ndarray | None = None
) -> np.ndarray:
    """int64 (M,): for each fake point, how many real k-NN balls contain it (strictly), exactly.

    ``balls > 0`` is PRDC's precision indicator and ``balls / k`` its density; this is the part of PRDC that
    needs no k-NN within ``fake``, so it costs one streaming pass over fake × real.
    """
    real, fake = check_embeddings(real, "real"), check_embeddings(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise CoverageError(f"embedding dimensions differ: real d={real.shape[1]}, fake d={fake.shape[1]}")
    if len(real) <= k:
        raise CoverageError(f"real: k={k} needs more than k points, got {len(real)}")
    r_real_sq = kth_neighbour_distance(real, k, squared=True) if real_radii_sq is None else real_radii_sq
    compare = _Compare(real, fake)
    lo, hi = compare.bounds(r_real_sq)
    balls = np.zeros(len(fake), np.int64)
    for start, stop, d2 in compare.blocks():
        balls[start:stop] = compare.inside(d2, start, r_real_sq, lo, hi)[1]
    return balls


def prdc_points(
    real: np.ndarray, fake: np.ndarray, k: int = 5, real_radii_sq: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-point PRDC statistics (for means, bootstrap intervals and per-class breakdowns).

    Args:
        real: float (N, d). fake: float (M, d). k: neighbourhood size, ``k < N`` and ``k < M``.
        real_radii_sq: ``kth_neighbour_distance(real, k, squared=True)`` if already computed, to reuse it
            across many fake sets.

    Returns:
        (balls int64 (M,): real k-NN balls containing each fake point,
         recalled bool (N,): real point inside some fake k-NN ball,
         covered bool (N,): real point whose own ball contains some fake point).
    """
    real, fake = check_embeddings(real, "real"), check_embeddings(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise CoverageError(f"embedding dimensions differ: real d={real.shape[1]}, fake d={fake.shape[1]}")
    for name, x in (("real", real), ("fake", fake)):
        if len(x) <= k:
            raise CoverageError(f"{name}: k={k} needs more than k points, got {len(x)}")
    # Exact squared radii (no sqrt round trip), so ties such as integer lattices compare exactly.
    r_real_sq = kth_neighbour_distance(real, k, squared=True) if real_radii_sq is None else real_radii_sq
    r_fake_sq = kth_neighbour_distance(fake, k, squared=True)
    compare = _Compare(real, fake)
    real_lo, real_hi = compare.bounds(r_real_sq)
    fake_lo, fake_hi = compare.bounds(r_fake_sq)
    balls = np.zeros(len(fake), np.int64)
    recalled = np.zeros(len(real), bool)
    covered = np.zeros(len(real), bool)
    for start, stop, d2 in compare.blocks():
        inside, balls[start:stop] = compare.inside(d2, start, r_real_sq, real_lo, real_hi)
        covered |= inside.any(axis=0)
        rows = slice(start, stop)
        inside, _ = compare.inside(d2, start, r_fake_sq[rows, None], fake_lo[rows, None], fake_hi[rows, None])
        recalled |= inside.any(axis=0)
    return balls, recalled, covered


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> PRDC:
    """PRDC of ``fake`` against ``real``, identical to ``prdc.compute_prdc(real, fake, k)``.

    Args:
        real: float (N, d), the reference manifold.
        fake: float (M, d), the samples judged against it.
        k: neighbourhood size; ``k < N`` and ``k < M``.

    Returns:
        :class:`PRDC`. precision: share of fake points inside some real k-NN ball. recall: share of real points
        inside some fake k-NN ball. density: mean over fake points of the number of real balls containing it, / k.
        coverage: share of real points whose nearest fake point lies inside their own k-NN ball.
    """
    balls, recalled, covered = prdc_points(real, fake, k)
    return PRDC(
        precision=float((balls > 0).mean()),
        recall=float(recalled.mean()),
        density=float(balls.mean() / k),
        coverage=float(covered.mean()),
    )

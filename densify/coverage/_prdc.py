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


def _compare_block(fake, real, fn, rn, real_sq, fake_sq=None):
    """For a block of fake rows against every real row, exactly:
    ``inside_real[j, i] = d^2(f_j, r_i) < real_sq[i]`` and ``inside_fake[j, i] = d^2(f_j, r_i) < fake_sq[j]``.

    Squared distances come from the float32 GEMM form ``|f|^2 + |r|^2 - 2 f.r``, within
    ``eps = (2 d + 8) 2^-24 (max |f|^2 + max |r|^2)`` of the truth. A pair further than ``eps`` from its threshold
    is decided by it; the rest (near-ties, exact ties such as a view copying a real point that is another real
    point's k-th neighbour, duplicates against a zero radius) are recomputed exactly by the same arithmetic as the
    radii, so ties stay ties under strict ``<``. Blocks are sized to stay in cache.
    """
    d2 = (-2.0 * fake) @ real.T  # float32 (b, N)
    d2 += fn.astype(np.float32)[:, None]
    d2 += rn.astype(np.float32)[None, :]
    eps = (2 * fake.shape[1] + 8) * 2.0**-24 * (fn.max() + rn.max()) + 1e-30
    results = []
    for t in (real_sq[None, :], None if fake_sq is None else fake_sq[:, None]):
        if t is None:
            results.append(None)
            continue
        inside = d2 < (t - eps).astype(np.float32)  # surely inside
        near = d2 <= (t + eps).astype(np.float32)
        np.not_equal(near, inside, out=near)  # too close to call from the GEMM form
        if near.any():
            jj, ii = np.nonzero(near)
            inside[jj, ii] = squared_difference(fake[jj], real[ii]) < np.broadcast_to(t, d2.shape)[jj, ii]
        results.append(inside)
    return results[0], results[1]


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
    balls = np.zeros(len(fake), np.int64)
    fn_all, rn = _sq_norms(fake), _sq_norms(real)
    block = max(1, BLOCK_BYTES // (4 * len(real)))
    for start in range(0, len(fake), block):
        stop = min(start + block, len(fake))
        inside, _ = _compare_block(fake[start:stop], real, fn_all[start:stop], rn, r_real_sq)
        balls[start:stop] = np.count_nonzero(inside, axis=1)
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
    balls = np.zeros(len(fake), np.int64)
    recalled = np.zeros(len(real), bool)
    covered = np.zeros(len(real), bool)
    fn_all, rn = _sq_norms(fake), _sq_norms(real)
    block = max(1, BLOCK_BYTES // (4 * len(real)))
    for start in range(0, len(fake), block):
        stop = min(start + block, len(fake))
        inside_real, inside_fake = _compare_block(
            fake[start:stop], real, fn_all[start:stop], rn, r_real_sq, r_fake_sq[start:stop]
        )
        balls[start:stop] = np.count_nonzero(inside_real, axis=1)
        covered |= inside_real.any(axis=0)
        recalled |= inside_fake.any(axis=0)
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

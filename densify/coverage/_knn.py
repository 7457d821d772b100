"""k-nearest-neighbour distances: faiss finds candidates, float64 re-ranking makes the distances exact.

faiss' ``IndexFlatL2`` computes squared distances as ``|x|^2 + |y|^2 - 2 x.y`` in float32, which loses precision
for close pairs; densify's metrics compare distances with strict ``<`` (as the reference ``prdc`` does), so the
distances densify returns are recomputed exactly in float64, and where faiss' ranking is within its rounding error
the ``k + MARGIN`` candidates are re-ranked exactly. Queries run in chunks, so memory is bounded by
``chunk × (k + MARGIN) × d`` and never holds an all-pairs matrix.
"""

from __future__ import annotations

import os

import numpy as np

from densify.errors import CoverageError

MARGIN = 8  # extra faiss candidates per query, re-ranked exactly
CHUNK = 32768  # queries per faiss call (faiss is markedly slower on small query batches)
_threads_set = False


def set_threads(n: int | None = None) -> int:
    """faiss' OpenMP threads. Default: every core (measured on the 2-vCPU CI machine: 2 threads search 60k × 10k
    in 0.94 s against 1.53 s with 1; see benchmarks/bench_coverage.py)."""
    import faiss

    n = n or int(os.environ.get("DENSIFY_FAISS_THREADS", 0)) or (os.cpu_count() or 1)
    faiss.omp_set_num_threads(n)
    return n


def _faiss():
    global _threads_set
    import faiss

    if not _threads_set:
        set_threads()
        _threads_set = True
    return faiss


def check_embeddings(x: np.ndarray, name: str) -> np.ndarray:
    """float32 C-contiguous (N, d) array with finite values, or a one-line error naming ``name``."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise CoverageError(f"{name}: embeddings must be a 2-D (N, d) array, got shape {x.shape}")
    if len(x) == 0:
        raise CoverageError(f"{name}: no embeddings (0 rows)")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise CoverageError(f"{name}: {bad} embedding row(s) contain NaN or inf")
    return np.ascontiguousarray(x, dtype=np.float32)


def squared_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact float64 squared distances between matching rows of ``a`` and ``b`` (any leading shape).

    Every exact distance in densify goes through this one function, so the same pair of points always gives the
    same bits (the summation order is part of the result), and exact ties stay ties.
    """
    diff = np.subtract(a, b, dtype=np.float64)
    np.square(diff, out=diff)
    return diff.sum(axis=-1)


def _exact_chunks(queries: np.ndarray, base: np.ndarray, want: int, chunk: int):
    """Yield (start, exact squared distances float64 (m, want) ascending, indices (m, want)) per chunk of queries.

    faiss returns ``want + 1`` candidates with float32 squared distances, each within
    ``eps = (2 d + 8) 2^-24 (|q|^2 + max |b|^2)`` of the truth. Where the gap between the want-th and the next
    candidate exceeds ``2 eps``, faiss' top ``want`` are certainly the true ones and only their distances are
    recomputed exactly; the other queries (near-ties at the boundary) get ``want + MARGIN`` candidates from faiss,
    all re-ranked exactly.
    """
    if queries.shape[1] != base.shape[1]:
        raise CoverageError(
            f"embedding dimensions differ: queries have d={queries.shape[1]}, base has d={base.shape[1]}"
        )
    if want > len(base):
        raise CoverageError(
            f"k={want} neighbours asked of {len(base)} points; need more points or a smaller k"
        )
    faiss = _faiss()
    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    take = min(want + MARGIN, len(base))
    d = base.shape[1]
    base_max = float(np.einsum("nd,nd->n", base, base, dtype=np.float64).max())
    chunk = max(
        64, min(chunk, (1 << 25) // (take * d))
    )  # re-ranking holds at most chunk × take × d float64 (256 MiB)
    first = min(want + 1, len(base))  # one extra candidate shows whether faiss' top `want` are certain
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        approx, cand = index.search(q, first)
        eps = (2 * d + 8) * 2.0**-24 * (np.einsum("nd,nd->n", q, q, dtype=np.float64) + base_max)
        if first > want:
            certain = approx[:, want].astype(np.float64) - approx[:, want - 1] > 2 * eps
        else:
            certain = np.ones(len(q), bool)
        out_sq = np.empty((len(q), want))
        out_i = np.empty((len(q), want), np.int64)
        unsure = np.flatnonzero(~certain)
        groups = [(np.flatnonzero(certain), cand[certain, :want])]
        if len(unsure):  # near-ties at the boundary: ask faiss for MARGIN more and re-rank them all exactly
            groups.append((unsure, index.search(q[unsure], take)[1]))
        for rows, c in groups:
            if len(rows) == 0:
                continue
            exact = squared_difference(base[c], q[rows][:, None, :])
            order = np.argsort(exact, axis=1, kind="stable")[:, :want]
            out_sq[rows] = np.take_along_axis(exact, order, axis=1)
            out_i[rows] = np.take_along_axis(c, order, axis=1)
        yield start, out_sq, out_i


def knn(
    queries: np.ndarray, base: np.ndarray, k: int, *, self_query: bool = False, chunk: int = CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean k nearest neighbours of each query row among ``base`` rows.

    Args:
        queries: float (M, d).
        base: float (N, d).
        k: neighbours per query, ``1 <= k <= N`` (``k + 1 <= N`` when ``self_query``).
        self_query: ``queries`` is ``base``; each point's own zero distance is the first of its k + 1
            neighbours and is dropped, as in ``prdc`` (duplicates of a point still count as neighbours).

    Returns:
        (distances float64 (M, k) ascending, indices int64 (M, k)).
    """
    queries, base = check_embeddings(queries, "queries"), check_embeddings(base, "base")
    if k < 1:
        raise CoverageError(f"k must be at least 1, got {k}")
    want = k + 1 if self_query else k
    out_d = np.empty((len(queries), want), np.float64)
    out_i = np.empty((len(queries), want), np.int64)
    for start, sq, idx in _exact_chunks(queries, base, want, chunk):
        out_d[start : start + len(sq)] = np.sqrt(sq)
        out_i[start : start + len(sq)] = idx
    if self_query:
        return out_d[:, 1:], out_i[:, 1:]
    return out_d, out_i


def self_neighbours_squared(points: np.ndarray, k: int, chunk: int = CHUNK) -> np.ndarray:
    """float64 (N, k + 1): exact squared distances from each point to its k + 1 nearest points, its own zero first
    (column j is NND_j squared; duplicates of a point count as neighbours, as in ``prdc``)."""
    points = check_embeddings(points, "points")
    if k < 1:
        raise CoverageError(f"k must be at least 1, got {k}")
    out = np.empty((len(points), k + 1), np.float64)
    for start, sq, _ in _exact_chunks(points, points, k + 1, chunk):
        out[start : start + len(sq)] = sq
    return out


def kth_neighbour_distance(
    points: np.ndarray, k: int, chunk: int = CHUNK, squared: bool = False
) -> np.ndarray:
    """NND_k: float64 (N,) distance from each point to its k-th nearest other point (``prdc``'s radii):
    the (k+1)-th smallest distance counting the point's own zero, so duplicates count as neighbours.
    ``squared=True`` returns the exact squared distances (no square root rounding)."""
    out = self_neighbours_squared(points, k, chunk)[:, k]
    return out if squared else np.sqrt(out)


def nearest(queries: np.ndarray, base: np.ndarray, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(distance float64 (M,), index int64 (M,)) of each query's nearest base row."""
    d, i = knn(queries, base, 1, chunk=chunk)
    return d[:, 0], i[:, 0]

"""k-nearest-neighbour distances: faiss finds candidates, float64 re-ranking makes the distances exact.

faiss' ``IndexFlatL2`` computes squared distances as ``|x|^2 + |y|^2 - 2 x.y`` in float32, which loses precision
for close pairs; densify's metrics compare distances with strict ``<`` (as the reference ``prdc`` does), so each
query's ``k + MARGIN`` faiss candidates are re-ranked with exact float64 distances. Queries run in chunks, so memory
is bounded by ``chunk × (k + MARGIN) × d`` and never holds an all-pairs matrix.
"""

from __future__ import annotations

import os

import numpy as np

from densify.errors import CoverageError

MARGIN = 8  # extra faiss candidates per query, re-ranked exactly
CHUNK = 4096  # queries per faiss call
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


def _candidates(queries: np.ndarray, base: np.ndarray, want: int, chunk: int):
    """Yield (start, exact float64 squared distances (m, c), candidate indices (m, c)) per chunk of queries, where
    the c = want + MARGIN candidates are faiss' nearest and the distances are recomputed in float64."""
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
    base64 = base.astype(np.float64)
    chunk = max(
        64, min(chunk, (1 << 25) // (take * base.shape[1]))
    )  # re-ranking holds chunk × take × d float64
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        _, cand = index.search(q, take)
        yield start, squared_difference(base64[cand], q.astype(np.float64)[:, None, :]), cand


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
    for start, exact, cand in _candidates(queries, base, want, chunk):
        order = np.argsort(exact, axis=1, kind="stable")[:, :want]
        out_d[start : start + len(exact)] = np.sqrt(np.take_along_axis(exact, order, axis=1))
        out_i[start : start + len(exact)] = np.take_along_axis(cand, order, axis=1)
    if self_query:
        return out_d[:, 1:], out_i[:, 1:]
    return out_d, out_i


def kth_neighbour_distance(
    points: np.ndarray, k: int, chunk: int = CHUNK, squared: bool = False
) -> np.ndarray:
    """NND_k: float64 (N,) distance from each point to its k-th nearest other point (``prdc``'s radii):
    the (k+1)-th smallest distance counting the point's own zero, so duplicates count as neighbours.
    ``squared=True`` returns the exact squared distances (no square root rounding)."""
    points = check_embeddings(points, "points")
    if k < 1:
        raise CoverageError(f"k must be at least 1, got {k}")
    out = np.empty(len(points), np.float64)
    for start, exact, _ in _candidates(points, points, k + 1, chunk):
        out[start : start + len(exact)] = np.partition(exact, k, axis=1)[:, k]
    return out if squared else np.sqrt(out)


def nearest(queries: np.ndarray, base: np.ndarray, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(distance float64 (M,), index int64 (M,)) of each query's nearest base row."""
    d, i = knn(queries, base, 1, chunk=chunk)
    return d[:, 0], i[:, 0]

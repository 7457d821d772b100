"""k-nearest-neighbour distances: faiss finds candidates, float64 re-ranking makes the distances exact.

faiss' ``IndexFlatL2`` computes squared distances as ``|x|^2 + |y|^2 - 2 x.y`` in float32, which loses precision
for close pairs; densify's metrics compare distances with strict ``<`` (as the reference ``prdc`` does), so the
distances densify returns are recomputed exactly in float64, and where faiss' ranking is within its rounding error
the ``k + MARGIN`` candidates are re-ranked exactly. Queries run in chunks, so memory is bounded by
``chunk × (k + MARGIN) × d`` and never holds an all-pairs matrix.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from densify.errors import CoverageError

MARGIN = 8  # extra faiss candidates per query, re-ranked exactly
CHUNK = 32768  # queries per faiss call (faiss is markedly slower on small query batches)
_threads_set = False

#: searches among at least this many base points use an approximate index under the "auto" search mode
APPROX_MIN_BASE = 200_000
#: the most base points an approximate search scans per query (its nprobe: lists holding about this many points)
SCAN_POINTS = 16_384
#: the fewest it scans: each search starts here and doubles the scan until its checked queries reach RECALL_TARGET
MIN_SCAN_POINTS = 2_048
#: the share of the true k nearest an approximate search must find on its checked queries before it settles
RECALL_TARGET = 0.998
#: queries per approximate search whose neighbours are also found exactly, to measure the approximation's error
CHECK_QUERIES = 256
#: approximate searches in at least this many dimensions run list by list (:func:`list_major_search`)
LIST_MAJOR_MIN_D = 64
#: queries whose candidates one list-major search finds at once (its per-list products grow with it)
LIST_MAJOR_BATCH = 65536
#: below this many queries per list on average, a list-major search is faiss' own (its per-list overhead wins)
LIST_MAJOR_MIN_PER_LIST = 16
SEARCH_MODES = ("auto", "exact", "approximate")
_search = {"mode": os.environ.get("DENSIFY_SEARCH", "auto"), "min_base": APPROX_MIN_BASE}
#: one entry per approximate search since the last :func:`search_log` reset: what its error was on a sample
_log: list[dict] = []


def set_search(mode: str = "auto", min_base: int = APPROX_MIN_BASE) -> None:
    """How k-NN searches run: ``exact`` (faiss flat, re-ranked exactly: the default below ``min_base`` points),
    ``approximate`` (an inverted-file index: :func:`approximate_index`), or ``auto`` (approximate from ``min_base``
    base points up). Approximate searches still return exact distances of the candidates they find; what they can
    miss is a true neighbour, and each one measures how often on a sample of its queries (:func:`search_log`)."""
    if mode not in SEARCH_MODES:
        raise CoverageError(f"search must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
    if isinstance(min_base, bool) or not isinstance(min_base, int) or min_base < 1:
        raise CoverageError(f"the approximate-search threshold must be a positive integer, got {min_base!r}")
    _search.update(mode=mode, min_base=min_base)


@contextlib.contextmanager
def search_mode(mode: str, min_base: int | None = None):
    """:func:`set_search` for the duration of a ``with`` block (the previous settings come back after it)."""
    before = dict(_search)
    set_search(mode, min_base if min_base is not None else before["min_base"])
    try:
        yield
    finally:
        _search.update(before)


def search_settings() -> dict:
    return dict(_search)


def search_log(reset: bool = False) -> list[dict]:
    """The approximate searches run so far (base size, k, recall of the true k neighbours and the relative excess
    of the k-th distance on a sample of queries); ``reset`` empties the log after reading it."""
    out = list(_log)
    if reset:
        _log.clear()
    return out


def _approximate(n_base: int) -> bool:
    mode = _search["mode"]
    if mode not in SEARCH_MODES:  # from the environment
        raise CoverageError(f"DENSIFY_SEARCH must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
    return mode == "approximate" or (mode == "auto" and n_base >= _search["min_base"])


#: while :func:`reused_indexes` is active: {id(base): (base, index, its built nprobe)}
_reused: dict[int, tuple] | None = None


@contextlib.contextmanager
def reused_indexes():
    """Within the block, searches over the same base array (the same object, not modified in between) share one
    approximate index instead of building it again (k-means on the base: about 8 s at 250,000 x 256). The index is
    built by the same seeded steps, and each search calibrates its scan afresh from the built ``nprobe``, so the
    results are those of separate indexes. The indexes are let go at the end of the block."""
    global _reused
    outer = _reused
    _reused = {} if outer is None else outer
    try:
        yield
    finally:
        if outer is None:
            _reused = None


def _index_for(base: np.ndarray):
    """:func:`approximate_index` of ``base``, or the one built for it earlier in a :func:`reused_indexes` block."""
    if _reused is None:
        return approximate_index(base)
    hit = _reused.get(id(base))
    if hit is not None and hit[0] is base:
        hit[1].nprobe = hit[2]
        return hit[1]
    index = approximate_index(base)
    _reused[id(base)] = (base, index, index.nprobe)  # holding ``base`` keeps its id from being reused
    return index


#: base values at most this large (in absolute value) are stored in half precision by :func:`approximate_index`
#: (float16's largest finite value is 65,504)
FP16_MAX = 60_000.0
#: float16's unit roundoff (round to nearest: relative error at most 2^-11)
_FP16_ROUNDOFF = 2.0**-11


def approximate_index(base: np.ndarray):
    """faiss inverted-file index over ``base``: 4 sqrt(N) k-means lists (trained on a seeded sample of at most 64
    per list), searching the nearest lists that hold about ``SCAN_POINTS`` points, and at least 32 lists
    (``nprobe``; :func:`knn` then lowers it to the smallest scan that reaches ``RECALL_TARGET`` on a sample, see
    :func:`_calibrate`).

    The lists store the points in half precision (``IndexIVFScalarQuantizer``, ``QT_fp16``, not by residual: half
    the memory of ``IndexIVFFlat``'s float32 copy, 128 MB instead of 256 MB for 250,000 thumbnails of 256 values),
    unless :func:`_half_suits` finds the rounding too coarse for the data. The lists only propose candidates:
    every returned distance is recomputed exactly from ``base``, the rounding of the stored points widens the
    certainty test of the boundary (:func:`_inner_certain`), and a query whose widened candidates cannot be shown
    to hold its nearest is searched exhaustively, so the neighbours are those of float32 lists (or exact).

    A query then scans a number of points that does not grow with N (the lists' centroids aside, 4 sqrt(N)),
    where a fixed share of the lists (1/16 before) made the search quadratic. Measured on 16x16 thumbnails
    (d=256) and a 40-dimensional manifold in d=128 (benchmarks/bench_coverage.py --only ivfscan): 16,384 points
    found the true 5-6 nearest for 99.8-100% at 250k and 1M base points, at 1/8 of the exact search's time at 1M
    (the share rule: 100%, at 1/2)."""
    faiss = _faiss()
    n, d = base.shape
    lists = max(1, min(int(4 * np.sqrt(n)), n // 39))
    quantiser = faiss.IndexFlatL2(d)
    if _half_suits(base):
        qt = faiss.ScalarQuantizer.QT_fp16
        index = faiss.IndexIVFScalarQuantizer(quantiser, d, lists, qt, faiss.METRIC_L2, False)
    else:
        index = faiss.IndexIVFFlat(quantiser, d, lists)
    index.cp.seed = 1234
    # the training sample (a copy: 125 MB of 256-d thumbnails at 250k) is let go before the add
    if n > 64 * lists:
        index.train(base[np.sort(np.random.default_rng(0).choice(n, 64 * lists, replace=False))])
    else:
        index.train(np.ascontiguousarray(base))
    index.add(base)
    index.nprobe = min(lists, max(32, -(-SCAN_POINTS * lists // n)))
    return index


def _stored_error(index, base: np.ndarray) -> float:
    """The largest distance ``|b - stored(b)|`` between a point of ``base`` and its copy in ``index``: 0 for float32
    lists; for half precision, measured over every point by blocks (the stored copy is numpy's float16 rounding,
    as faiss' encoder rounds), with a margin for the float64 arithmetic. The worst case, ``2^-11 |b|`` per point,
    left 13.5% of 60,000 queries among 250,000 centred vectors unsure of their boundary (by the two-sided test of
    :func:`_boundary_certain`), the measured maximum 8.2%."""
    if not _is_half(index):
        return 0.0
    worst = 0.0
    for start in range(0, len(base), 8192):  # 16 MB of float64 differences at a time (d = 256)
        block = base[start : start + 8192]
        err = np.subtract(block, block.astype(np.float16), dtype=np.float64)
        worst = max(worst, float(np.einsum("nd,nd->n", err, err).max()))
    return float(np.sqrt(worst)) * (1 + 1e-9)  # 0 when float16 holds every value exactly (small integers)


#: half-precision lists only where float16's rounding of a point is at most this share of the distance between
#: neighbouring points (measured on a sample): centred data (thumbnails: about 1/1000), not data far from the origin
HALF_ROUNDING_SHARE = 0.01


def _half_suits(base: np.ndarray, sample: int = 4096) -> bool:
    """Whether :func:`approximate_index` may store ``base`` in float16: every value within ``FP16_MAX``, and on a
    seeded sample, the largest rounding error at most ``HALF_ROUNDING_SHARE`` of the median distance between a
    sample point and its nearest other sample point (a point 1,000 from the origin is rounded by up to 0.25 per
    coordinate: coarser than its neighbours' distances, and every boundary would be unsure)."""
    import faiss

    if max(float(base.max()), -float(base.min())) > FP16_MAX:
        return False
    rows = np.sort(np.random.default_rng(0).choice(len(base), min(sample, len(base)), replace=False))
    points = np.ascontiguousarray(base[rows], dtype=np.float32)
    rounding = np.sqrt(np.square(points - points.astype(np.float16), dtype=np.float64).sum(axis=1).max())
    nearest = np.sqrt(np.maximum(faiss.knn(points, points, 2)[0][:, 1], 0.0))
    return bool(rounding <= HALF_ROUNDING_SHARE * float(np.median(nearest)))


def _is_half(index) -> bool:
    import faiss

    return isinstance(index, faiss.IndexIVFScalarQuantizer)


def _probes(index, n: int, points: int) -> int:
    """The nprobe whose lists hold about ``points`` of the index's ``n`` points (at least 8 lists, at most all)."""
    return min(index.nlist, max(8, -(-points * index.nlist // n)))


def _calibrate(index, base, sample, true_i, want, take, base_max, delta: float = 0.0) -> int:
    """The smallest scan, from ``MIN_SCAN_POINTS`` doubling up to the index's own (``SCAN_POINTS``), at which the
    search finds ``RECALL_TARGET`` of the true ``want`` nearest (``true_i``) of the checked queries ``sample``;
    sets and returns that nprobe. How many points a query must scan depends on the data, not on N: on points of
    low intrinsic dimension 2,048 find them all, in d = 256 thumbnails more are needed (measured by
    ``python benchmarks/bench_coverage.py --only ivfscan``)."""
    n, d = base.shape
    most = index.nprobe
    nprobe = min(most, _probes(index, n, MIN_SCAN_POINTS))
    while True:
        index.nprobe = nprobe
        found = _probed(index.search, base, sample, want, take, base_max, d, delta)[1]
        if nprobe >= most or _recall(found, true_i) >= RECALL_TARGET:
            return nprobe
        nprobe = min(most, 2 * nprobe)


def _recall(found: np.ndarray, true: np.ndarray) -> float:
    """The mean share of each row of ``true`` that the same row of ``found`` holds."""
    k = true.shape[1]
    return float(np.mean([len(set(a) & set(t)) / k for a, t in zip(found, true, strict=True)]))


def list_major_search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """What ``index.search(queries, k)`` returns for an ``IndexIVFFlat`` or a half-precision
    ``IndexIVFScalarQuantizer`` (float32 squared distances to the stored points and ids of the k nearest among the
    points in each query's ``nprobe`` nearest lists; where fewer, ids -1 and float32's largest distance, as faiss
    pads), computed list by list: the queries that probe a list are gathered and compared with
    its points in one matrix product (``faiss.knn``), and the lists' results merged in a ``faiss.ResultHeap``. faiss' own search walks query by
    query with vector-at-a-time distances; on a batch of queries the products do the same work at matrix-multiply
    speed (the idea of faiss' ``contrib.big_batch_search``, whose report prints a line per list). Measured in
    ``python benchmarks/bench_coverage.py --only listmajor``. The float32 distances differ from faiss' own in
    rounding only, so a near-tie can come in another order; densify re-ranks every candidate exactly. Batches with
    fewer than ``LIST_MAJOR_MIN_PER_LIST`` queries per list on average go to ``index.search``."""
    import faiss
    from faiss.contrib.inspect_tools import get_invlist

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    m, nprobe = len(queries), index.nprobe
    if m * nprobe < LIST_MAJOR_MIN_PER_LIST * index.nlist:  # too few queries per list to gain: faiss' own
        return index.search(queries, k)
    stored = np.float16 if _is_half(index) else np.float32
    heap = faiss.ResultHeap(m, k)
    assign = index.quantizer.search(queries, nprobe)[1].ravel()
    order = np.argsort(assign, kind="stable")
    owner = order // nprobe  # the query of each (query, probed list) pair, grouped by list
    bounds = np.searchsorted(assign[order], np.arange(index.nlist + 1))
    lists = faiss.downcast_InvertedLists(index.invlists)
    for lst in np.flatnonzero(np.diff(bounds)):
        ids, codes = get_invlist(lists, int(lst))
        if len(ids) == 0:
            continue
        sub = owner[bounds[lst] : bounds[lst + 1]]
        points = codes.view(stored).astype(np.float32, copy=False)  # half precision decodes exactly
        dist, pos = faiss.knn(queries[sub], points, min(k, len(ids)))
        if dist.shape[1] < k:  # a list with fewer than k points: pad with the heap's "nothing"
            pad = k - dist.shape[1]
            dist = np.hstack([dist, np.full((len(sub), pad), np.finfo(np.float32).max, np.float32)])
            pos = np.hstack([pos, np.full((len(sub), pad), -1, pos.dtype)])
        found = np.where(pos >= 0, ids[np.maximum(pos, 0)], -1)
        heap.add_result_subset(sub, np.ascontiguousarray(dist), np.ascontiguousarray(found))
    heap.finalize()
    return heap.D, heap.I


def set_threads(n: int | None = None) -> int:
    """faiss' OpenMP threads. Default: every core (measured on the 2-vCPU CI machine: 2 threads search 60k × 10k
    in 0.94 s against 1.53 s with 1; see benchmarks/bench_coverage.py); under ``torchrun``, each local process's
    share of the cores."""
    import faiss

    from densify._dist import local_cores
    from densify._torch import env_count

    n = n or env_count("DENSIFY_FAISS_THREADS") or local_cores()
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
    take = min(want + MARGIN, len(base))
    d = base.shape[1]
    if _approximate(len(base)):
        yield from _approximate_chunks(queries, base, want, take, chunk)
        return
    base_max = float(np.einsum("nd,nd->n", base, base, dtype=np.float64).max())
    chunk = max(
        64, min(chunk, (1 << 25) // (take * d))
    )  # queries per faiss call; the exact re-ranking goes by smaller blocks (RERANK_VALUES)
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        yield start, *_probed(lambda q, k: _brute_force(faiss, q, base, k), base, q, want, take, base_max, d)


def _brute_force(faiss, queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss' exact search of ``base`` in place: what ``IndexFlatL2.search`` computes (the same function,
    ``knn_L2sqr``), without the copy of the base an index holds."""
    return faiss.knn(np.ascontiguousarray(queries), np.ascontiguousarray(base), k)


#: the exact re-ranking computes at most this many float64 differences at a time (32 MiB, plus the float32
#: gather of the candidates): rows are independent, so the blocking changes no bit of the result
RERANK_VALUES = 1 << 22


def _rerank(base: np.ndarray, q: np.ndarray, cand: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact squared distances and indices of the ``want`` nearest among candidates ``cand`` (-1: none)."""
    rows = max(1, RERANK_VALUES // max(1, cand.shape[1] * base.shape[1]))
    if len(q) > rows:
        sq, idx = np.empty((len(q), want)), np.empty((len(q), want), np.int64)
        for start in range(0, len(q), rows):
            part = slice(start, start + rows)
            sq[part], idx[part] = _rerank_block(base, q[part], cand[part], want)
        return sq, idx
    return _rerank_block(base, q, cand, want)


def _rerank_block(
    base: np.ndarray, q: np.ndarray, cand: np.ndarray, want: int
) -> tuple[np.ndarray, np.ndarray]:
    exact = squared_difference(base[np.maximum(cand, 0)], q[:, None, :])
    exact[cand < 0] = np.inf
    order = np.argsort(exact, axis=1, kind="stable")[:, :want]
    return np.take_along_axis(exact, order, axis=1), np.take_along_axis(cand, order, axis=1)


def _probed(search, base, q, want, take, base_max, d, delta: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``want`` nearest among the points ``search(q, k)`` (an index's search) looks at for each query
    (all of them for a flat index): ``want + 1`` candidates first, and ``take`` re-ranked exactly only where the
    boundary is a near-tie (the same result as re-ranking ``take`` for every query, at a fraction of the float64
    work; see :func:`_exact_chunks` for the error bound)."""
    first = want + 1 if take > want else want
    approx, cand = search(q, first)
    if first == want:
        return _rerank(base, q, cand, want)
    certain = _boundary_certain(q, approx, cand, want, base_max, d, delta)
    unsure = np.flatnonzero(~certain)
    wide = search(q[unsure], take)[1] if len(unsure) else cand[:0]
    return _assemble(base, q, cand[:, :want], certain, wide, want)


def _boundary_certain(q, approx, cand, want, base_max, d, delta: float = 0.0) -> np.ndarray:
    """bool (M,): the float32 candidates' want-th and next distances differ by more than twice faiss' error bound,
    so the first ``want`` candidates are certainly the nearest ``want`` of those searched.

    ``delta`` bounds how far a stored point is from its true value (:func:`_stored_error`). Then each true
    distance is within ``delta`` of the distance to the stored point, whose square is within ``eps`` of faiss'
    ``a``: a point ranked up to ``want`` is at most ``sqrt(a + eps) + delta`` away, any later one at least
    ``sqrt(a_want - eps) - delta``, and the boundary is certain when
    ``sqrt(a_want - eps) - sqrt(a_(want-1) + eps) > 2 delta``. With ``delta = 0`` that is the float32 test
    ``a_want - a_(want-1) > 2 eps``, computed as such."""
    eps = (2 * d + 8) * 2.0**-24 * (np.einsum("nd,nd->n", q, q, dtype=np.float64) + base_max)
    inner, outer = approx[:, want - 1].astype(np.float64), approx[:, want].astype(np.float64)
    if delta == 0.0:
        return (cand[:, want] >= 0) & (outer - inner > 2 * eps)
    gap = np.sqrt(np.maximum(outer - eps, 0.0)) - np.sqrt(np.maximum(inner + eps, 0.0))
    return (cand[:, want] >= 0) & (gap > 2 * delta)


def _inner_certain(
    q, approx, cand, inner_sq, want, base_max, d, delta: float, last: bool = False
) -> np.ndarray:
    """bool (M,): as :func:`_boundary_certain` for lists that store rounded points (``delta`` > 0), with exact
    squared distances in place of bounds: ``inner_sq`` (M, w) are the nearest w of the first ``want`` candidates
    (``want`` is the position of the boundary candidate: w itself, or w + 1 when one more candidate was re-ranked
    with them). Every point after the boundary is at least ``sqrt(a_want - eps) - delta`` away (faiss ranked it no
    nearer than the boundary candidate's float32 ``a_want``), so the w are certainly the nearest when the farthest
    of them is nearer than that. Of 60,000 queries (k = 6) among 250,000 centred unit vectors of rank 24 plus noise,
    8.2% were unsure by the two-sided test (with the measured rounding), 4.3% by this one with ``want`` = w, and
    0.1% with ``want`` = w + 1, the one densify uses; 3.9% of the growth benchmark's grating thumbnails (``python benchmarks/bench_coverage.py --only
    ivfhalf``), whose search then took 10.4 s against 10.2 s with float32 lists.

    ``last``: the test of a widened search, whose candidates ``cand`` (M, want + 1) hold every point searched when
    the last is -1 (fewer points than asked), and otherwise the nearest ``inner_sq`` are certain when no farther
    than the bound at the last candidate ``approx[:, want]`` (a tie there changes which points are returned, not
    their distances; before widening, a tie is unsure, so that ties resolve as with float32 lists)."""
    eps = (2 * d + 8) * 2.0**-24 * (np.einsum("nd,nd->n", q, q, dtype=np.float64) + base_max)
    bound = np.sqrt(np.maximum(approx[:, want].astype(np.float64) - eps, 0.0)) - delta
    if last:  # a tie with a point beyond is no error: the distances returned are the nearest either way
        return (cand[:, want] < 0) | (np.sqrt(inner_sq[:, -1]) <= bound)
    return (cand[:, want] >= 0) & (np.sqrt(inner_sq[:, -1]) < bound)


def _assemble(base, q, cand, certain, wide, want) -> tuple[np.ndarray, np.ndarray]:
    """Exact re-ranking: of ``cand`` (M, want) where ``certain``, of ``wide`` (one row per other query) elsewhere."""
    sq = np.empty((len(q), want))
    idx = np.empty((len(q), want), np.int64)
    sq[certain], idx[certain] = _rerank(base, q[certain], cand[certain], want)
    unsure = np.flatnonzero(~certain)
    if len(unsure):
        sq[unsure], idx[unsure] = _rerank(base, q[unsure], wide, want)
    return sq, idx


def _approximate_chunks(queries: np.ndarray, base: np.ndarray, want: int, take: int, chunk: int):
    """As :func:`_exact_chunks`, with candidates from :func:`approximate_index`; logs the error on a sample."""
    faiss = _faiss()
    index = _index_for(base)

    def exact(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _rerank(base, q, _brute_force(faiss, q, base, take)[1], want)

    # the error is measured on a seeded sample of the queries: what was returned for them against exact search
    rows = np.sort(
        np.random.default_rng(0).choice(len(queries), min(CHECK_QUERIES, len(queries)), replace=False)
    )
    approx_sq, approx_i = np.empty((len(rows), want)), np.empty((len(rows), want), np.int64)
    chunk = max(64, min(chunk, (1 << 25) // (take * base.shape[1])))
    base_max = float(np.einsum("nd,nd->n", base, base, dtype=np.float64).max())
    d = base.shape[1]
    # the stored points' rounding, at most: the half-precision lists' norms are within 2^-11 of base_max's
    delta = _stored_error(index, base)
    base_max *= (1 + _FP16_ROUNDOFF) ** 2 if delta else 1.0
    true_sq, true_i = exact(queries[rows])
    nprobe = _calibrate(index, base, queries[rows], true_i, want, take, base_max, delta)
    first = want + 1 if take > want else want
    if delta and take > want + 1:  # one more candidate, re-ranked exactly with the first: a wider margin
        first = want + 2
    if d >= LIST_MAJOR_MIN_D:
        search, batch = (
            (lambda q, k: list_major_search(index, q, k)),
            chunk * max(1, LIST_MAJOR_BATCH // chunk),
        )
    else:
        search, batch = index.search, chunk
    # candidates by batches (the near-ties of a batch widened in one search), re-ranked exactly by chunks
    for outer in range(0, len(queries), batch):
        qb = queries[outer : outer + batch]
        approx, cand = search(qb, first)
        certain = np.ones(len(qb), bool)
        narrow = None
        if first > want and delta:  # the first candidates' exact distances decide (_inner_certain)
            inner = first - 1  # all but the last, whose float32 distance bounds every point beyond
            narrow = _rerank(base, qb, cand[:, :inner], inner)
            narrow = narrow[0][:, :want], narrow[1][:, :want]
            certain = _inner_certain(qb, approx, cand, narrow[0], inner, base_max, d, delta)
        elif first > want:
            certain = _boundary_certain(qb, approx, cand, want, base_max, d)
        unsure = np.flatnonzero(~certain)
        wide_d, wide = search(qb[unsure], take) if len(unsure) else (approx[:0], cand[:0])
        wide_row = np.cumsum(~certain) - 1  # each unsure query's row in ``wide``
        for start in range(outer, outer + len(qb), chunk):
            q = queries[start : min(start + chunk, outer + len(qb))]
            part = slice(start - outer, start - outer + len(q))
            here_certain = certain[part]
            here_wide = wide[wide_row[part][~here_certain]]
            if narrow is None:
                sq, idx = _assemble(base, q, cand[part, :want], here_certain, here_wide, want)
            else:  # as _assemble would give: _rerank is row by row
                sq, idx = narrow[0][part].copy(), narrow[1][part].copy()
                if len(here_wide):
                    rows_u = np.flatnonzero(~here_certain)
                    sq[rows_u], idx[rows_u] = _rerank(base, q[rows_u], here_wide, want)
                    # the widened candidates hold the nearest only if every point beyond them is farther: else
                    # the exhaustive search below
                    held = _inner_certain(
                        q[rows_u], wide_d[wide_row[part][rows_u]], here_wide, sq[rows_u], take - 1, base_max,
                        d, delta, last=True,
                    )  # fmt: skip
                    sq[rows_u[~held]] = np.inf
            # fewer candidates than wanted in the probed lists, or widened candidates not shown to hold the
            # nearest (half-precision lists): search them all
            if not np.isfinite(sq).all():
                bad = np.flatnonzero(~np.isfinite(sq).all(axis=1))
                sq[bad], idx[bad] = exact(q[bad])
            here = (rows >= start) & (rows < start + len(q))
            approx_sq[here], approx_i[here] = sq[rows[here] - start], idx[rows[here] - start]
            yield start, sq, idx
    found = _recall(approx_i, true_i)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.sqrt(approx_sq[:, -1]) / np.sqrt(true_sq[:, -1]) - 1
    _log.append({
        "base": len(base), "queries": len(queries), "k": want, "checked": len(rows), "recall": found,
        "scanned": round(nprobe * len(base) / index.nlist),
        "nearest_exact": float(np.mean(approx_i[:, 0] == true_i[:, 0])),
        "kth_distance_excess": float(np.nanmean(np.where(np.isfinite(excess), excess, np.nan)))
        if np.isfinite(excess).any() else 0.0,
    })  # fmt: skip


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

"""Exact and near duplicates, within a split and across train / held-out (leakage).

Exact: byte-identical pixels (a BLAKE2 digest of each image). Near: found in two stages. First, each image's
``RATIO_K`` most similar images by small grayscale thumbnails (``THUMB`` x ``THUMB``, area-averaged, centred and
scaled: the dot product is the Pearson correlation, invariant to brightness and contrast, robust to re-encoding,
resizing and mild noise); then the same correlation at the working resolution (at most ``FINE`` pixels a side)
with each of them. The best candidate is a near duplicate when its fine correlation is at least
``NEAR_CORRELATION`` and it is much closer than the last candidate: its distance (1 - correlation) at most
``NEAR_RATIO`` times that one's (the ratio test of Lowe, IJCV 2004). The ratio test is what separates a copy from
one of many look-alikes: on small, plain images (Fashion-MNIST's trousers and sneakers) distinct items correlate
above 0.97, but a copy is far closer than the next look-alike (benchmarks/data_quality/detect.py plants copies
re-encoded as JPEG with a brightness shift and noise: their distance ratio was at most 0.081 on four datasets,
while the closest look-alikes of fashion-mini's held-out images in its training set had ratios of 0.14 to 0.19 at
correlations of 0.97 to 0.99; ``NEAR_RATIO`` = 0.1 lies between). A best candidate that fails the ratio test is
still a near duplicate when every pixel agrees: its :func:`residual_deviation` (the largest pixel disagreement once
brightness and contrast are fitted, in the query's pixel standard deviations) is at most ``NEAR_RESIDUAL``. This
catches copies of plain images with many look-alikes (an 8 x 8 digit "1" re-encoded as JPEG: correlation 0.997,
but every plain "1" correlates at 0.98), which a look-alike cannot pass, since it differs strongly somewhere
(benchmarks/data_quality/duplicates_residual.py: of 400 planted near copies, five plants of four datasets, the
ratio test alone missed 8, both tests 1, and the residual test flagged no other image). Both stages are
independent of the encoder, so a duplicate is a duplicate whatever features the audit uses. Near-constant images (no structure to correlate) are
matched by exact digests only; a near copy in a group of more than ``RATIO_K`` copies fails the ratio test (the
residual test still finds it when every pixel agrees).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

THUMB = 16
NEAR_CORRELATION = 0.95
NEAR_RATIO = 0.1
#: a best candidate whose every pixel agrees within this many of the query's pixel standard deviations is a copy
NEAR_RESIDUAL = 0.4
RATIO_K = 5
FINE = 64
#: thumbnails whose pixel deviation is below this (in 0..255 grey levels) are near-constant
FLAT = 1.0


def digests(images: np.ndarray) -> np.ndarray:
    """(N,) a 16-byte BLAKE2b digest of each image's shape and pixels (``S16`` bytes: 4 MB at 250,000 images,
    where hex strings took 32 MB)."""
    images = np.ascontiguousarray(images)
    shape = repr(images.shape[1:]).encode()
    return np.array(
        [hashlib.blake2b(shape + img.tobytes(), digest_size=16).digest() for img in images], dtype="S16"
    )


def exact_matches(query: np.ndarray, ref: np.ndarray, within: bool = False) -> np.ndarray:
    """int64 (N,): for each of the ``query`` digests, the lowest index in ``ref`` with the same digest, -1 for none;
    ``within`` (query is ref): never the row itself. By a stable sort of ``ref`` and a binary search (a dict of
    index lists held about 75 MB of Python objects at 250,000 images)."""
    n = len(query)
    match = np.full(n, -1, np.int64)
    if n == 0 or len(ref) == 0:
        return match
    order = np.argsort(ref, kind="stable")  # equal digests stay in index order: a group's first is its lowest
    ordered = ref[order]
    pos = np.minimum(np.searchsorted(ordered, query), len(ref) - 1)
    found = ordered[pos] == query
    match[found] = order[pos[found]]
    if within:  # the group's lowest is the row itself: the next of its group, if any
        own = np.flatnonzero(found & (match == np.arange(n)))
        nxt = np.minimum(pos[own] + 1, len(ref) - 1)
        same = (pos[own] + 1 < len(ref)) & (ordered[nxt] == query[own])
        match[own] = np.where(same, order[nxt], -1)
    return match


def thumbnails(images: np.ndarray, side: int = THUMB) -> tuple[np.ndarray, np.ndarray]:
    """(descriptors float32 (N, side*side), flat bool (N,)): each image in grayscale, area-averaged to side x side,
    centred and scaled to unit norm, so the dot product of two descriptors is their thumbnails' correlation.
    ``flat`` marks near-constant thumbnails (their descriptor is zero)."""
    return _descriptors(images, side)


def _area_matrix(n: int, m: int) -> np.ndarray:
    """(n, m) float32: the linear map of OpenCV's INTER_AREA resampling of a length-n axis to length m (a row
    vector times it is resized), read off cv2 itself by resizing the identity along one axis."""
    import cv2

    if n == m:
        return np.eye(n, dtype=np.float32)
    return cv2.resize(np.eye(n, dtype=np.float32), (m, n), interpolation=cv2.INTER_AREA)


def _descriptors(images: np.ndarray, side: int | None, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale images area-resized to ``side`` (None: kept), centred and unit-normed; (descriptors, flat).
    Vectorised over blocks of ``chunk`` images (fewer when their float32 pixels would exceed 64 MB): the area
    resize is separable and linear, so a block is resized by two matrix products with OpenCV's own INTER_AREA
    weights (equal to resizing one image at a time up to float32 rounding)."""
    images = np.asarray(images)
    n, h, w = images.shape[:3]
    chunk = max(1, min(chunk, (1 << 26) // (4 * int(np.prod(images.shape[1:])) or 1)))
    size = (h, w) if side is None else (side, side)
    rows_map, cols_map = _area_matrix(h, size[0]).T, _area_matrix(w, size[1])
    out = np.zeros((n, size[0] * size[1]), np.float32)
    flat = np.zeros(n, bool)
    for start in range(0, n, chunk):
        block = images[start : start + chunk]
        grey = block.astype(np.float32).mean(axis=3)
        if size != (h, w):
            grey = rows_map @ grey @ cols_map
        v = grey.reshape(len(block), -1).astype(np.float64)
        v -= v.mean(axis=1, keepdims=True)
        is_flat = np.sqrt((v**2).mean(axis=1)) < FLAT
        rows = slice(start, start + len(block))
        flat[rows] = is_flat
        keep = ~is_flat
        out[rows][keep] = v[keep] / np.linalg.norm(v[keep], axis=1, keepdims=True)
    return out, flat


def fine_descriptors(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The second stage's descriptors: the working resolution, area-reduced to at most ``FINE`` a side."""
    h, w = np.asarray(images).shape[1:3]
    return _descriptors(images, None if max(h, w) <= FINE else FINE)


def candidates(
    queries: np.ndarray, base: np.ndarray, *, same: bool = False, k: int = RATIO_K
) -> tuple[np.ndarray, np.ndarray]:
    """(indices int64 (M, k'), correlations float64 (M, k')) of each query descriptor's k most correlated base
    descriptors, most correlated first (k' = k, or fewer when the base is smaller); ``same``: queries are the base
    and a row never matches itself."""
    from densify.coverage._knn import knn

    m = len(queries)
    available = len(base) - (1 if same else 0)
    if available < 1 or m == 0:
        return np.zeros((m, 0), np.int64), np.zeros((m, 0))
    want = min(k, available)
    dist, idx = knn(queries, base, want + 1 if same else want)
    if (
        same
    ):  # drop each row's own entry (an exact copy may come first: drop the row's own index wherever it is)
        own = idx == np.arange(m)[:, None]
        drop = np.where(own.any(axis=1), own.argmax(axis=1), want)
        keep = np.ones_like(own)
        keep[np.arange(m), drop] = False
        dist, idx = dist[keep].reshape(m, want), idx[keep].reshape(m, want)
    # unit vectors: |a - b|^2 = 2 - 2 a.b
    return idx.astype(np.int64), np.clip(1.0 - dist**2 / 2.0, -1.0, 1.0)


def _fine_correlations(images, base, idx: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(M, k) fine correlation of each query image with each of its candidates ``idx`` (the candidates of a block
    of queries described once each), and (M, k) each pair's :func:`residual_deviation`."""
    out, dev = np.zeros(idx.shape), np.full(idx.shape, np.inf)
    if idx.size == 0:
        return out, dev
    for start in range(0, len(idx), chunk):
        rows = slice(start, start + chunk)
        q, _ = fine_descriptors(images[rows])
        cand = idx[rows]
        unique, inverse = np.unique(cand, return_inverse=True)
        c, _ = fine_descriptors(base[unique])
        c = c[inverse.reshape(cand.shape)]
        corr = np.einsum("md,mkd->mk", q, c)
        out[rows] = corr
        dev[rows] = residual_deviation(q, c, corr)
    return out, dev


def residual_deviation(q: np.ndarray, c: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """The largest pixel disagreement of a query with a candidate once brightness and contrast are fitted, in units
    of the query's pixel standard deviation: ``max |u - r v| * sqrt(P)`` for centred, unit-norm descriptors ``u``
    (``q``, (M, P)) and ``v`` (``c``, (M, k, P)) of correlation ``r`` (``u - r v`` is the least-squares residual of
    ``u`` on ``v``; a centred unit vector of P values has standard deviation ``1 / sqrt(P)``). A re-encoded copy
    spreads small errors over every pixel; a look-alike, however well correlated, differs strongly somewhere (a
    stroke or an edge displaced)."""
    out = np.empty(corr.shape)
    for i in range(corr.shape[1]):  # one candidate column at a time: an (M, P) residual, not (M, k, P)
        out[:, i] = np.abs(q - corr[:, i, None].astype(np.float32) * c[:, i]).max(axis=1)
    return out * np.sqrt(q.shape[1])


@dataclass(frozen=True)
class Described:
    """An image set with what the duplicate search needs of it, computed once: digests and thumbnails."""

    images: np.ndarray
    digests: np.ndarray
    thumbnails: np.ndarray
    flat: np.ndarray


def describe(images) -> Described:
    """The digests and thumbnails of ``images`` (pass the result to :func:`find_duplicates` several times to
    compute them once)."""
    if isinstance(images, Described):
        return images
    images = np.asarray(images)
    return Described(images, digests(images), *thumbnails(images))


def find_duplicates(
    images,
    base=None,
    *,
    threshold: float = NEAR_CORRELATION,
    ratio: float = NEAR_RATIO,
    residual: float | None = NEAR_RESIDUAL,
) -> dict[str, np.ndarray]:
    """Each image's duplicate, if any, among ``base`` (None: among ``images`` themselves, never itself).
    ``images`` and ``base`` are image arrays or :func:`describe`'s results.

    Returns arrays of length N: ``match`` (int64 index into the base, -1 for none), ``kind`` ("exact", "near" or
    ""), ``correlation`` (fine correlation with the match; 1.0 for exact, NaN for none). An exact match is
    preferred to a near one; among exact matches the lowest index is reported.
    """
    within = base is None
    query = describe(images)
    ref = query if within else describe(base)
    n = len(query.images)
    match = np.full(n, -1, np.int64)
    kind = np.full(n, "", dtype=object)
    corr = np.full(n, np.nan)
    exact = exact_matches(query.digests, ref.digests, within)
    hit = exact >= 0
    match[hit], kind[hit], corr[hit] = exact[hit], "exact", 1.0
    idx, _ = candidates(query.thumbnails, ref.thumbnails, same=within)
    if idx.shape[1]:
        fine, deviation = _fine_correlations(query.images, ref.images, idx)
        best = fine.argmax(axis=1)
        rows = np.arange(n)
        c, c_last, j = fine[rows, best], fine.min(axis=1), idx[rows, best]
        close = 1.0 - c <= ratio * (1.0 - c_last)
        if residual is not None:
            close |= deviation[rows, best] <= residual
        near = (match < 0) & ~query.flat & ~ref.flat[j] & (c >= threshold) & close
        match[near], kind[near], corr[near] = j[near], "near", c[near]
    return {"match": match, "kind": kind.astype(str), "correlation": corr}

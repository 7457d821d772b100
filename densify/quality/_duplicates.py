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
correlations of 0.97 to 0.99; ``NEAR_RATIO`` = 0.1 lies between). Both stages are independent of the encoder, so a
duplicate is a duplicate whatever features the audit uses. Near-constant images (no structure to correlate) are
matched by exact digests only; a near copy in a group of more than ``RATIO_K`` copies is missed.
"""

from __future__ import annotations

import hashlib

import numpy as np

THUMB = 16
NEAR_CORRELATION = 0.95
NEAR_RATIO = 0.1
RATIO_K = 5
FINE = 64
#: thumbnails whose pixel deviation is below this (in 0..255 grey levels) are near-constant
FLAT = 1.0


def digests(images: np.ndarray) -> np.ndarray:
    """(N,) a 16-byte BLAKE2b digest of each image's shape and pixels, as hex strings."""
    images = np.ascontiguousarray(images)
    shape = repr(images.shape[1:]).encode()
    return np.array([hashlib.blake2b(shape + img.tobytes(), digest_size=16).hexdigest() for img in images])


def thumbnails(images: np.ndarray, side: int = THUMB) -> tuple[np.ndarray, np.ndarray]:
    """(descriptors float32 (N, side*side), flat bool (N,)): each image in grayscale, area-averaged to side x side,
    centred and scaled to unit norm, so the dot product of two descriptors is their thumbnails' correlation.
    ``flat`` marks near-constant thumbnails (their descriptor is zero)."""
    return _descriptors(images, side)


def _descriptors(images: np.ndarray, side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale images area-resized to ``side`` (None: kept), centred and unit-normed; (descriptors, flat)."""
    import cv2

    images = np.asarray(images)
    h, w = images.shape[1:3]
    size = (h, w) if side is None else (side, side)
    out = np.zeros((len(images), size[0] * size[1]), np.float32)
    flat = np.zeros(len(images), bool)
    for i, img in enumerate(images):
        grey = img.astype(np.float32).mean(axis=2)
        if size != (h, w):
            grey = cv2.resize(grey, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        v = grey.ravel().astype(np.float64)
        v -= v.mean()
        if np.sqrt((v**2).mean()) < FLAT:
            flat[i] = True
            continue
        out[i] = v / np.linalg.norm(v)
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


def _fine_correlations(images, base, idx: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """(M, k) fine correlation of each query image with each of its candidates ``idx``."""
    out = np.zeros(idx.shape)
    if idx.size == 0:
        return out
    for start in range(0, len(idx), chunk):
        rows = slice(start, start + chunk)
        q, _ = fine_descriptors(images[rows])
        cand = idx[rows]
        c, _ = fine_descriptors(base[cand.ravel()])
        out[rows] = np.einsum("md,mkd->mk", q, c.reshape(*cand.shape, -1))
    return out


def find_duplicates(
    images: np.ndarray,
    base: np.ndarray | None = None,
    *,
    threshold: float = NEAR_CORRELATION,
    ratio: float = NEAR_RATIO,
) -> dict[str, np.ndarray]:
    """Each image's duplicate, if any, among ``base`` (None: among ``images`` themselves, never itself).

    Returns arrays of length N: ``match`` (int64 index into the base, -1 for none), ``kind`` ("exact", "near" or
    ""), ``correlation`` (fine correlation with the match; 1.0 for exact, NaN for none). An exact match is
    preferred to a near one; among exact matches the lowest index is reported.
    """
    within = base is None
    base = images if within else base
    n = len(images)
    match = np.full(n, -1, np.int64)
    kind = np.full(n, "", dtype=object)
    corr = np.full(n, np.nan)
    query_digests = digests(images)
    base_digests = query_digests if within else digests(base)
    first: dict[str, list[int]] = {}
    for j, d in enumerate(base_digests):
        first.setdefault(d, []).append(j)
    for i, d in enumerate(query_digests):
        hits = [j for j in first.get(d, ()) if not (within and j == i)]
        if hits:
            match[i], kind[i], corr[i] = hits[0], "exact", 1.0
    q_desc, q_flat = thumbnails(images)
    b_desc, b_flat = (q_desc, q_flat) if within else thumbnails(base)
    idx, _ = candidates(q_desc, b_desc, same=within)
    if idx.shape[1]:
        fine = _fine_correlations(images, base, idx)
        best = fine.argmax(axis=1)
        rows = np.arange(n)
        c, c_last, j = fine[rows, best], fine.min(axis=1), idx[rows, best]
        near = (match < 0) & ~q_flat & ~b_flat[j] & (c >= threshold) & (1.0 - c <= ratio * (1.0 - c_last))
        match[near], kind[near], corr[near] = j[near], "near", c[near]
    return {"match": match, "kind": kind.astype(str), "correlation": corr}

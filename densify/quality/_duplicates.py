"""Exact and near duplicates, within a split and across train / held-out (leakage).

Exact: byte-identical pixels (a BLAKE2 digest of each image). Near: an image and its most similar other image
when (1) their small grayscale thumbnails (``THUMB`` x ``THUMB``, area-averaged) correlate at ``NEAR_CORRELATION``
or more (the Pearson correlation of the thumbnails' pixels: invariant to brightness and contrast changes, robust to
re-encoding, resizing and mild noise) and (2) that match is much closer than the image's ``RATIO_K``-th most
similar image: its distance (1 - correlation) at most ``NEAR_RATIO`` times that one's (the ratio test of Lowe,
IJCV 2004). The ratio test is what separates a copy from one of many look-alikes: on small, plain images
(Fashion-MNIST's trousers) distinct items correlate above 0.99 at 16 x 16, but a copy is far closer than the
next look-alike (measured in benchmarks/data_quality/detect.py). Both are independent of the encoder, so a
duplicate is a duplicate whatever features the audit uses. Near-constant thumbnails (no structure to correlate)
are matched by exact digests only; a near-duplicate found in a group of more than ``RATIO_K`` copies is missed.
"""

from __future__ import annotations

import hashlib

import numpy as np

THUMB = 16
NEAR_CORRELATION = 0.97
NEAR_RATIO = 0.2
RATIO_K = 5
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
    import cv2

    images = np.asarray(images)
    out = np.zeros((len(images), side * side), np.float32)
    flat = np.zeros(len(images), bool)
    for i, img in enumerate(images):
        grey = img.astype(np.float32).mean(axis=2)
        small = cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA).ravel().astype(np.float64)
        small -= small.mean()
        deviation = np.sqrt((small**2).mean())
        if deviation < FLAT:
            flat[i] = True
            continue
        out[i] = small / np.linalg.norm(small)
    return out, flat


def nearest_correlation(
    queries: np.ndarray, base: np.ndarray, *, same: bool = False, k: int = RATIO_K
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index int64 (M,), correlation float64 (M,), kth_correlation float64 (M,)) of each query descriptor's most
    correlated base descriptor, and its correlation with its k-th most correlated (the last there is when the
    base is smaller); ``same``: queries are the base and a row never matches itself."""
    from densify.coverage._knn import knn

    m = len(queries)
    available = len(base) - (1 if same else 0)
    if available < 1 or m == 0:
        return np.full(m, -1, np.int64), np.full(m, np.nan), np.full(m, np.nan)
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
    corr = np.clip(1.0 - dist**2 / 2.0, -1.0, 1.0)
    return idx[:, 0].astype(np.int64), corr[:, 0], corr[:, -1]


def find_duplicates(
    images: np.ndarray,
    base: np.ndarray | None = None,
    *,
    threshold: float = NEAR_CORRELATION,
    ratio: float = NEAR_RATIO,
) -> dict[str, np.ndarray]:
    """Each image's duplicate, if any, among ``base`` (None: among ``images`` themselves, never itself).

    Returns arrays of length N: ``match`` (int64 index into the base, -1 for none), ``kind`` ("exact", "near" or
    ""), ``correlation`` (thumbnail correlation with the match; 1.0 for exact, NaN for none). An exact match is
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
    idx, c, c_k = nearest_correlation(q_desc, b_desc, same=within)
    with np.errstate(invalid="ignore"):
        near = (match < 0) & ~q_flat & (idx >= 0) & (c >= threshold) & (1.0 - c <= ratio * (1.0 - c_k))
    near &= ~b_flat[np.maximum(idx, 0)]
    match[near], kind[near], corr[near] = idx[near], "near", c[near]
    return {"match": match, "kind": kind.astype(str), "correlation": corr}

"""Stratified, seeded subsets and held-out carving."""

from __future__ import annotations

import numpy as np

from densify.data._imageset import ImageSet
from densify.errors import DataError

DEFAULT_HELDOUT_FRACTION = 0.2


def _allocate(counts: np.ndarray, size: int, keep: int = 0) -> np.ndarray:
    """Per-class sample sizes proportional to ``counts`` that sum to ``size`` (largest remainder).

    Every class with more than ``keep`` images gets at least one, so a small subset never drops a class; no class
    gives more than all but ``keep`` of its images.
    """
    most = np.maximum(counts - keep, 0)
    present = most > 0
    if size < present.sum():
        raise DataError(f"size {size} is smaller than the number of classes present ({int(present.sum())})")
    if size > most.sum():
        raise DataError(f"size {size} is larger than the {int(most.sum())} images that can be drawn")
    quota = counts / counts.sum() * size
    alloc = np.where(present, np.maximum(np.floor(quota), 1), 0).astype(np.int64)
    alloc = np.minimum(alloc, most)
    # Hand out (or take back) the remainder by largest fractional part, ties to the lower class index.
    while alloc.sum() != size:
        remainder = quota - alloc
        if alloc.sum() < size:
            remainder[alloc >= most] = -np.inf
            alloc[int(np.argmax(remainder))] += 1
        else:
            remainder[alloc <= 1] = np.inf
            alloc[int(np.argmin(remainder))] -= 1
    return alloc


def stratified_indices(
    labels: np.ndarray, size: int, seed: int, n_classes: int | None = None, keep: int = 0
) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of ``size`` items.

    Args:
        labels: int array (N,).
        size: how many indices to draw, ``1 <= size <= N``.
        seed: the subset is a pure function of (labels, size, seed).
        keep: leave at least this many items of every class out of the subset (a carve leaves each class one
            training image).

    Returns:
        int64 array (size,), sorted ascending, without repeats.
    """
    labels = np.asarray(labels)
    if not 0 < size <= len(labels):
        raise DataError(f"subset size {size} must be between 1 and the {len(labels)} images available")
    counts = np.bincount(labels, minlength=n_classes or 0)
    alloc = _allocate(counts, size, keep)
    rng = np.random.default_rng(seed)
    picked = []
    for cls, k in enumerate(alloc):
        if k:
            members = np.flatnonzero(labels == cls)
            picked.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(picked)).astype(np.int64)


def stratified_subset(images: ImageSet, size: int, seed: int = 0) -> ImageSet:
    """A class-stratified random subset of ``size`` images (class proportions kept, every class kept)."""
    if size > len(images):
        raise DataError(f"{images.name}: asked for {size} images but only {len(images)} are available")
    if size == len(images):
        return images
    return images.subset(stratified_indices(images.labels, size, seed, len(images.classes)))


def carve_indices(images: ImageSet, size: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices) of :func:`carve_heldout`, from the labels alone (no pixel is read)."""
    n = len(images)
    # every class keeps one training image: a class of one image has no held-out image (it cannot have both)
    spare = np.maximum(images.class_counts() - 1, 0)
    if size is None:
        size = max(round(DEFAULT_HELDOUT_FRACTION * n), int((spare > 0).sum()))
    if size > spare.sum() or size < 1:
        raise DataError(
            f"{images.name}: cannot carve {size} held-out images from {n} images of {len(spare)} classes "
            f"(at most {int(spare.sum())}: every class keeps one training image)"
        )
    held = stratified_indices(images.labels, size, seed, len(images.classes), keep=1)
    mask = np.ones(n, dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask), held


def carve_heldout(images: ImageSet, size: int | None = None, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Split ``images`` into (train, held-out), stratified by class.

    Args:
        size: held-out images to carve; default ``DEFAULT_HELDOUT_FRACTION`` of the images (at least one per class
            of two or more images; every class keeps at least one training image).
    """
    train, held = carve_indices(images, size, seed)
    base = images.name.rsplit("/", 1)[0]
    return images.subset(train, f"{base}/train"), images.subset(held, f"{base}/heldout")

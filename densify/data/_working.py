"""The working-size rule: recipes augment images as stored; encoders and models see them at the working size.

A photograph is larger than the small models densify fits on two CPU cores need. The rule, the same in the
coverage estimator, the trainer and the report:

1. Recipes run on the images as they are stored (after ``resize``/``channels``, when given), so a crop, a
   rotation or a blur acts on the real pixels, as it would in a training pipeline that crops before it resizes.
2. Every view, and every clean training and held-out image, is then brought to the *working size* with area
   interpolation (antialiased downscaling; bilinear when enlarging) before an encoder or a model sees it.

``image_size`` chooses the working size: ``"auto"`` (the default) keeps images whose longer side is at most
:data:`AUTO_SIDE` pixels and scales larger ones so that their longer side is :data:`AUTO_SIDE` (aspect kept);
an integer N does the same with N; ``(H, W)`` is exact; ``None`` or ``"stored"`` keeps the stored size. The
default was chosen by ``benchmarks/bench_working_size.py`` (accuracy and cost on two photo sets; docs/photos.md).

Folders of photographs larger than :func:`stored_cap` (256 px on the longer side at the default working size) are
stored scaled down to it when decoded, unless ``resize`` is given or ``image_size`` is ``"stored"``: recipes then
augment 256 px images, not 36 MB camera frames.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from densify.data._imageset import DataSplits, ImageSet
from densify.errors import DataError

#: the longer side ``image_size="auto"`` brings larger images to (measured: docs/photos.md)
AUTO_SIDE = 32
#: folders of images larger than this (longer side) are stored scaled down to it, unless ``resize`` says otherwise
#: (or twice the working size, when that is larger; :func:`stored_cap`)
STORED_MAX_SIDE = 256

ImageSize = int | str | tuple[int, int] | None


def working_size(shape: tuple[int, ...], image_size: ImageSize = "auto") -> tuple[int, int]:
    """(H, W) that images of ``shape`` (H, W[, C]) are brought to under ``image_size`` (see the module doc)."""
    h, w = int(shape[0]), int(shape[1])
    if image_size is None or image_size == "stored":
        return h, w
    if image_size == "auto":
        side = AUTO_SIDE
        if max(h, w) <= side:
            return h, w
    elif isinstance(image_size, int | np.integer) and not isinstance(image_size, bool):
        side = int(image_size)
        if side < 1:
            raise DataError(f"image_size must be a positive number of pixels, got {image_size!r}")
    elif (
        isinstance(image_size, tuple | list)
        and len(image_size) == 2
        and all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1 for v in image_size)
    ):
        return int(image_size[0]), int(image_size[1])
    else:
        raise DataError(
            f"image_size must be 'auto', 'stored', a side in pixels or (H, W), got {image_size!r}"
        )
    return scaled_to((h, w), side)


def scaled_to(shape: tuple[int, ...], side: int) -> tuple[int, int]:
    """(H, W) of ``shape`` scaled so that its longer side is ``side`` (aspect kept, each side at least 1)."""
    h, w = int(shape[0]), int(shape[1])
    scale = side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def stored_cap(image_size: ImageSize = "auto") -> int | None:
    """The longer side images of a folder are stored at, at most, under ``image_size``: ``STORED_MAX_SIDE``, or
    twice the working size's longer side when that is larger; None (the full size) for ``"stored"``.

    A camera photo (4000 x 3000) is 36 MB decoded; recipes augment the stored pixels, so at 1600 x 1200 a view
    cost 0.4-22 ms (flip to blur-noise, plus 1.2 ms to resize it) and the reference+views encoder's 51,200 views
    four minutes for 160 photos (2 cores, 2026-11-29), while the encoder and the models see 32 px. Stored at
    256 px, the views keep 8x the working size's detail (the studies' photo sets, 128 and 150 px, are unchanged).
    """
    if image_size is None or image_size == "stored":
        return None
    if image_size == "auto":
        side = AUTO_SIDE
    elif isinstance(image_size, tuple | list):
        side = max(int(v) for v in image_size)
    else:
        side = int(image_size)
    return max(STORED_MAX_SIDE, 2 * side)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One uint8 image (H, W, C) at ``size`` (H, W): area interpolation when shrinking, bilinear when enlarging;
    the image itself when it already has that size."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    import cv2

    shrink = h <= image.shape[0] and w <= image.shape[1]
    out = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out.reshape(h, w, image.shape[2])


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Every image of a uint8 array (N, H, W, C) at ``size``, as :func:`resize_image` does it."""
    if images.shape[1:3] == tuple(size):
        return images
    out = np.empty((len(images), *size, images.shape[3]), np.uint8)
    for i, image in enumerate(images):
        out[i] = resize_image(image, size)
    return out


def _split_at(split: ImageSet, size: tuple[int, int]) -> ImageSet:
    source = split.view_sources
    if source.shape[1:3] == size:
        return replace(split, images=source, sources=None)
    return replace(split, images=resize_images(source, size), sources=source)


def at_working_size(data: DataSplits, image_size: ImageSize = "auto") -> DataSplits:
    """``data`` with its images at the working size, each split keeping its stored pixels as ``sources``
    (recipes augment the training sources; held-out images are only measured). ``data`` itself when nothing
    changes; always computed from the stored pixels, so applying it twice does not resize twice."""
    stored = data.train.source_shape
    size = working_size(stored, image_size)
    if size == data.train.shape[:2] and (data.train.sources is None) == (size == stored[:2]):
        return data
    notes = tuple(n for n in data.notes if not n.startswith("working size "))
    if size != stored[:2]:
        notes += (
            f"working size {size[0]}x{size[1]}: recipes augment the stored {stored[0]}x{stored[1]} training "
            "images, then views and clean images are resized (area interpolation)",
        )
    return DataSplits(
        name=data.name,
        train=_split_at(data.train, size),
        heldout=_split_at(data.heldout, size),
        source=data.source,
        heldout_origin=data.heldout_origin,
        notes=notes,
    )

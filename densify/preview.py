"""Preview grids: rows of source images, columns of their augmented views, exactly replayable from the seed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from densify.data import ImageSet, stratified_indices

TILE = 64  # minimum tile side in pixels; small images are enlarged by an integer factor (nearest neighbour)
GAP = 2


def preview_indices(images: ImageSet, rows: int, seed: int) -> np.ndarray:
    """Indices of ``rows`` source images: one per class first (stratified, seeded), in label order."""
    rows = min(rows, len(images))
    idx = stratified_indices(images.labels, max(rows, int((images.class_counts() > 0).sum())), seed)
    idx = idx[np.argsort(images.labels[idx], kind="stable")]
    # Interleave classes so the first rows cover as many classes as possible.
    by_class = [list(idx[images.labels[idx] == c]) for c in np.unique(images.labels[idx])]
    order = [group[i] for i in range(max(map(len, by_class))) for group in by_class if i < len(group)]
    return np.asarray(order[:rows], dtype=np.int64)


def preview_grid(
    images: ImageSet,
    augmenter,
    rows: int = 8,
    views: int = 8,
    seed: int = 0,
    epoch: int = 0,
    max_side: int | None = None,
) -> np.ndarray:
    """A uint8 (H', W', 3) grid: column 0 the clean image, columns 1..views its views for (seed, epoch, index, view).

    The views are exactly those :class:`~densify.DensifiedDataset` yields for the same seed, epoch and index, shown
    at the stored resolution (before the working-size resize), so photographs stay legible; ``max_side`` caps a
    tile's longer side (the report's grids use it to keep the page small).
    """
    from densify.data._working import resize_image, working_size

    # a recipe that cannot work on these images: one line, not a traceback from albumentations
    augmenter.check_shape(images.source_shape)
    picked = preview_indices(images, rows, seed)
    h, w, _ = images.source_shape
    shrunk = working_size((h, w), max_side) if max_side and max(h, w) > max_side else None
    if shrunk is not None:  # large photographs: each tile shrunk to max_side (area interpolation)
        h, w = shrunk
    factor = max(1, -(-TILE // max(h, w)))
    th, tw = h * factor, w * factor
    grid = np.full((len(picked) * (th + GAP) + GAP, (views + 1) * (tw + GAP) + 2 * GAP, 3), 255, np.uint8)
    for r, index in enumerate(picked):
        source = images.view_sources[index]
        tiles = [source] + [
            augmenter.augment(source, index=int(index), view=v, epoch=epoch) for v in range(views)
        ]
        for c, tile in enumerate(tiles):
            if shrunk is not None:
                tile = resize_image(tile, shrunk)
            big = np.repeat(np.repeat(tile, factor, axis=0), factor, axis=1)
            if big.shape[-1] == 1:
                big = np.repeat(big, 3, axis=-1)
            y = GAP + r * (th + GAP)
            x = GAP + c * (tw + GAP) + (2 * GAP if c else 0)
            grid[y : y + th, x : x + tw] = big
    return grid


def png_bytes(grid: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(grid: np.ndarray, path: str | Path) -> Path:
    """Write ``grid`` as a PNG atomically."""
    from densify._io import write_bytes_atomic

    path = Path(path)
    write_bytes_atomic(path, png_bytes(grid))
    return path

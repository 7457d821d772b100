"""``.npz`` archives of arrays ``x_train, y_train`` and optionally ``x_test, y_test`` and ``classes``; labels are
integers 0..K-1 (whole-number floats too) or class names."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from densify.errors import DataError


def as_uint8_images(x: np.ndarray, where: str) -> np.ndarray:
    """Images as uint8 (N, H, W, C).

    Accepted: (N, H, W) or (N, H, W, C) with C in {1, 3}; uint8, any integer type with values in 0..255,
    or floats in [0, 1] (scaled by 255 and rounded). Anything else raises, naming ``where``.
    """
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        hint = " (channels-first? transpose to N, H, W, C)" if x.ndim == 4 and x.shape[1] in (1, 3) else ""
        raise DataError(
            f"{where}: images must have shape (N, H, W) or (N, H, W, C) with C in 1 or 3, got {x.shape}{hint}"
        )
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{where}: integer images must lie in 0..255, found {x.min()}..{x.max()}")
        return x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all() or (x.size and (x.min() < 0 or x.max() > 1)):
            raise DataError(f"{where}: float images must be finite and lie in [0, 1]")
        return np.rint(x * 255).astype(np.uint8)
    raise DataError(f"{where}: unsupported image dtype {x.dtype}")


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    """Labels as int64, or as strings (class names, mapped to indices by :func:`_named_labels`). Floats are
    accepted when every value is a whole number (labels saved from a float tensor)."""
    if y.ndim == 1 and y.dtype.kind in "US":
        return y
    if (
        y.ndim == 1
        and np.issubdtype(y.dtype, np.floating)
        and np.isfinite(y).all()
        and (y == np.rint(y)).all()
    ):
        y = y.astype(np.int64)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{where}: labels must be a 1-D array of integers or class names, got shape {y.shape} dtype {y.dtype}"
        )
    if y.size and y.min() < 0:
        raise DataError(f"{where}: label {int(y.min())} is negative")
    return y.astype(np.int64)


def _named_labels(splits: dict, classes: tuple[str, ...] | None, path: Path) -> tuple[str, ...]:
    """Replace class-name labels by their index in ``classes`` (or, without a 'classes' array, in the sorted
    names found); integer labels are left as they are. Returns the classes."""
    named = [s for s, (_, y) in splits.items() if y.dtype.kind in "US"]
    if not named:
        return classes
    if len(named) != len(splits):
        raise DataError(f"{path}: y_train and y_test must both hold class names or both integers")
    if classes is None:
        classes = tuple(sorted({str(v) for s in named for v in np.unique(splits[s][1])}))
        if len(classes) > MAX_CLASSES:
            raise DataError(f"{path}: {len(classes):,} class names; densify supports at most {MAX_CLASSES:,}")
    index = {c: i for i, c in enumerate(classes)}
    for s in named:
        x, y = splits[s]
        found, inverse = np.unique(y, return_inverse=True)  # each distinct name looked up once
        unknown = [str(v) for v in found if str(v) not in index]
        if unknown:
            raise DataError(
                f"{path}: y_{s}: label {unknown[0]!r} is not in 'classes' ({', '.join(classes[:5])}...)"
            )
        splits[s] = (x, np.array([index[str(v)] for v in found], dtype=np.int64)[inverse.reshape(-1)])
    return classes


#: the most classes a label array may imply when the archive names none (labels 0..K-1)
MAX_CLASSES = 10_000


def _check_members(path: Path) -> None:
    """Refuse members whose .npy header declares more data than the archive holds, before np.load allocates."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read(member, max_header_size=10_000)
            if dtype.hasobject:
                raise DataError(f"{path}: {info.filename} holds Python objects; store plain numeric arrays")
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if declared > info.file_size or info.file_size > 1032 * max(info.compress_size, 1) + 1024:
                raise DataError(
                    f"{path}: {info.filename} declares {declared:,} bytes ({'x'.join(map(str, shape)) or 'scalar'} "
                    f"{dtype}) but the archive holds {info.file_size:,}"
                )


def load_npz(
    path: Path,
) -> tuple[tuple[str, ...], tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """(classes, (train images, labels), (test images, labels) or None) from an ``.npz`` file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        # Open the file ourselves: np.load leaks its handle when the archive is corrupt.
        _check_members(path)
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: corrupt or unreadable .npz file ({exc})") from exc
    for key in ("x_train", "y_train"):
        if key not in arrays:
            raise DataError(f"{path}: missing array '{key}' (found: {', '.join(sorted(arrays)) or 'none'})")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: 'x_test' and 'y_test' must be given together")
    splits = {}
    for split in ("train", "test"):
        if f"x_{split}" not in arrays:
            continue
        x = as_uint8_images(arrays[f"x_{split}"], f"{path}: x_{split}")
        y = _labels(arrays[f"y_{split}"], f"{path}: y_{split}")
        if len(x) != len(y):
            raise DataError(f"{path}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels")
        if not len(x):
            raise DataError(f"{path}: x_{split} holds no images")
        splits[split] = (x, y)
    classes = None
    if "classes" in arrays:
        if arrays["classes"].dtype.kind not in "USiu" or arrays["classes"].size > MAX_CLASSES:
            raise DataError(f"{path}: 'classes' must be at most {MAX_CLASSES:,} names (strings or numbers)")
        classes = tuple(str(c) for c in arrays["classes"].ravel())
    classes = _named_labels(splits, classes, path)
    if classes is None:
        top = max(int(y.max()) for _, y in splits.values())
        if top >= MAX_CLASSES:
            raise DataError(
                f"{path}: label {top} implies {top + 1:,} classes (labels are 0..K-1 when the archive has no "
                f"'classes' array); densify supports at most {MAX_CLASSES:,}: relabel, or store 'classes'"
            )
        classes = tuple(str(i) for i in range(top + 1))
    return classes, splits["train"], splits.get("test")

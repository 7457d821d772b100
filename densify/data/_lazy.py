"""Sources larger than memory: images stay on disk, memory-mapped, and only the rows an audit selects are read.

A raw IDX file is mapped where it lies; a folder of image files is decoded once, image by image, into a ``.npy``
file in densify's cache (``$DENSIFY_CACHE/decoded``, keyed by every file's path, size and modification time and
the resize/channel settings) and mapped from there on later loads. Either way the splits hold ``np.memmap`` arrays:
subsets and carving pick rows by index (:func:`take`), so memory grows with the images an audit uses, not with the
dataset. Sources whose decoded pixels fit in :func:`in_memory_max` bytes are read into memory as before.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: decoded sources larger than this many bytes are memory-mapped (``DENSIFY_IN_MEMORY_MAX`` overrides it)
IN_MEMORY_MAX = 1 << 30
#: rows copied at a time when a mapped array is filled
CHUNK_ROWS = 1024


def in_memory_max() -> int:
    from densify.errors import DataError

    raw = os.environ.get("DENSIFY_IN_MEMORY_MAX")
    if raw is None:
        return IN_MEMORY_MAX
    try:
        value = int(raw)
    except ValueError:
        raise DataError(f"DENSIFY_IN_MEMORY_MAX must be a number of bytes, got {raw!r}") from None
    if value < 0:
        raise DataError(f"DENSIFY_IN_MEMORY_MAX must be a number of bytes >= 0, got {raw!r}")
    return value


def random_access(array: np.ndarray) -> np.ndarray:
    """Tell the kernel that ``array``'s mapping is read at random rows (``MADV_RANDOM``): no read-ahead and no
    fault-around, so reading a row maps that row's pages and not its neighbours' (otherwise a 2,000-image subset of
    a large file maps several times its own size). Returns ``array``."""
    import mmap

    handle = getattr(array, "_mmap", None)
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        handle.madvise(mmap.MADV_RANDOM)
    return array


def is_mapped(array) -> bool:
    """Whether ``array`` is memory-mapped from a file (views of a mapped array are too)."""
    return isinstance(array, np.memmap)


def take(array: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``array[indices]``, except that all rows in order give ``array`` itself (a mapped source stays mapped), and
    rows of a mapped array are read from its file (``os.pread``) rather than through the mapping: pages mapped into
    the process count in its resident memory (the kernel maps whole page-cache folios, up to megabytes per touched
    row), pages read count only in the shared page cache."""
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == len(array) and np.array_equal(indices, np.arange(len(array))):
        return array
    if is_mapped(array):
        rows = _read_rows(array, indices)
        if rows is not None:
            return rows
    return array[indices]


def _read_rows(array: np.memmap, indices: np.ndarray) -> np.ndarray | None:
    """``array[indices]`` read with ``os.pread`` from the file behind the mapping; None when the rows are not
    contiguous in the file (then the caller indexes the mapping)."""
    import mmap

    handle, filename = getattr(array, "_mmap", None), getattr(array, "filename", None)
    row = int(np.prod(array.shape[1:], dtype=np.int64)) * array.itemsize
    if handle is None or filename is None or array.ndim < 1 or array.strides[0] != row:
        return None
    if len(array) and not np.asarray(array[0]).flags.c_contiguous:
        return None
    mapped_at = np.frombuffer(handle, np.uint8).__array_interface__["data"][0]
    first = (
        array.__array_interface__["data"][0]
        - mapped_at
        + (array.offset - array.offset % mmap.ALLOCATIONGRANULARITY)
    )
    out = np.empty((len(indices), *array.shape[1:]), array.dtype)
    flat = out.reshape(len(indices), -1).view(np.uint8)
    fd = os.open(filename, os.O_RDONLY)
    try:
        for j, i in enumerate(indices):
            if not 0 <= i < len(array):
                raise IndexError(f"index {i} is out of bounds for {len(array)} rows")
            flat[j] = np.frombuffer(os.pread(fd, row, first + int(i) * row), np.uint8)
    finally:
        os.close(fd)
    return out


def decoded_path(key: str) -> Path:
    from densify.embed._cache import default_cache_dir

    return Path(default_cache_dir()) / "decoded" / f"{key}.npy"


def cached(key: str) -> tuple[np.ndarray, list[str]] | None:
    """(read-only memmap, notes of its decode) of a complete decoded source cached under ``key``, or None."""
    path = decoded_path(key)
    meta = path.with_suffix(".json")
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        saved = json.loads(meta.read_text())
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None  # unreadable: decode again
    if list(array.shape) != saved.get("shape") or array.dtype != np.uint8:
        return None
    return random_access(array), list(saved.get("notes", []))


def create(
    key: str,
    shape: tuple[int, ...],
    fill: Callable[[np.ndarray, int, int], None],
    notes: list[str],
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """A read-only uint8 memmap of ``shape`` cached under ``key``, made by ``fill(out, start, stop)`` for
    consecutive row ranges and moved into place only when complete (an interrupted decode leaves no partial
    cache); ``check()``, called once every row is filled, may raise to refuse the decode (nothing is kept);
    ``notes`` (what the decode converted) are kept beside it for :func:`cached`."""
    from densify._io import write_text_atomic

    path = decoded_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=tuple(shape))
        for start in range(0, shape[0], CHUNK_ROWS):
            fill(out, start, min(start + CHUNK_ROWS, shape[0]))
        if check is not None:
            check()
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    write_text_atomic(path.with_suffix(".json"), json.dumps({"shape": list(shape), "notes": notes}) + "\n")
    return random_access(np.load(path, mmap_mode="r"))

"""IDX files (MNIST, Fashion-MNIST, KMNIST), gzipped or not, as torchvision and Debian lay them out."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from densify.data._lazy import in_memory_max, random_access
from densify.errors import DataError

CLASS_NAMES = {
    "fashion": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
}
_STEMS = {"train": "train", "heldout": "t10k"}
_CHUNK = 1 << 20


#: deflate cannot compress by more than about 1032:1, so a .gz file bounds the data it can hold
_MAX_DEFLATE_RATIO = 1032


def _check_declared(path: Path, dims: tuple[int, ...], header_bytes: int) -> None:
    """Refuse a header that declares more data than the file can hold, before anything is allocated."""
    if not 1 <= len(dims) <= 4:
        raise DataError(f"{path}: IDX header declares {len(dims)} dimensions; images and labels have 1 to 4")
    declared = int(np.prod(dims, dtype=object))
    size = path.stat().st_size
    if path.suffix == ".gz":
        if declared > _MAX_DEFLATE_RATIO * size:
            raise DataError(
                f"{path}: IDX header declares {declared:,} bytes of data ({' x '.join(map(str, dims))}), "
                f"more than a {size:,}-byte .gz file can hold"
            )
    elif declared != size - header_bytes:
        raise DataError(
            f"{path}: IDX header declares {declared:,} bytes of data ({' x '.join(map(str, dims))}) "
            f"but the file holds {size - header_bytes:,}"
        )


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) of unsigned bytes into an array of the shape its header declares.

    The array is allocated once at its final size and filled in place, so reading 60,000 images costs
    their 47 MB and no more; a raw (not gzipped) file larger than ``densify.data._lazy.in_memory_max()`` bytes is
    memory-mapped instead (read-only; pages are read as rows are used). Truncated or corrupt files raise :class:`DataError` naming the file.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            header = fh.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0:
                raise DataError(f"{path}: not an IDX file (bad magic number {header.hex() or 'empty'})")
            if header[2] != 0x08:
                raise DataError(f"{path}: IDX type code 0x{header[2]:02x} is not unsigned bytes (0x08)")
            ndim = header[3]
            dims_raw = fh.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
            _check_declared(path, dims, 4 + 4 * ndim)
            size = int(np.prod(dims))
            if opener is open and size > in_memory_max():  # raw and large: map it where it lies
                return random_access(
                    np.memmap(path, dtype=np.uint8, mode="r", offset=4 + 4 * ndim, shape=dims)
                )
            out = np.empty(dims, dtype=np.uint8)
            got, buf = 0, memoryview(out).cast("B")
            while got < out.size:
                n = fh.readinto(buf[got : got + _CHUNK])  # small reads: gzip copies through a temporary
                if not n:
                    break
                got += n
            if got != out.size:
                raise DataError(
                    f"{path}: truncated IDX file: header declares {out.size} bytes of data, found {got}"
                )
            if fh.read(1):
                raise DataError(
                    f"{path}: IDX file has trailing data after the {out.size} bytes its header declares"
                )
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise DataError(f"{path}: file not found") from exc
        raise DataError(f"{path}: corrupt or truncated file ({exc})") from exc
    return out


def _find(root: Path, stem: str, kind: str) -> Path:
    """Locate e.g. ``train-images-idx3-ubyte[.gz]`` in root, root/raw or root/*/raw (torchvision's layout)."""
    names = [
        f"{stem}-{kind}-idx{3 if kind == 'images' else 1}-ubyte",
        f"{stem}-{kind}.idx{3 if kind == 'images' else 1}-ubyte",
    ]
    for folder in (root, root / "raw", *sorted(root.glob("*/raw"))):
        for name in names:
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
    raise DataError(f"{root}: no IDX file {names[0]}[.gz] found (looked in the folder, raw/ and */raw/)")


def class_names_for(path: Path, n_classes: int) -> tuple[str, ...]:
    """Fashion-MNIST or KMNIST names when the file's path says so, else the label numbers."""
    lowered = str(path.resolve()).lower()
    for key, names in CLASS_NAMES.items():
        if key in lowered and len(names) == n_classes:
            return names
    return tuple(str(i) for i in range(n_classes))


def load_idx_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N×H×W×1 uint8, labels N int64) of the ``train`` or ``heldout`` (t10k) split in ``root``."""
    stem = _STEMS[split]
    images_path, labels_path = _find(root, stem, "images"), _find(root, stem, "labels")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected a 3-D IDX array (N, H, W), got shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a 1-D IDX array of labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path}: {len(images)} images but {labels_path.name} has {len(labels)} labels"
        )
    return images[..., None], labels.astype(np.int64)


def load_idx(
    root: Path,
) -> tuple[tuple[str, ...], tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """(classes, train split, t10k split or None when the folder has no t10k files) of an IDX folder."""
    train = load_idx_split(root, "train")
    try:
        held = load_idx_split(root, "heldout")
    except DataError as exc:
        if "no IDX file" not in str(exc):
            raise
        held = None
    top = max(int(train[1].max(initial=0)), int(held[1].max(initial=0)) if held else 0)
    return class_names_for(_find(root, "train", "images"), max(top + 1, 2)), train, held

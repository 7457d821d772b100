"""torchvision-style ImageFolder trees: one sub-folder per class, optional ``train/`` and ``test/`` (or ``val/``)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from densify.errors import DataError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
HELDOUT_FOLDERS = ("test", "val")
_GRAY_MODES = frozenset({"1", "L", "LA"})
#: 16-bit grayscale (PNG, TIFF): read as 8-bit by :func:`to_8bit`, as an image viewer shows them
GRAY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_COLOUR_MODES = frozenset({"RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"})


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def display_name(name: str) -> str:
    """A folder name as printable text: bytes that are not UTF-8 (kept by the OS as surrogates) become \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def to_8bit(im):
    """A 16-bit grayscale PIL image as an 8-bit one (``L``), each value v as round(v * 255 / 65535); other
    images unchanged. PIL's own ``convert("L")`` clips 16-bit values at 255, which turns a 16-bit image white."""
    if im.mode not in GRAY16_MODES:
        return im
    from PIL import Image

    wide = np.asarray(im).astype(np.uint32)
    return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")


def _channels_of(path: Path, mode: str) -> int:
    if mode in _GRAY_MODES or mode in GRAY16_MODES:
        return 1
    if mode in _COLOUR_MODES:
        return 3
    raise DataError(
        f"{path}: unsupported image mode {mode!r} (densify reads 8-bit and 16-bit grayscale and 8-bit colour "
        "images)"
    )


def _summarise(groups: dict, what: str, shown: int = 3) -> str:
    """The groups by size, largest first: the first ``shown`` with a count and an example, then how many more."""
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    parts = [f"{key} ({len(files)} files, e.g. {files[0]})" for key, files in ordered[:shown]]
    rest = ordered[shown:]
    if rest:
        parts.append(f"{len(rest)} more ({sum(len(f) for _, f in rest)} files)")
    return f"images have different {what}: " + "; ".join(parts)


def scan(root: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    """(files, labels) under ``root/<class>/`` for every class in ``classes``; a class folder must hold images."""
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        found = _image_files(folder)
        if not found:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise DataError(f"{folder}: class folder holds no images ({suffixes})")
        files += found
        labels += [index] * len(found)
    return files, np.asarray(labels, dtype=np.int64)


def _modal(groups: dict) -> str | int:
    """The key held by the most files (ties: the larger key), for a folder of mixed sizes or modes."""
    return max(groups, key=lambda k: (len(groups[k]), k))


def read_images(
    root: Path,
    files: list[Path],
    resize: tuple[int, int] | None = None,
    channels: int | None = None,
    notes: list[str] | None = None,
    max_side: int | None = None,
) -> np.ndarray:
    """Decode ``files`` into one uint8 array (N, H, W, C): in memory, or, when the decoded pixels exceed
    :func:`densify.data._lazy.in_memory_max` bytes, into a memory-mapped file in densify's cache that later loads
    of the same files reuse (see :mod:`densify.data._lazy`).

    Images of another size than the most common one are resized to it (bilinear), and images of another
    channel count are converted to the most common one, unless ``resize=(H, W)`` or ``channels`` (1 or 3) says
    what to use; what was converted (counts and an example of each) is appended to ``notes``. Without ``resize``,
    images whose longer side exceeds ``max_side`` are stored scaled down to it (aspect kept; PIL's bilinear
    filter, antialiased when it shrinks: :func:`densify.data._working.stored_cap`), with a note.
    """
    from PIL import Image, UnidentifiedImageError

    from densify.data import _lazy

    if resize is not None:  # the size asked for is kept, however large
        max_side = None
    # decoded (and mapped) by an earlier load: at the full size (valid under any cap it fits), or scaled to the cap
    key = _decode_key(files, resize, channels)
    hit = _lazy.cached(key)
    if hit is not None and max_side is not None and max(hit[0].shape[1:3]) > max_side:
        hit = None
    if hit is None and max_side is not None:
        hit = _lazy.cached(_decode_key(files, resize, channels, max_side))
    if hit is not None:
        if notes is not None:
            notes.extend(hit[1])
        return hit[0]
    sizes: dict[str, list[Path]] = defaultdict(list)
    chans: dict[int, list[Path]] = defaultdict(list)
    unreadable: list[str] = []  # every file that cannot be read, said at once (not one per run)
    for path in files:
        try:
            with Image.open(path) as im:
                sizes[f"{im.height}x{im.width}"].append(path)
                chans[_channels_of(path, im.mode)].append(path)
        except DataError as exc:
            unreadable.append(str(exc))
        except (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            ValueError,
            Image.DecompressionBombError,
        ) as exc:
            reason = str(exc).replace(f" '{path}'", "")  # PIL repeats the path
            unreadable.append(f"{path}: cannot read image ({reason})")
    _refuse(root, unreadable, len(files))
    found: list[str] = []
    if resize is None and len(sizes) > 1:
        modal = _modal(sizes)
        found.append(
            f"{root}: {_summarise(sizes, 'sizes (HxW)')}; all were resized to the most common, {modal} "
            "(set resize to choose another size)"
        )
        resize = tuple(int(v) for v in modal.split("x"))  # type: ignore[assignment]
    if channels is None and len(chans) > 1:
        channels = int(_modal(chans))
        found.append(
            f"{root}: {_summarise(chans, 'channel counts')}; all were converted to the most common, "
            f"{channels} (set channels to choose)"
        )
    height, width = resize or tuple(int(v) for v in next(iter(sizes)).split("x"))
    if max_side is not None and max(height, width) > max_side:
        from densify.data._working import scaled_to

        full = (height, width)
        height, width = scaled_to(full, max_side)
        key = _decode_key(files, resize, channels, max_side)
        found.append(
            f"{root}: images are {full[0]}x{full[1]}; stored at {height}x{width} (longer side {max_side}), which "
            f"recipes augment: a view at the full size costs about {full[0] * full[1] / (height * width):.0f}x "
            f"as much (--resize {full[0]}x{full[1]} keeps it)"
        )
    if notes is not None:
        notes.extend(found)
    c = channels or next(iter(chans))

    undecodable: list[str] = []  # a header that reads but pixels that do not (a truncated JPEG): all, at once

    def fill(out: np.ndarray, start: int, stop: int) -> None:
        for i in range(start, stop):
            path = files[i]
            try:
                with Image.open(path) as im:
                    im = to_8bit(im).convert("L" if c == 1 else "RGB")
                    if im.size != (width, height):  # PIL's bilinear filter is antialiased when it shrinks
                        im = im.resize((width, height), Image.Resampling.BILINEAR)
                    out[i] = np.asarray(im, dtype=np.uint8).reshape(height, width, c)
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
                undecodable.append(f"{path}: cannot decode image ({exc})")

    shape = (len(files), height, width, c)
    # large: decoded once into a mapped file, kept only when every image decoded
    if int(np.prod(shape)) > _lazy.in_memory_max():
        return _lazy.create(key, shape, fill, found, check=lambda: _refuse(root, undecodable, len(files)))
    out = np.empty(shape, dtype=np.uint8)
    fill(out, 0, len(files))
    _refuse(root, undecodable, len(files))
    return out


def _refuse(root: Path, unreadable: list[str], total: int) -> None:
    """Raise one DataError naming every file of ``unreadable`` (each "path: reason"): the file itself when it is
    the only one, else how many of ``total`` and the first three, so a user fixes them all in one go."""
    if len(unreadable) == 1:
        raise DataError(unreadable[0])
    if unreadable:
        more = f"; and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        raise DataError(
            f"{root}: {len(unreadable)} of {total} images cannot be read (fix or remove them): "
            + "; ".join(unreadable[:3])
            + more
        )


def _decode_key(files: list[Path], resize, channels, max_side=None) -> str:
    """What a folder's decoded pixels depend on: every file's path, size and modification time, and the settings."""
    from densify._hash import digest

    stats = []
    for path in files:
        try:
            st = path.stat()
        except OSError as exc:
            raise DataError(f"{path}: cannot read image ({exc.strerror or exc})") from exc
        stats.append((str(path.resolve()), st.st_size, st.st_mtime_ns))
    capped = () if max_side is None else (max_side,)
    return digest("decoded-folder/1", stats, None if resize is None else tuple(resize), channels, *capped)


def load_folder(
    root: Path,
    resize: tuple[int, int] | None = None,
    channels: int | None = None,
    max_side: int | None = None,
) -> tuple[
    tuple[str, ...], tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None, tuple[str, ...]
]:
    """(classes, (train images, labels, paths), (held-out images, labels, paths) or None, notes) of an ImageFolder
    tree (paths: each image's file, in row order);
    the notes say what was resized or converted to give every image one size and channel count."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    train_root = root / "train" if (root / "train").is_dir() else root
    held_root = next((root / n for n in HELDOUT_FOLDERS if train_root != root and (root / n).is_dir()), None)
    classes = [p.name for p in _class_dirs(train_root)]
    if not classes:
        raise DataError(f"{train_root}: no class sub-folders found (expected {train_root}/<class>/<image>)")
    train_files, train_labels = scan(train_root, classes)
    if held_root is not None:
        unknown = sorted(set(p.name for p in _class_dirs(held_root)) - set(classes))
        if unknown:
            raise DataError(
                f"{held_root}: class folder(s) {', '.join(unknown)} are not in the training class list "
                f"({', '.join(classes)})"
            )
        held_files, held_labels = scan(held_root, classes)
    else:
        held_files = []
    notes: list[str] = []
    if held_files:
        images = read_images(root, train_files + held_files, resize, channels, notes, max_side)
        n = len(train_files)
        return (
            tuple(display_name(c) for c in classes),
            (images[:n], train_labels, tuple(map(str, train_files))),
            (images[n:], held_labels, tuple(map(str, held_files))),
            tuple(notes),
        )
    return (
        tuple(display_name(c) for c in classes),
        (
            read_images(root, train_files, resize, channels, notes, max_side),
            train_labels,
            tuple(map(str, train_files)),
        ),
        None,
        tuple(notes),
    )

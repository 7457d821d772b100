"""Data-spec strings and :func:`load_data`, the one entry point that turns a spec into :class:`DataSplits`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densify.data._imageset import DataSplits, ImageSet
from densify.data._subset import carve_indices, stratified_indices, stratified_subset
from densify.data._synth import SynthSpec, load_synth, parse_synth
from densify.data._working import ImageSize, at_working_size, stored_cap, working_size
from densify.errors import DataError, SpecError

DEFAULT_DATA = "fashion-mini"
BUILTIN_DATASETS = ("digits", "fashion-mini")
PREFIXES = ("cifar", "folder", "idx", "npz")
SYNTH = "synth"


@dataclass(frozen=True)
class DataSpec:
    """A parsed data spec: ``kind`` is a built-in dataset name, a path prefix or ``synth``; ``path`` is set for
    path prefixes, ``synth`` for known-factor datasets."""

    kind: str
    path: Path | None = None
    synth: SynthSpec | None = None

    def __str__(self) -> str:
        if self.synth is not None:
            return str(self.synth)
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_spec(spec: str) -> DataSpec:
    """Parse a data-spec string.

    Grammar::

        spec   := NAME | PREFIX ":" PATH | SYNTH
        NAME   := "fashion-mini" | "digits"                 (built-in datasets)
        PREFIX := "idx" | "folder" | "cifar" | "npz"
        PATH   := any non-empty path; "~" is expanded; it may itself contain ":"
        SYNTH  := "synth:" FAMILY [ "?" OPTIONS ]          (rendered known-factor datasets; the grammar of
                                                          FAMILY and OPTIONS is :func:`parse_synth`'s)

    Surrounding whitespace is ignored; names and prefixes are case-sensitive. Anything else raises
    :class:`SpecError` naming the allowed forms (and the closest built-in name, if one is close).
    """
    text = spec.strip() if isinstance(spec, str) else ""
    if not text:
        raise SpecError(f"empty data spec {spec!r}; use {_forms()}")
    if text in BUILTIN_DATASETS:
        return DataSpec(text)
    prefix, sep, rest = text.partition(":")
    if sep and prefix == SYNTH:
        return DataSpec(SYNTH, synth=parse_synth(text))
    if sep and prefix in PREFIXES:
        if not rest.strip():
            raise SpecError(f"data spec {spec!r} has an empty path after '{prefix}:'")
        return DataSpec(prefix, Path(rest.strip()).expanduser())
    if sep and len(prefix) > 1:
        raise SpecError(
            f"unknown data-spec prefix '{prefix}:' in {spec!r}; allowed prefixes: "
            f"{', '.join(p + ':' for p in (*PREFIXES, SYNTH))}"
        )
    close = difflib.get_close_matches(text, BUILTIN_DATASETS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    if not close and Path(text).exists():
        hint = f"; to read the path, prefix it, e.g. 'folder:{text}' or 'npz:{text}'"
    raise SpecError(f"unknown data spec {spec!r}; use {_forms()}{hint}")


def _forms() -> str:
    return " or ".join(
        [", ".join(BUILTIN_DATASETS), ", ".join(f"{p}:PATH" for p in PREFIXES), "synth:FAMILY?OPTIONS"]
    )


def _builtin(kind: str) -> tuple[tuple[str, ...], tuple, tuple | None, str]:
    if kind == "fashion-mini":
        from densify.data._embedded import fashion_mini_path
        from densify.data._npz import load_npz

        path = fashion_mini_path()
        classes, train, held = load_npz(path)
        return classes, train, held, f"embedded ({path.name}, Fashion-MNIST subset, MIT licence)"
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError("data spec 'digits' needs scikit-learn: pip install scikit-learn") from exc
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return (
        tuple(str(i) for i in range(10)),
        (images, digits.target.astype(np.int64)),
        None,
        "scikit-learn load_digits",
    )


def _read(
    spec: DataSpec, resize, channels, max_side: int | None = None
) -> tuple[tuple[str, ...], tuple, tuple | None, str, tuple[str, ...]]:
    """(classes, train, held-out or None, source, notes on what loading converted)."""
    if spec.synth is not None:
        return (*load_synth(spec.synth), ())
    if spec.path is None:
        return (*_builtin(spec.kind), ())
    path = spec.path
    if spec.kind != "npz" and not path.exists():
        raise DataError(f"{path}: no such folder (data spec '{spec}')")
    if spec.kind == "idx":
        from densify.data._idx import load_idx

        return (*load_idx(path), str(path), ())
    if spec.kind == "folder":
        from densify.data._folder import load_folder

        classes, train, held, notes = load_folder(path, resize, channels, max_side)
        return classes, train, held, str(path), notes
    if spec.kind == "cifar":
        from densify.data._cifar import load_cifar

        return (*load_cifar(path), str(path), ())
    from densify.data._npz import load_npz

    return (*load_npz(path), str(path), ())


def _convert(images: np.ndarray, resize: tuple[int, int] | None, channels: int | None) -> np.ndarray:
    """Resize (bilinear, antialiased) and/or convert channels of an array of images, only when asked."""
    h, w, c = images.shape[1:]
    if (resize is None or tuple(resize) == (h, w)) and (channels is None or channels == c):
        return images
    from PIL import Image

    th, tw = resize or (h, w)
    tc = channels or c
    out = np.empty((len(images), th, tw, tc), dtype=np.uint8)
    for i, img in enumerate(images):
        im = Image.fromarray(img[..., 0] if c == 1 else img)
        im = im.convert("L" if tc == 1 else "RGB")
        if (th, tw) != (h, w):
            im = im.resize((tw, th), Image.Resampling.BILINEAR)
        out[i] = np.asarray(im).reshape(th, tw, tc)
    return out


def _split(arrays: tuple, resize, channels, classes, name: str, spec: DataSpec) -> ImageSet:
    """An ImageSet from (images, labels[, factors or file paths]) as a reader returned them."""
    images = _convert(arrays[0], resize, channels)
    if len(arrays) == 2:
        return ImageSet(images, arrays[1], classes, name)
    if spec.synth is None:  # a folder's file paths
        return ImageSet(images, arrays[1], classes, name, paths=arrays[2])
    return ImageSet(images, arrays[1], classes, name, factors=arrays[2], factor_names=spec.synth.factor_names)


def _listed(classes: list[str], shown: int = 5) -> str:
    names = ", ".join(f"'{c}'" for c in classes[:shown])
    more = f" and {len(classes) - shown} more" if len(classes) > shown else ""
    return f"class{'es' if len(classes) > 1 else ''} {names}{more}"


def load_data(
    spec: str = DEFAULT_DATA,
    *,
    train_size: int | None = None,
    heldout_size: int | None = None,
    seed: int = 0,
    resize: tuple[int, int] | None = None,
    channels: int | None = None,
    image_size: ImageSize = "auto",
    cap: bool = False,
    max_side: int | str | None = "auto",
) -> DataSplits:
    """Load a dataset from a data-spec string (see :func:`parse_spec`).

    Args:
        spec: ``fashion-mini`` (default, embedded), ``digits``, ``idx:PATH``, ``folder:PATH``, ``cifar:PATH``,
            ``npz:PATH``, ``synth:FAMILY?OPTIONS`` (rendered known-factor images, see :func:`parse_synth`).
        train_size: keep a class-stratified random subset of this many training images (with ``cap``, a split
            that has fewer keeps all of them instead of raising).
        heldout_size: keep (or, when the source has no held-out split, carve from train) this many held-out images.
        seed: seeds subsets and carving; the result is a pure function of (source, sizes, seed).
        resize: (H, W) to resize every image to when it is read (a folder of mixed sizes is otherwise brought to
            its most common size, with a note in ``DataSplits.notes``).
        channels: 1 or 3 to convert every image to grayscale or RGB when it is read (a folder of mixed modes is
            otherwise converted to its most common channel count, with a note).
        image_size: the working size (see :mod:`densify.data._working`): ``"auto"`` (default) keeps images
            whose longer side is at most ``AUTO_SIDE`` and scales larger ones down to it, an int N scales the
            longer side to N, ``(H, W)`` is exact, None keeps the stored size. Images larger than the working
            size keep their stored pixels as ``ImageSet.sources``: recipes augment those.
        max_side: a folder's images whose longer side exceeds it are stored scaled down to it when read (aspect
            kept; unless ``resize`` is given); ``"auto"``: :func:`~densify.data._working.stored_cap` of
            ``image_size`` (256 px at the default working size); None: the full size.

    Raises:
        DataError: the source is missing, malformed or inconsistent (the message names the path and problem).
    """
    parsed = parse_spec(spec)
    for key, value in (("train_size", train_size), ("heldout_size", heldout_size)):
        if value is not None and (not isinstance(value, int | np.integer) or value < 1):
            raise DataError(f"{key} must be a positive integer, got {value!r}")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if resize is not None and (len(resize) != 2 or min(resize) < 1):
        raise DataError(f"resize must be (H, W) with positive sides, got {resize!r}")
    working_size((8, 8), image_size)  # validates image_size before anything is read
    if max_side == "auto":
        max_side = stored_cap(image_size)
    elif max_side is not None and (
        isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1
    ):
        raise DataError(f"max_side must be 'auto', None or a positive number of pixels, got {max_side!r}")
    classes, train, held, source, notes = _read(parsed, resize, channels, max_side)
    name = str(parsed)
    # Rows are chosen from the labels first and the pixels taken once (a memory-mapped source is read only where
    # chosen): the same rows as carving, then subsetting, the image sets.
    train_set = _split(train, resize, channels, classes, f"{name}/train", parsed)
    if held is None:
        train_rows, held_rows = carve_indices(train_set, heldout_size, seed)
        held_set = train_set.subset(held_rows, f"{name}/heldout")
        origin = f"carved from train (stratified, seed {seed})"
        alone = [c for c, n in zip(classes, train_set.class_counts(), strict=True) if n == 1]
        if alone:
            notes = (*notes, f"{name}: {_listed(alone)} {'has' if len(alone) == 1 else 'have'} a single image, "
                     "kept for training: no held-out image measures "
                     f"{'that class' if len(alone) == 1 else 'those classes'}")  # fmt: skip
    else:
        train_rows = np.arange(len(train_set))
        held_set = _split(held, resize, channels, classes, f"{name}/heldout", parsed)
        origin = "rendered from the held-out factor ranges" if parsed.synth is not None else "test split"
        if heldout_size is not None:
            held_set = stratified_subset(held_set, heldout_size, seed)
    if train_size is not None and cap:
        train_size = min(train_size, len(train_rows))
    if train_size is not None:
        if train_size > len(train_rows):
            raise DataError(
                f"{name}/train: asked for {train_size} images but only {len(train_rows)} are available"
            )
        if train_size < len(train_rows):
            labels = train_set.labels[train_rows]
            train_rows = train_rows[stratified_indices(labels, train_size, seed, len(train_set.classes))]
    train_set = train_set.subset(train_rows)
    data = DataSplits(
        name=name, train=train_set, heldout=held_set, source=source, heldout_origin=origin, notes=notes
    )
    return at_working_size(data, image_size)

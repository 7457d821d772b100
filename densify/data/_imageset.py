"""The in-memory image containers every other part of densify consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from densify.errors import DataError


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images with integer labels: one split of a dataset.

    Attributes:
        images: uint8 array, shape (N, H, W, C) with C in {1, 3}; stored read-only.
        labels: int64 array, shape (N,), each in ``range(len(classes))``; stored read-only.
        classes: class names; ``classes[label]`` names a label.
        name: a short human-readable name, e.g. ``"fashion-mini/train"``.
        sources: optional uint8 array (N, H', W', C): the same images at their stored resolution when ``images``
            hold them at a smaller working size (see :func:`densify.data.at_working_size`). Recipes augment the
            sources; each view is then resized to ``images``' size. None: recipes augment ``images``.
        factors: optional float64 array (N, F): the latent factors each image was rendered from (known-factor
            ``synth:`` datasets, see :mod:`densify.data._synth`); None for real data.
        factor_names: the F factor names, in column order (empty when ``factors`` is None).
        paths: the file each image was read from (ImageFolder sources), in row order; empty when not from files.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    name: str = ""
    sources: np.ndarray | None = None
    factors: np.ndarray | None = None
    factor_names: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        images, labels = self.images, np.asarray(self.labels)
        where = f"{self.name}: " if self.name else ""
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise DataError(
                f"{where}images must be a uint8 numpy array, got {getattr(images, 'dtype', type(images))}"
            )
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise DataError(
                f"{where}images must have shape (N, H, W, C) with C in (1, 3), got {images.shape}"
            )
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(
                f"{where}labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}"
            )
        if len(labels) != len(images):
            raise DataError(f"{where}{len(images)} images but {len(labels)} labels")
        classes = tuple(str(c) for c in self.classes)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            bad = labels[(labels < 0) | (labels >= len(classes))]
            raise DataError(
                f"{where}label {int(bad[0])} is outside the class list (labels must be in 0..{len(classes) - 1}, "
                f"{len(bad)} labels out of range)"
            )
        sources = self.sources
        if sources is not None:
            if (
                not isinstance(sources, np.ndarray)
                or sources.dtype != np.uint8
                or sources.ndim != 4
                or len(sources) != len(images)
                or sources.shape[-1] != images.shape[-1]
            ):
                raise DataError(
                    f"{where}sources must be a uint8 array (N, H, W, C) with the images' N and C, got "
                    f"{getattr(sources, 'dtype', type(sources))} {getattr(sources, 'shape', '')}"
                )
            object.__setattr__(self, "sources", _readonly(sources))
        factors = self.factors
        names = tuple(str(n) for n in self.factor_names)
        if factors is not None:
            factors = np.asarray(factors, dtype=np.float64)
            if factors.ndim != 2 or len(factors) != len(images) or factors.shape[1] != len(names):
                raise DataError(
                    f"{where}factors must be an (N, F) array with one row per image and one column per factor "
                    f"name, got shape {factors.shape} for {len(images)} images and {len(names)} names"
                )
            object.__setattr__(self, "factors", _readonly(factors))
        elif names:
            raise DataError(f"{where}factor_names given without factors")
        object.__setattr__(self, "factor_names", names)
        paths = tuple(str(p) for p in self.paths)
        if paths and len(paths) != len(images):
            raise DataError(f"{where}{len(paths)} paths for {len(images)} images")
        object.__setattr__(self, "paths", paths)
        object.__setattr__(self, "images", _readonly(images))
        object.__setattr__(self, "labels", _readonly(labels.astype(np.int64, copy=False)))
        object.__setattr__(self, "classes", classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"ImageSet(name={self.name!r}, n={len(self)}, shape={self.shape}, classes={len(self.classes)})"

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def source_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the images recipes augment: the sources' shape when set, else :attr:`shape`."""
        return tuple(int(s) for s in self.view_sources.shape[1:])  # type: ignore[return-value]

    @property
    def view_sources(self) -> np.ndarray:
        """The images recipes augment: :attr:`sources` when set, else :attr:`images`."""
        return self.images if self.sources is None else self.sources

    def fingerprint_parts(self) -> tuple:
        """What identifies this split's pixels and labels in cache keys (the sources too, when set)."""
        return (
            (self.images, self.labels) if self.sources is None else (self.images, self.labels, self.sources)
        )

    @property
    def channels(self) -> int:
        return int(self.images.shape[-1])

    def class_counts(self) -> np.ndarray:
        """int64 array (len(classes),): images per class."""
        return np.bincount(self.labels, minlength=len(self.classes))

    def subset(self, indices: np.ndarray, name: str | None = None) -> ImageSet:
        """A new ImageSet holding ``images[indices]`` (a copy; all rows in order keep the arrays themselves, so a
        memory-mapped source stays mapped) with the same classes."""
        from densify.data._lazy import take

        indices = np.asarray(indices, dtype=np.int64)
        return ImageSet(
            take(self.images, indices),
            self.labels[indices],
            self.classes,
            self.name if name is None else name,
            None if self.sources is None else take(self.sources, indices),
            None if self.factors is None else self.factors[indices],
            self.factor_names,
            tuple(self.paths[i] for i in indices) if self.paths else (),
        )


@dataclass(frozen=True, eq=False)
class DataSplits:
    """A dataset as densify uses it: a training split and a held-out split with the same classes.

    Attributes:
        name: the data spec it was loaded from, e.g. ``"fashion-mini"`` or ``"idx:/data/mnist"``.
        train: the training images (the ones recipes augment and models train on).
        heldout: held-out images; never used to fit anything, only to measure.
        source: where the data was read from (a path, or "embedded").
        heldout_origin: how the held-out split was obtained ("test split", or how it was carved from train).
    """

    name: str
    train: ImageSet
    heldout: ImageSet
    source: str = ""
    heldout_origin: str = "test split"
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.train.classes != self.heldout.classes:
            raise DataError(f"{self.name}: train and held-out splits have different class lists")
        if self.train.shape != self.heldout.shape:
            raise DataError(
                f"{self.name}: train images are {self.train.shape} but held-out images are {self.heldout.shape}"
            )
        present = np.flatnonzero(self.train.class_counts())
        if len(present) < 2:
            raise DataError(
                f"{self.name}: the training split has {len(present)} class(es); densify needs at least 2 classes"
            )
        if len(self.heldout) == 0:
            raise DataError(f"{self.name}: the held-out split is empty")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    def __repr__(self) -> str:
        return (
            f"DataSplits(name={self.name!r}, train={len(self.train)}, heldout={len(self.heldout)}, "
            f"shape={self.train.shape}, classes={len(self.classes)})"
        )

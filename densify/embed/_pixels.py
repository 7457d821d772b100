"""``pixels``: flattened pixels in [0, 1], optionally projected on the training set's top principal components."""

from __future__ import annotations

import numpy as np

from densify._hash import digest
from densify.data import ImageSet
from densify.errors import EncoderError

#: above this many pixel values (rows x columns, rows >= columns) the axes come from the float64 Gram matrix
#: accumulated over blocks of rows instead of an SVD of a float64 copy (250,000 16x16 images: 3.1 GB peak)
SVD_MAX_VALUES = 1 << 24
_ROWS = 4096


def _gram_axes(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean float64 (D,), axes (D, D) as rows, largest variance first) of pixels / 255, from the eigenvectors of
    the centred Gram matrix accumulated in float64 blocks of rows (the right singular vectors of the SVD, to
    rounding)."""
    rows = len(flat)
    mean = np.zeros(flat.shape[1])
    for start in range(0, rows, _ROWS):
        mean += flat[start : start + _ROWS].sum(axis=0, dtype=np.float64)
    mean /= rows * 255.0
    gram = np.zeros((flat.shape[1],) * 2)
    for start in range(0, rows, _ROWS):
        block = flat[start : start + _ROWS].astype(np.float64) / 255.0 - mean
        gram += block.T @ block
    _, vectors = np.linalg.eigh(gram)
    return mean, vectors[:, ::-1].T


class PixelEncoder:
    """Flattened pixels / 255; with ``pca=n``, the projection on the top n principal components of the training
    images (fitted on the clean training split only)."""

    def __init__(self, pca: int | None = None) -> None:
        if pca is not None and (isinstance(pca, bool) or pca < 1):
            raise EncoderError(f"pixels: pca must be a positive integer, got {pca!r}")
        self.pca = pca
        self.name = "pixels" if pca is None else f"pixels:pca{pca}"
        self._mean: np.ndarray | None = None
        self._components: np.ndarray | None = None
        self._fit_digest = ""

    def fit(self, train: ImageSet) -> PixelEncoder:
        if self.pca is not None:
            flat = train.images.reshape(len(train), -1)
            if self.pca > min(flat.shape):
                raise EncoderError(
                    f"pixels: pca={self.pca} exceeds the {min(flat.shape)} components the data allows"
                )
            if flat.size <= SVD_MAX_VALUES or len(flat) < flat.shape[1]:
                x = flat.astype(np.float64) / 255.0
                self._mean = x.mean(axis=0)
                _, _, vt = np.linalg.svd(x - self._mean, full_matrices=False)
            else:
                self._mean, vt = _gram_axes(flat)
            signs = np.sign(vt[:, np.argmax(np.abs(vt), axis=1)].diagonal())  # deterministic component signs
            self._components = (vt[: self.pca] * signs[: self.pca, None]).T.astype(np.float32)
            self._fit_digest = digest(self._components)
        return self

    def encode(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float32) / 255.0
        if self.pca is None:
            return x
        if self._components is None:
            raise EncoderError("pixels: call fit(train) before encode() when pca is set")
        return (x - self._mean.astype(np.float32)) @ self._components

    def fingerprint(self) -> str:
        return digest(self.name, self._fit_digest)

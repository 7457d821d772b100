"""``pixels``: flattened pixels in [0, 1], optionally projected on the training set's top principal components."""

from __future__ import annotations

import numpy as np

from densify._gram import centred_gram
from densify._hash import digest
from densify.data import ImageSet
from densify.errors import EncoderError

#: above this many pixel values (rows x columns, rows >= columns) the axes come from the float64 Gram matrix
#: accumulated over blocks of rows instead of an SVD of a float64 copy (250,000 16x16 images: 3.1 GB peak)
SVD_MAX_VALUES = 1 << 24
#: above this many images, pca projections are computed block by block (rows are independent)
ENCODE_BLOCK = 1 << 16


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
            else:  # the Gram matrix's eigenvectors, largest first: the SVD's right singular vectors, to rounding
                self._mean, gram = centred_gram(flat, divide=255.0)
                vt = np.linalg.eigh(gram)[1][:, ::-1].T
            signs = np.sign(vt[:, np.argmax(np.abs(vt), axis=1)].diagonal())  # deterministic component signs
            self._components = (vt[: self.pca] * signs[: self.pca, None]).T.astype(np.float32)
            self._fit_digest = digest(self._components)
        return self

    def encode(self, images: np.ndarray) -> np.ndarray:
        if self.pca is None:
            return images.reshape(len(images), -1).astype(np.float32) / 255.0
        if self._components is None:
            raise EncoderError("pixels: call fit(train) before encode() when pca is set")
        if len(images) <= ENCODE_BLOCK:
            return self._project(images)
        # by blocks of rows: two float32 copies of every pixel (512 MB at 250,000 16 x 16 images) are not needed
        out = np.empty((len(images), self.pca), np.float32)
        for start in range(0, len(images), ENCODE_BLOCK):
            out[start : start + ENCODE_BLOCK] = self._project(images[start : start + ENCODE_BLOCK])
        return out

    def _project(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float32) / 255.0
        return (x - self._mean.astype(np.float32)) @ self._components

    def fingerprint(self) -> str:
        return digest(self.name, self._fit_digest)

"""The encoder protocol. Shared helpers live below both ``embed`` and ``train``: ``densify._hash`` (digest) and
``densify._torch`` (batching, tensors, devices, threads); they are re-exported here for existing imports."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from densify._hash import digest
from densify._torch import BATCH, batches, device, to_tensor, torch_threads
from densify.data import ImageSet

__all__ = [
    "BATCH",
    "Classifier",
    "Encoder",
    "LearnsFromViews",
    "Stateful",
    "batches",
    "device",
    "digest",
    "to_tensor",
    "torch_threads",
]


@runtime_checkable
class Encoder(Protocol):
    """Maps uint8 images (N, H, W, C) to float32 embeddings (N, d).

    ``fit`` sees only the clean training split (never held-out images); ``fingerprint`` changes whenever anything
    that changes the embeddings changes, and keys the embedding cache.
    """

    name: str

    def fit(self, train: ImageSet) -> Encoder: ...

    def encode(self, images: np.ndarray) -> np.ndarray: ...

    def fingerprint(self) -> str: ...


@runtime_checkable
class Classifier(Protocol):
    """An encoder fitted to the training labels: it also predicts classes (label consistency uses them)."""

    def encode_and_predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class Stateful(Protocol):
    """An encoder whose fitted state can be cached and restored instead of fitting again."""

    def state(self) -> dict[str, np.ndarray]: ...

    def load_state(self, state: dict[str, np.ndarray], train: ImageSet) -> Encoder: ...


@runtime_checkable
class LearnsFromViews(Protocol):
    """An encoder that is also trained on views of the audited recipes (``reference+views``) when
    ``wants_views`` is set; the estimator hands it the recipes with :meth:`see_views` before fitting."""

    wants_views: bool

    @property
    def views_seen(self) -> bool: ...

    def see_views(self, augmenters, descriptor: str) -> Encoder: ...

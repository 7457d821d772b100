"""The encoder protocol and the helpers every encoder shares (batching, tensors, devices, threads)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from densify.data import ImageSet

BATCH = 512


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


def digest(*parts: object) -> str:
    """A short stable hex digest of ``parts`` (arrays by their bytes, everything else by repr)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype, part.shape)).encode())
            h.update(np.ascontiguousarray(part).data)
        else:
            h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()[:24]


def batches(images: np.ndarray, size: int = BATCH) -> Iterator[np.ndarray]:
    for start in range(0, len(images), size):
        yield images[start : start + size]


def torch_threads() -> int:
    """Threads for torch: ``DENSIFY_TORCH_THREADS``, else every core (measured on the 2-vCPU CI machine by
    benchmarks/bench_coverage.py: the reference CNN trains about 2x faster with 2 threads than with 1)."""
    return int(os.environ.get("DENSIFY_TORCH_THREADS", 0)) or (os.cpu_count() or 1)


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_tensor(images: np.ndarray, dev):
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1] on ``dev``."""
    import torch

    x = np.divide(images.transpose(0, 3, 1, 2), np.float32(255), dtype=np.float32)  # a new, writable array
    return torch.from_numpy(x).to(dev)

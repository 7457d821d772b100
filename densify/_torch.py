"""torch helpers shared by the encoders and the trainer: batching, tensors, devices and thread counts.

torch is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

BATCH = 512


def batches(images: np.ndarray, size: int = BATCH) -> Iterator[np.ndarray]:
    for start in range(0, len(images), size):
        yield images[start : start + size]


def torch_threads() -> int:
    """Threads for torch: ``DENSIFY_TORCH_THREADS``, else every core (measured on the 2-vCPU CI machine by
    benchmarks/bench_coverage.py: the reference CNN trains about 2x faster with 2 threads than with 1); under
    ``torchrun``, each local process's share of the cores."""
    from densify._dist import local_cores

    return int(os.environ.get("DENSIFY_TORCH_THREADS", 0)) or local_cores()


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_tensor(images: np.ndarray, dev):
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1] on ``dev``."""
    import torch

    x = np.divide(images.transpose(0, 3, 1, 2), np.float32(255), dtype=np.float32)  # a new, writable array
    return torch.from_numpy(x).to(dev)

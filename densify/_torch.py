"""torch helpers shared by the encoders and the trainer: batching, tensors, devices and thread counts.

torch is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

BATCH = 512


def batches(images: np.ndarray, size: int = BATCH) -> Iterator[np.ndarray]:
    for start in range(0, len(images), size):
        yield images[start : start + size]


def stack_rows(n: int, parts: Iterable[np.ndarray], dtype=np.float32) -> np.ndarray:
    """The rows of ``parts`` (arrays of consecutive rows, in order, n in all) in one (n, ...) ``dtype`` array,
    written in place as each part comes: no list of every batch's output beside its concatenation, so an
    encoder's peak memory is its output once, not two or three times (250,000 x 512 random-cnn features: 0.5 GB)."""
    out, start = None, 0
    for part in parts:
        if out is None:
            out = np.empty((n, *part.shape[1:]), dtype)
        out[start : start + len(part)] = part
        start += len(part)
    if out is None:
        raise ValueError("stack_rows: nothing to stack")  # as np.concatenate of no arrays
    if start != n:
        raise ValueError(f"stack_rows: {start} rows for {n}")
    return out


def env_count(name: str) -> int | None:
    """The positive whole number environment variable ``name`` holds (a thread count), or None when it is unset
    or empty; any other value is a one-line DensifyError naming the variable and the value (``int()`` raised a
    traceback, and a negative count reached faiss)."""
    from densify.errors import DensifyError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise DensifyError(f"{name} must be a positive whole number, got {raw!r}")
    return int(raw)


def torch_threads() -> int:
    """Threads for torch: ``DENSIFY_TORCH_THREADS``, else every core (measured on the 2-vCPU CI machine by
    benchmarks/bench_coverage.py: the reference CNN trains about 2x faster with 2 threads than with 1); under
    ``torchrun``, each local process's share of the cores."""
    from densify._dist import local_cores

    return env_count("DENSIFY_TORCH_THREADS") or local_cores()


def train_threads() -> int:
    """Threads of one training run: ``DENSIFY_TORCH_THREADS``, else 1 in a single process (the runs of a
    comparison go in parallel processes instead, :mod:`densify.train._jobs`: measured faster than threads for
    densify's small models, and a run's result then does not depend on the core count), else the rank's share of
    the cores under ``torchrun``."""
    from densify._dist import local_cores, world_size

    return env_count("DENSIFY_TORCH_THREADS") or (1 if world_size() == 1 else local_cores())


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: tensor layouts DENSIFY_MEMORY_FORMAT may name; channels_last (NHWC in memory) is the default: measured by
#: ``benchmarks/bench_train.py --layout``, small-cnn trains faster in it on CPU (oneDNN's convolutions)
MEMORY_FORMATS = ("channels_last", "contiguous")


def memory_format():
    """The torch memory format of the trainer's images and convolution weights in a single process:
    ``DENSIFY_MEMORY_FORMAT`` (``channels_last``, the default, or ``contiguous``, torch's own NCHW). The encoders
    and ``torchrun`` ranks stay NCHW (not measured there since a test abort was wrongly blamed on the layout). Raises DensifyError naming the variable on another value."""
    import torch

    from densify.errors import DensifyError

    name = os.environ.get("DENSIFY_MEMORY_FORMAT", "channels_last")
    if name not in MEMORY_FORMATS:
        raise DensifyError(f"DENSIFY_MEMORY_FORMAT must be one of {', '.join(MEMORY_FORMATS)}, got {name!r}")
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


def to_tensor(images: np.ndarray, dev, layout=None):
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1] on ``dev``; ``layout`` a torch memory format (None:
    torch's own NCHW; ``torch.channels_last`` is the NHWC array itself, viewed as NCHW, without a copy)."""
    import torch

    x = np.divide(images, np.float32(255), dtype=np.float32)  # a new, writable array
    return torch.from_numpy(x).permute(0, 3, 1, 2).to(dev, memory_format=layout or torch.contiguous_format)

"""Shared fixtures: fixed seeds for every test, and writers of small datasets in every supported format."""

from __future__ import annotations

import gzip
import pickle
import random
import struct
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _fixed_seeds():
    random.seed(0)
    np.random.seed(0)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(0)
    yield


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write a uint8 array as an IDX file (gzipped when ``compress``)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload, compresslevel=1))
    else:
        path.write_bytes(payload)
    return path


def make_images(n: int, h: int = 8, w: int = 8, c: int | None = None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n, h, w) if c is None else (n, h, w, c)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def balanced_labels(n: int, n_classes: int) -> np.ndarray:
    return np.arange(n) % n_classes


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    """A Debian-style IDX folder: 60 train and 20 test 8×8 images, 10 classes, gzipped."""
    root = tmp_path / "mnist"
    root.mkdir()
    write_idx(root / "train-images-idx3-ubyte", make_images(60))
    write_idx(root / "train-labels-idx1-ubyte", balanced_labels(60, 10).astype(np.uint8))
    write_idx(root / "t10k-images-idx3-ubyte", make_images(20, seed=1))
    write_idx(root / "t10k-labels-idx1-ubyte", balanced_labels(20, 10).astype(np.uint8))
    return root


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array).save(path)


@pytest.fixture
def folder_tree(tmp_path: Path) -> Path:
    """An ImageFolder tree with train/ and test/: 3 classes of 6×6 RGB PNGs (4 train, 2 test each)."""
    root = tmp_path / "imgs"
    images = make_images(18, 6, 6, 3)
    k = 0
    for cls in ("cat", "dog", "fox"):
        for split, count in (("train", 4), ("test", 2)):
            for i in range(count):
                write_png(root / split / cls / f"{i}.png", images[k])
                k += 1
    return root


def write_cifar10(root: Path, per_batch: int = 10) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in np.arange(per_batch) % 10],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return folder


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path

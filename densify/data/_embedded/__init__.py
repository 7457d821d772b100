"""Datasets shipped inside the package (see LICENSE-fashion-mnist.txt beside the files)."""

from __future__ import annotations

from pathlib import Path

FASHION_MINI = "fashion-mini.npz"


def fashion_mini_path() -> Path:
    """Path of the embedded Fashion-MNIST subset (10,000 train and 2,000 held-out images, class-balanced)."""
    return Path(__file__).with_name(FASHION_MINI)

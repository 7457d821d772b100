"""Build densify's embedded ``fashion-mini`` dataset from Debian's Fashion-MNIST files.

    apt-get install dataset-fashion-mnist
    python scripts/build_fashion_mini.py [--source /usr/share/datasets/fashion-mnist]

Writes densify/data/_embedded/fashion-mini.npz: 1,000 training images per class (from the training set) and
200 held-out images per class (from the test set), chosen by a seeded stratified draw, so the file is
the same arrays from the same source files and seed.
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

import numpy as np

from densify.data._embedded import fashion_mini_path
from densify.data._idx import CLASS_NAMES, load_idx_split
from densify.data._subset import stratified_indices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--heldout-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=fashion_mini_path())
    args = parser.parse_args()

    arrays: dict[str, np.ndarray] = {"classes": np.array(CLASS_NAMES["fashion"])}
    for split, key, per_class in (
        ("train", "train", args.train_per_class),
        ("heldout", "test", args.heldout_per_class),
    ):
        images, labels = load_idx_split(args.source, split)
        keep = stratified_indices(labels, per_class * 10, args.seed)
        arrays[f"x_{key}"], arrays[f"y_{key}"] = images[keep, ..., 0], labels[keep].astype(np.uint8)
        print(f"{split}: {len(keep)} images, per class {np.bincount(labels[keep]).tolist()}")

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()

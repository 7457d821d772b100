"""Views per second of the coverage estimator's view generation with 0, 1 and 2 DataLoader workers.

    python benchmarks/bench_views.py [--n 4000] [--views 2] [--recipes affine-light,randaugment] [--repeats 3]

Times ``densify.estimate.view_batches`` (what ``estimate_coverage(workers=N)`` and ``--workers N`` use) on
fashion-mini (28x28x1) and on the same images as 32x32x3, best of ``--repeats``, ratios against 0 workers measured in
the same run; also checks that every worker count yields the same views. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--recipes", default="affine-light,randaugment")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="0,1,2")
    args = parser.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from densify.data import load_data
    from densify.data._imageset import ImageSet
    from densify.estimate import view_batches
    from densify.loader import load_recipe

    gray = load_data("fashion-mini", train_size=args.n, seed=0).train
    rgb = ImageSet(np.repeat(np.pad(gray.images, ((0, 0), (2, 2), (2, 2), (0, 0))), 3, axis=3), gray.labels,
                   gray.classes, "fashion-mini-rgb32")  # fmt: skip
    print(
        f"{'recipe':14s} {'input':9s} " + " ".join(f"{w + ' workers':>16s}" for w in args.workers.split(","))
    )
    for recipe in args.recipes.split(","):
        augmenter = load_recipe(recipe, seed=0, output="numpy")
        list(view_batches(gray.subset(np.arange(64)), augmenter, 1))  # warm up (imports, first calls)
        for images in (gray, rgb):
            rates, first = [], None
            for workers in (int(w) for w in args.workers.split(",")):
                best = float("inf")
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    out = np.concatenate(list(view_batches(images, augmenter, args.views, workers=workers)))
                    best = min(best, time.perf_counter() - start)
                if first is None:
                    first = out
                assert np.array_equal(first, out), f"{recipe}: views differ with {workers} workers"
                rates.append(len(out) / best)
            shape = "x".join(map(str, images.shape))
            cells = [f"{r:9,.0f} ({r / rates[0]:.2f}x)" for r in rates]
            print(f"{recipe:14s} {shape:9s} " + " ".join(f"{c:>16s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()

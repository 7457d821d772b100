"""Throughput of every recipe through densify vs the same albumentations Compose without densify.

    python benchmarks/bench_recipes.py [--n 2000] [--repeats 3] [--recipes flip,affine-light]

For each recipe and input (28×28×1 from fashion-mini, 32×32×3 synthetic colour images), in one run, interleaved,
best of ``--repeats``:
  direct  - the recipe's ``albumentations.Compose`` called in a Python loop (numpy out, no DataLoader);
  plain   - a hand-written Dataset calling that Compose, converted to tensors, through a DataLoader;
  densify - ``DensifiedDataset`` (per-sample seeding; a batch fetched and converted in one ``__getitems__`` call)
            through the same DataLoader;
  per item - the same dataset item by item (``__getitem__`` only, each image converted on its own), the baseline
            of the batch path.
Ratios are images/s of densify over plain (densify's overhead inside a DataLoader) and over direct.
torch runs single-threaded and the DataLoader uses no workers: this machine's 2 vCPUs behave like one core.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from densify.data import ImageSet, load_data
from densify.loader import DensifiedDataset, convert_output, load_recipe
from densify.recipes import builtin_names


class Plain(Dataset):
    def __init__(self, images: ImageSet, compose):
        self.images, self.labels, self.compose = images.images, images.labels, compose

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return convert_output(self.compose(image=self.images[i])["image"], "tensor"), int(self.labels[i])


class PerItem(Dataset):
    """A dataset seen through ``__getitem__`` only (the DataLoader then fetches a batch item by item)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i]


def _colour_images(n: int) -> ImageSet:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    base = np.stack([(yy * 4 + xx * 2) % 256, (xx * 6) % 256, (yy * 7) % 256], axis=-1)
    shift = rng.integers(0, 256, (n, 1, 1, 3))
    noise = rng.integers(0, 40, (n, 32, 32, 3))
    images = ((base[None] + shift + noise) % 256).astype(np.uint8)
    return ImageSet(images, np.arange(n) % 10, tuple("abcdefghij"), "synthetic-rgb32/train")


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(recipe: str, images: ImageSet, repeats: int) -> dict[str, float]:
    augmenter = load_recipe(recipe, seed=0, output="numpy")
    compose = load_recipe(recipe, seed=0, output="numpy").compose  # a separate, identical Compose
    plain = DataLoader(Plain(images, compose), batch_size=256, num_workers=0)
    ours = DataLoader(DensifiedDataset(images, augmenter, output="tensor"), batch_size=256, num_workers=0)
    per_item = DataLoader(PerItem(DensifiedDataset(images, augmenter, output="tensor")), batch_size=256)
    arrays = images.images

    def direct():
        for image in arrays:
            compose(image=image)

    def consume(loader):
        return lambda: [None for _ in loader]

    best = {"direct": np.inf, "plain": np.inf, "densify": np.inf, "per item": np.inf}
    for _ in range(repeats):  # interleaved, so drifts of the machine hit every variant alike
        best["direct"] = min(best["direct"], _time(direct))
        best["plain"] = min(best["plain"], _time(consume(plain)))
        best["densify"] = min(best["densify"], _time(consume(ours)))
        best["per item"] = min(best["per item"], _time(consume(per_item)))
    return {k: len(arrays) / v for k, v in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recipes", default=",".join(builtin_names()))
    args = parser.parse_args()
    torch.set_num_threads(1)
    inputs = {
        "28x28x1": load_data("fashion-mini", train_size=args.n).train,
        "32x32x3": _colour_images(args.n),
    }
    print(
        "| recipe | input | direct img/s | plain DataLoader img/s | densify img/s | densify / plain | "
        "densify / direct | per item / plain |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios, item_ratios = [], []
    for recipe in args.recipes.split(","):
        for label, images in inputs.items():
            r = bench(recipe, images, args.repeats)
            ratios.append(r["densify"] / r["plain"])
            item_ratios.append(r["per item"] / r["plain"])
            print(
                f"| {recipe} | {label} | {r['direct']:,.0f} | {r['plain']:,.0f} | {r['densify']:,.0f} | "
                f"{r['densify'] / r['plain']:.2f} | {r['densify'] / r['direct']:.2f} | "
                f"{r['per item'] / r['plain']:.2f} |",
                flush=True,
            )
    print(f"\nmedian densify / plain: {np.median(ratios):.2f}; min {min(ratios):.2f}; max {max(ratios):.2f}")
    print(f"median per item / plain: {np.median(item_ratios):.2f}")


if __name__ == "__main__":
    main()

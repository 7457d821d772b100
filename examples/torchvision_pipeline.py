"""Add a densify recipe to an existing torchvision pipeline: one line, ``transform=densify.load_recipe(...)``.

    python examples/torchvision_pipeline.py [--root DIR] [--recipe affine-light] [--batches 5]

With ``--root`` pointing at a torchvision FashionMNIST root (``DIR/FashionMNIST/raw/...``), it uses
``torchvision.datasets.FashionMNIST`` itself; otherwise it uses a FashionMNIST-style dataset (PIL images and
int labels) over densify's embedded fashion-mini subset, so the example runs anywhere without downloads.
"""

from __future__ import annotations

import argparse

from PIL import Image
from torch.utils.data import DataLoader, Dataset

import densify


class EmbeddedFashionMNIST(Dataset):
    """Behaves like torchvision's FashionMNIST: items are (PIL image, int), ``transform`` applies to the image."""

    def __init__(self, transform=None):
        self.data = densify.load_data("fashion-mini").train
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        image = Image.fromarray(self.data.images[index, ..., 0], mode="L")
        return (self.transform(image) if self.transform else image), int(self.data.labels[index])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="torchvision FashionMNIST root folder (optional)")
    parser.add_argument("--recipe", default="affine-light")
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()

    transform = densify.load_recipe(
        args.recipe, seed=0
    )  # <- the one line densify adds; returns float tensors
    if args.root:
        from torchvision.datasets import FashionMNIST

        train = FashionMNIST(args.root, train=True, transform=transform, download=False)
    else:
        train = EmbeddedFashionMNIST(transform=transform)

    loader = DataLoader(train, batch_size=64, shuffle=True, num_workers=2)
    for i, (images, labels) in enumerate(loader, start=1):
        print(f"batch {i}: images {tuple(images.shape)} {images.dtype}, labels {labels[:8].tolist()}...")
        if i == args.batches:
            break


if __name__ == "__main__":
    main()

"""Classifiers the trainer (and the reference encoder) build: by name, for grayscale or colour images of any size.

Imports torch at module level: import this module lazily (the CLI and ``densify.train`` do).
"""

from __future__ import annotations

import torch
from torch import nn

from densify.errors import TrainError

MODELS = ("small-cnn", "resnet18-small", "torchvision:NAME")
DEFAULT_MODEL = "small-cnn"


def small_cnn(in_channels: int, n_classes: int, width: int = 16, embed_dim: int = 128):
    """A fast CNN for small images of any size: four conv-BN-ReLU stages with 2×2 max pooling between them
    (widths w, 2w, 4w, 8w), global average pooling, an embedding layer and a linear head. About 2.6 MFLOPs per
    28×28 image at w = 16. Returns (features: images -> embed_dim, head: embed_dim -> n_classes)."""

    def stage(cin: int, cout: int) -> list:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    w = width
    features = nn.Sequential(
        *stage(in_channels, w), nn.MaxPool2d(2),
        *stage(w, 2 * w), nn.MaxPool2d(2),
        *stage(2 * w, 4 * w), nn.MaxPool2d(2),
        *stage(4 * w, 8 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8 * w, embed_dim), nn.ReLU(inplace=True),
    )  # fmt: skip
    return features, nn.Linear(embed_dim, n_classes)


def check_model_name(name: str) -> None:
    """Raise :class:`TrainError` unless ``name`` is a model :func:`build_model` can build (nothing is built)."""
    if name in ("small-cnn", "resnet18-small"):
        return
    arch = name.removeprefix("torchvision:") if name.startswith("torchvision:") else None
    if arch:
        from torchvision import models

        if arch in models.list_models(module=models):
            return
        raise TrainError(f"unknown model '{name}': torchvision has no classifier '{arch}'")
    raise TrainError(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")


def build_model(name: str, in_channels: int, n_classes: int):
    """A classifier ``images (N, C, H, W) in [0, 1] -> logits (N, n_classes)``.

    Names: ``small-cnn`` (default; trains on 2 CPU cores in minutes), ``resnet18-small`` (torchvision's ResNet-18
    with a 3×3 stride-1 stem and no max-pool, the usual adaptation to 32×32 images), ``torchvision:NAME`` (any
    torchvision classifier, randomly initialised, for larger images).
    """
    if name == "small-cnn":
        features, head = small_cnn(in_channels, n_classes)
        return nn.Sequential(features, head)
    if name == "resnet18-small" or name.startswith("torchvision:"):
        from torchvision import models

        arch = "resnet18" if name == "resnet18-small" else name.removeprefix("torchvision:")
        try:
            net = models.get_model(arch, weights=None, num_classes=n_classes)
        except (ValueError, TypeError) as exc:
            raise TrainError(f"unknown model '{name}': {exc}") from exc
        if name == "resnet18-small":
            net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
            return net
        return nn.Sequential(ToRGB(), net) if in_channels == 1 else net
    raise TrainError(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")


class ToRGB(nn.Module):
    """Repeats a grayscale channel three times (for torchvision models that expect RGB)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1)

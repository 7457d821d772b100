"""The small convolutional network of the ``reference`` encoder."""

from __future__ import annotations


def small_cnn(in_channels: int, n_classes: int, width: int = 16, embed_dim: int = 128):
    """A fast CNN for small images of any size: four conv-BN-ReLU stages with 2×2 max pooling between them
    (widths w, 2w, 4w, 8w), global average pooling, an embedding layer and a linear head. About 2.6 MFLOPs per
    28×28 image at w = 16. Returns (features: images -> embed_dim, head: embed_dim -> n_classes)."""
    from torch import nn

    def stage(cin: int, cout: int) -> list:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    w = width
    features = nn.Sequential(
        *stage(in_channels, w),
        nn.MaxPool2d(2),
        *stage(w, 2 * w),
        nn.MaxPool2d(2),
        *stage(2 * w, 4 * w),
        nn.MaxPool2d(2),
        *stage(4 * w, 8 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8 * w, embed_dim),
        nn.ReLU(inplace=True),
    )
    return features, nn.Linear(embed_dim, n_classes)

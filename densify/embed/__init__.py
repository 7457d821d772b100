"""Encoders: one protocol (``fit(train) -> self``, ``encode(images) -> float32 (N, d)``) and a factory by name."""

from __future__ import annotations

from pathlib import Path

from densify._hash import digest
from densify.embed._base import Encoder
from densify.errors import EncoderError

ENCODERS = ("reference", "reference+views", "random-cnn", "pixels", "torchvision:NAME")
DEFAULT_ENCODER = "reference+views"


def get_encoder(spec: str = DEFAULT_ENCODER, *, seed: int = 0, weights: str | Path | None = None) -> Encoder:
    """An encoder from its name.

    Grammar: ``reference`` | ``reference+views`` (also trained on views of the audited recipes; estimate_coverage
    supplies them) | ``random-cnn`` | ``pixels`` | ``pixels:pcaN`` (N principal components) |
    ``torchvision:MODEL`` (needs ``weights``, a local state dict). Unknown names raise :class:`EncoderError`.
    """
    from densify.embed._cnn import RandomCNNEncoder, ReferenceEncoder
    from densify.embed._pixels import PixelEncoder
    from densify.embed._torchvision import TorchvisionEncoder

    if weights is not None and not spec.startswith("torchvision:"):
        raise EncoderError(f"weights apply to torchvision:NAME encoders only, not to '{spec}'")
    if spec == "reference":
        return ReferenceEncoder(seed=seed)
    if spec == "reference+views":
        encoder = ReferenceEncoder(seed=seed)
        encoder.name = "reference+views"  # its views are supplied by estimate_coverage (see_views)
        encoder.wants_views = True
        return encoder
    if spec == "random-cnn":
        return RandomCNNEncoder(seed=seed)
    if spec == "pixels":
        return PixelEncoder()
    if spec.startswith("pixels:pca"):
        try:
            return PixelEncoder(pca=int(spec.removeprefix("pixels:pca")))
        except ValueError:
            raise EncoderError(
                f"unknown encoder '{spec}'; use pixels:pcaN with an integer N, e.g. pixels:pca50"
            ) from None
    if spec.startswith("torchvision:") and spec.removeprefix("torchvision:"):
        return TorchvisionEncoder(spec.removeprefix("torchvision:"), weights)
    raise EncoderError(f"unknown encoder '{spec}'; choose one of {', '.join(ENCODERS)} (or pixels:pcaN)")


__all__ = ["DEFAULT_ENCODER", "ENCODERS", "Encoder", "digest", "get_encoder"]

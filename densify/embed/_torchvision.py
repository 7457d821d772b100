"""``torchvision:NAME``: a torchvision classifier's penultimate features, from a local weights file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from densify._hash import digest
from densify._torch import batches, device, torch_threads
from densify.data import ImageSet
from densify.errors import EncoderError


class TorchvisionEncoder:
    """Penultimate features of ``torchvision.models.NAME`` with weights loaded from ``weights`` (a state dict saved
    by ``torch.save(model.state_dict(), path)``; nothing is downloaded), L2-normalised.

    Images get the model's own preprocessing (its default weights' ``transforms()``: resize, centre crop,
    ImageNet normalisation); grayscale images are repeated to three channels.
    """

    def __init__(self, model: str, weights: str | Path | None) -> None:
        self.model = model
        self.name = f"torchvision:{model}"
        if weights is None:
            raise EncoderError(
                f"{self.name}: set weights to a local state-dict file; densify downloads nothing"
            )
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise EncoderError(f"{self.weights}: weights file not found (encoder {self.name})")
        self._net = None
        self._preprocess = None
        self._weights_digest = ""

    def fit(self, train: ImageSet) -> TorchvisionEncoder:
        import torch
        from torch import nn
        from torchvision import models

        try:
            net = models.get_model(self.model, weights=None)
        except ValueError as exc:
            raise EncoderError(f"{self.name}: unknown torchvision model '{self.model}' ({exc})") from exc
        try:
            state = torch.load(self.weights, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise EncoderError(f"{self.weights}: cannot load weights ({str(exc).splitlines()[0]})") from exc
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise EncoderError(f"{self.weights}: expected a state dict, got {type(state).__name__}")
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()
            raise EncoderError(
                f"{self.weights}: weights do not match {self.model}: {' '.join(first[1:3]).strip()}"
            ) from exc
        for attr in ("fc", "classifier", "head", "heads"):
            if hasattr(net, attr):
                setattr(net, attr, nn.Identity())
                break
        self._net = net.eval().to(device())
        self._preprocess = models.get_model_weights(self.model).DEFAULT.transforms()
        self._weights_digest = digest(self.weights.read_bytes())
        return self

    def encode(self, images: np.ndarray) -> np.ndarray:
        import torch

        if self._net is None:
            raise EncoderError(f"{self.name}: call fit(train) before encode()")
        torch.set_num_threads(torch_threads())
        dev = device()
        out = []
        with torch.inference_mode():
            for b in batches(images, 64):
                x = torch.from_numpy(b.transpose(0, 3, 1, 2).copy())  # uint8; the preprocessing converts it
                if x.shape[1] == 1:
                    x = x.repeat(1, 3, 1, 1)
                feats = self._net(self._preprocess(x).to(dev)).flatten(1)
                out.append((feats / feats.norm(dim=1, keepdim=True).clamp_min(1e-12)).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def fingerprint(self) -> str:
        return digest(self.name, self._weights_digest)

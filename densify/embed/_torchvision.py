"""``torchvision:NAME``: a torchvision classifier's penultimate features, with weights from torch's hub cache
(by name) or a local file; never downloaded."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from densify._hash import digest
from densify._torch import batches, device, stack_rows, torch_threads
from densify.data import ImageSet
from densify.errors import EncoderError

#: a torchvision weights enum member, alone (``DEFAULT``, ``IMAGENET1K_V1``) or qualified (``ResNet18_Weights.DEFAULT``)
_ENUM_NAME = re.compile(r"^(?:[A-Za-z0-9_]+_Weights\.)?[A-Z][A-Z0-9_]*$")


def hub_checkpoint(model: str, name: str) -> tuple[Path, str]:
    """(the file torch's hub cache holds for weights ``name`` of torchvision model ``model``, the weights'
    qualified name). The file is where ``torchvision.models.get_model(model, weights=name)`` would store and
    read it: ``$TORCH_HOME/hub/checkpoints/`` (``torch.hub.get_dir()``), named after the download URL.

    Raises:
        EncoderError: unknown model, or no such weights for it (the message lists the ones it has).
    """
    import torch
    from torchvision import models

    try:
        enum = models.get_model_weights(model)
    except ValueError as exc:
        raise EncoderError(f"torchvision:{model}: unknown torchvision model '{model}' ({exc})") from None
    prefix, _, member = name.rpartition(".")
    if prefix and prefix != enum.__name__:
        raise EncoderError(
            f"weights {name}: not weights of torchvision:{model} (those are {enum.__name__}.*)"
        )
    try:
        weights = enum[member]
    except KeyError:
        raise EncoderError(
            f"weights {name!r}: torchvision:{model} has {', '.join(enum.__members__)}"
        ) from None
    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename, f"{enum.__name__}.{weights.name}"


def _check_model(model: str) -> None:
    """EncoderError unless torchvision has a model called ``model`` (with the closest names, if any)."""
    import difflib

    from torchvision import models

    known = models.list_models()
    if model in known:
        return
    close = difflib.get_close_matches(model, known, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise EncoderError(
        f"torchvision:{model}: unknown torchvision model '{model}'{hint} (torchvision.models.list_models() "
        "names them all)"
    )


class TorchvisionEncoder:
    """Penultimate features of ``torchvision.models.NAME``, L2-normalised.

    ``weights`` is a weights name the way torchvision spells it (``DEFAULT``, ``IMAGENET1K_V1`` or
    ``ResNet18_Weights.IMAGENET1K_V1``), read from torch's own hub cache (``$TORCH_HOME/hub/checkpoints``, where
    ``torchvision.models.get_model(NAME, weights=...)`` puts it), or a local state-dict file saved by
    ``torch.save(model.state_dict(), path)``. densify never downloads: a missing cache file is a one-line error
    naming the file and the command that fetches it.

    Images get the weights' own preprocessing (``transforms()``: resize, centre crop, ImageNet normalisation; the
    model's default weights' for a local file); grayscale images are repeated to three channels.
    """

    def __init__(self, model: str, weights: str | Path | None) -> None:
        self.model = model
        self.name = f"torchvision:{model}"
        _check_model(model)  # an unknown name first: asking for its weights would mislead
        if weights is None:
            raise EncoderError(
                f"{self.name}: set weights to a torchvision weights name (e.g. DEFAULT, read from torch's hub "
                "cache) or a local state-dict file; densify downloads nothing"
            )
        text = str(weights)
        self.weights_name: str | None = None
        if not Path(text).is_file() and _ENUM_NAME.match(text):
            path, self.weights_name = hub_checkpoint(model, text)
            if not path.is_file():
                raise EncoderError(
                    f"{path}: weights {self.weights_name} are not in torch's hub cache (TORCH_HOME); densify "
                    f'never downloads: fetch them with python -c "import torchvision; '
                    f"torchvision.models.get_model('{model}', weights='{self.weights_name}')\", or pass a "
                    "local state-dict file"
                )
            self.weights = path
        else:
            self.weights = Path(text)
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
        enum = models.get_model_weights(self.model)
        chosen = enum[self.weights_name.rpartition(".")[2]] if self.weights_name else enum.DEFAULT
        self._preprocess = chosen.transforms()
        self._weights_digest = digest(self.weights.read_bytes())
        return self

    def encode(self, images: np.ndarray) -> np.ndarray:
        import torch

        if self._net is None:
            raise EncoderError(f"{self.name}: call fit(train) before encode()")
        torch.set_num_threads(torch_threads())
        dev = device()

        def embedded():
            for b in batches(images, 64):
                x = torch.from_numpy(b.transpose(0, 3, 1, 2).copy())  # uint8; the preprocessing converts it
                if x.shape[1] == 1:
                    x = x.repeat(1, 3, 1, 1)
                feats = self._net(self._preprocess(x).to(dev)).flatten(1)
                yield (feats / feats.norm(dim=1, keepdim=True).clamp_min(1e-12)).cpu().numpy()

        with torch.inference_mode():
            return stack_rows(len(images), embedded())

    def fingerprint(self) -> str:
        return digest(self.name, self._weights_digest)

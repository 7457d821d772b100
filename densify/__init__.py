"""densify: which augmentations actually help your data, and why.

The public API is exactly ``__all__``. Names load lazily, so ``import densify`` (and ``densify --help``) stay
fast: numpy, torch, albumentations and matplotlib are imported only when something that needs them is used.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from densify._version import __version__

# albumentations contacts the network on import unless told not to; densify never uses the network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

_LAZY = {
    "DataError": "densify.errors",
    "DataSplits": "densify.data",
    "DensifyError": "densify.errors",
    "ImageSet": "densify.data",
    "SpecError": "densify.errors",
    "load_data": "densify.data",
    "parse_spec": "densify.data",
    "stratified_subset": "densify.data",
}

__all__ = [
    "DataError",
    "DataSplits",
    "DensifyError",
    "ImageSet",
    "SpecError",
    "__version__",
    "load_data",
    "parse_spec",
    "stratified_subset",
]

if TYPE_CHECKING:
    from densify.data import DataSplits, ImageSet, load_data, parse_spec, stratified_subset
    from densify.errors import DataError, DensifyError, SpecError


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'densify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

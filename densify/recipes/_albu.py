"""The only place densify touches albumentations' registry: which transforms a recipe may name, and building them.

Transforms are resolved by class name against albumentations' registry of serializable transforms; there is no
import by dotted path, no ``Lambda`` and nothing that needs targets other than the image (boxes, masks, metadata)
or reads files (reference images).
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from functools import cache
from typing import Any

from densify.errors import RecipeError

# Registered transforms a recipe may not use, and why.
DENIED = {
    "Lambda": "runs arbitrary code",
    "ToTensorV2": "densify converts outputs itself (output='tensor')",
    "TemplateTransform": "needs template images",
    "FDA": "reads reference images",
    "HistogramMatching": "reads reference images",
    "PixelDistributionAdaptation": "reads reference images",
    "OverlayElements": "needs overlay metadata",
    "Mosaic": "needs mosaic metadata",
    "TextImage": "needs text metadata",
    "ConstrainedCoarseDropout": "needs masks or boxes",
    "MaskDropout": "needs a mask",
    "CropNonEmptyMaskIfExists": "needs a mask",
    "RandomSizedBBoxSafeCrop": "needs boxes",
    "BBoxSafeRandomCrop": "needs boxes",
    "AtLeastOneBBoxRandomCrop": "needs boxes",
    "RandomCropNearBBox": "needs boxes",
    "ToFloat": "outputs float images; densify's views stay uint8 and its loader scales them to [0, 1]",
    "FromFloat": "expects float images; densify's images are uint8",
    "Normalize": "outputs float images; densify's views stay uint8 and its loader scales them to [0, 1]",
    "ToRGB": "changes the number of channels; convert the data instead (resize/channels options)",
}
#: base classes albumentations registers that are not transforms of their own
_BASES = ("BasicTransform", "DualTransform", "ImageOnlyTransform", "MaxSizeTransform")


def albumentations():
    """Import albumentations without its network update check."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    return A


@cache
def allowed_transforms() -> dict[str, type]:
    """{class name: class} of every albumentations transform a recipe may name."""
    albumentations()
    from albumentations.core.serialization import SERIALIZABLE_REGISTRY
    from albumentations.core.transforms_interface import BasicTransform, Transform3D

    return {
        name: cls
        for name, cls in sorted(SERIALIZABLE_REGISTRY.items())
        if isinstance(cls, type)
        and issubclass(cls, BasicTransform)
        and not issubclass(cls, Transform3D)  # volumes, not images
        and not inspect.isabstract(cls)
        and not name.startswith(("Base", "_"))
        and name not in _BASES
        and not name.endswith("3D")
        and "." not in name
        and name not in DENIED
    }


def _parameters(cls: type) -> list[str]:
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "strict")]


_PYDANTIC_ITEM = re.compile(
    r"^(\S[^\n]*)\n  ([^\n]*?)(?: \[type=[^,\]]*(?:, input_value=([^\n]*?), input_type=[^\]]*)?\])?$", re.M
)


def _format_validation(exc: Exception) -> tuple[str | None, str]:
    """(parameter name or None, message) from albumentations' validation error.

    albumentations re-raises pydantic's ValidationError as a ValueError holding its text, so the text is parsed:
    each item is a location line (``rotate.tuple[float, float]``) and an indented message line.
    """
    text = str(exc)
    items = _PYDANTIC_ITEM.findall(text)
    if not items:
        return None, text.splitlines()[0] if text else type(exc).__name__
    key = items[0][0].split(".")[0]
    same = [item for item in items if item[0].split(".")[0] == key]
    messages = list(dict.fromkeys(m.removeprefix("Value error, ") for _, m, _ in same))
    got = same[0][2]
    return (None if key == "__root__" else key), " or ".join(messages) + (f" (got {got})" if got else "")


def build_transform(name: str, params: dict[str, Any], where: str):
    """Instantiate transform ``name`` with ``params`` in albumentations' strict mode.

    Raises:
        RecipeError: unknown or denied transform, unknown parameter, or a value its schema rejects;
            the message starts with ``where`` (file and key path) and names what is allowed.
    """
    registry = allowed_transforms()
    cls = registry.get(name)
    if cls is None:
        if name in DENIED:
            raise RecipeError(f"{where}: transform '{name}' is not allowed in recipes ({DENIED[name]})")
        close = difflib.get_close_matches(name, registry, n=3)
        hint = (
            f"did you mean {', '.join(close)}?" if close else "run 'densify recipes transforms' for the list"
        )
        raise RecipeError(f"{where}: unknown albumentations transform '{name}'; {hint}")
    if "strict" in params:
        raise RecipeError(f"{where}.strict: densify always validates strictly; remove 'strict'")
    allowed = _parameters(cls)
    unknown = sorted(set(params) - set(allowed))
    if unknown:  # checked here: a few transforms (RandomRotate90, MedianBlur, ...) have no `strict` argument
        raise RecipeError(
            f"{where}.{unknown[0]}: unknown parameter of {name}; allowed: {', '.join(sorted(allowed))}"
        )
    strict = {"strict": True} if "strict" in inspect.signature(cls.__init__).parameters else {}
    try:
        return cls(**params, **strict)
    except (ValueError, TypeError) as exc:
        key, message = _format_validation(exc)
        raise RecipeError(f"{where}{'.' + key if key else ''}: {message}") from exc

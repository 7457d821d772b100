"""``strength``: one knob in [0, 1] that scales the magnitude of every transform that has one.

A recipe file states its magnitudes at strength 1. At strength ``s`` each magnitude parameter listed in
:data:`MAGNITUDES` moves toward its *neutral value* ``c`` (the value at which the transform does nothing):
``x -> c + s * (x - c)``, applied to scalars, to both ends of ranges and to ``{x: ..., y: ...}`` dicts.
Pixel counts and bit depths are rounded to integers; some parameters keep a floor so that ``s = 0`` stays valid. Probabilities
(``p``), flips and parameter-free transforms are not magnitudes and are never scaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from densify.errors import RecipeError


@dataclass(frozen=True)
class Magnitude:
    """How one parameter scales: toward ``neutral``, not below ``floor``; ``integer`` says when to round:
    "never", "always" (pixel counts, bit depths) or "as-given" (ints mean pixels, floats mean fractions)."""

    neutral: float
    floor: float | None = None
    integer: str = "never"


M0, M1 = Magnitude(0.0), Magnitude(1.0)
PX = Magnitude(0.0, integer="always")
HOLE = Magnitude(0.0, floor=0.01, integer="as-given")

#: transform name -> {parameter: how it scales}. A transform absent here is unaffected by strength.
MAGNITUDES: dict[str, dict[str, Magnitude]] = {
    "Affine": {"rotate": M0, "translate_percent": M0, "translate_px": PX, "shear": M0, "scale": M1},
    "Rotate": {"limit": M0},
    "SafeRotate": {"limit": M0},
    "Perspective": {"scale": M0},
    "ElasticTransform": {"alpha": M0},
    "GridDistortion": {"distort_limit": M0},
    "OpticalDistortion": {"distort_limit": M0},
    "RandomResizedCrop": {"scale": M1, "ratio": M1},
    "RandomBrightnessContrast": {"brightness_limit": M0, "contrast_limit": M0},
    "ColorJitter": {"brightness": M1, "contrast": M1, "saturation": M1, "hue": M0},
    "RandomGamma": {"gamma_limit": Magnitude(100.0)},
    "GaussianBlur": {"sigma_limit": Magnitude(0.0, floor=0.1)},
    "GaussNoise": {"std_range": M0},
    "CoarseDropout": {"hole_height_range": HOLE, "hole_width_range": HOLE},
    "Sharpen": {"alpha": M0},
    "Solarize": {"threshold_range": M1},
    "Posterize": {
        "num_bits": Magnitude(7.0, integer="always")
    },  # 7 bits: the most albumentations allows, nearly no-op
    "Downscale": {"scale_range": M1},
}


def _scale(value: Any, m: Magnitude, s: float) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return {k: _scale(v, m, s) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scale(v, m, s) for v in value)
    if isinstance(value, int | float):
        out = m.neutral + s * (value - m.neutral)
        if m.integer == "always" or (m.integer == "as-given" and isinstance(value, int)):
            out = round(out)
            if m.floor is not None:
                out = max(out, max(1, round(m.floor)))
            return int(out)
        return max(out, m.floor) if m.floor is not None else out
    return value


def scale_params(name: str, params: dict[str, Any], strength: float) -> dict[str, Any]:
    """``params`` of transform ``name`` with every magnitude scaled to ``strength`` (a new dict)."""
    if strength == 1.0 or name not in MAGNITUDES:
        return dict(params)
    table = MAGNITUDES[name]
    return {k: _scale(v, table[k], strength) if k in table else v for k, v in params.items()}


def check_strength(strength: float) -> float:
    if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0.0 <= strength <= 1.0:
        raise RecipeError(f"strength must be a number in [0, 1], got {strength!r}")
    return float(strength)

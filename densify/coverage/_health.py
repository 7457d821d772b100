"""Are a recipe's views still images of the input's kind? Pixel checks of the views themselves, not their embeddings.

An encoder can map a black or washed-out view anywhere, so coverage metrics alone cannot say that a recipe's views
are degenerate. A view is *degenerate* when, compared with its own source image:
- it is **constant** (every pixel equal) while the source is not;
- its contrast **collapsed**: its value range (max - min) is below 1/8 of the source's (``ToFloat`` cast back to
  uint8 gives 0/1 images; ``Normalize`` gives a few levels);
- it is **saturated**: the share of its pixels at the data's extremes (its minimum or maximum value) exceeds the
  source's by at least one half (over-exposed or blacked-out views);
- more than 1% of its pixels lie **outside the data's value range** (e.g. 0..1 masks pushed to 255).

A recipe's views are degenerate when at least half of them are (``DEGENERATE_SHARE``); the verdict never
recommends such a recipe.
"""

from __future__ import annotations

import numpy as np

#: share of degenerate views above which a recipe's views are called degenerate
DEGENERATE_SHARE = 0.5
COLLAPSE_RATIO = 1 / 8
SATURATION_STEP = 0.5
OUT_OF_RANGE = 0.01


def view_health(views, sources, value_range: tuple[float, float]) -> dict[str, float | int]:
    """Shares of degenerate views (see the module docstring).

    Args:
        views: (n, ...) array of views.
        sources: (n, ...) array, the clean image each view was made from (same shape as ``views``).
        value_range: (low, high) of the clean training images.

    Returns:
        {"n", "constant", "collapsed", "saturated", "out_of_range", "degenerate"}: the number of views checked and
        the share of views in each class (``degenerate``: in any of them).
    """
    v = np.asarray(views, dtype=np.float64).reshape(len(views), -1)
    s = np.asarray(sources, dtype=np.float64).reshape(len(sources), -1)
    if v.shape != s.shape:
        raise ValueError(f"views {v.shape} and sources {s.shape} differ in shape")
    n = len(v)
    if n == 0:
        return {
            "n": 0,
            "constant": 0.0,
            "collapsed": 0.0,
            "saturated": 0.0,
            "out_of_range": 0.0,
            "degenerate": 0.0,
        }
    lo, hi = float(value_range[0]), float(value_range[1])
    v_range = v.max(axis=1) - v.min(axis=1)
    s_range = s.max(axis=1) - s.min(axis=1)
    constant = (v_range == 0) & (s_range > 0)
    collapsed = v_range < s_range * COLLAPSE_RATIO
    extreme_v = ((v <= lo) | (v >= hi)).mean(axis=1)
    extreme_s = ((s <= lo) | (s >= hi)).mean(axis=1)
    saturated = extreme_v - extreme_s >= SATURATION_STEP
    outside = ((v < lo) | (v > hi)).mean(axis=1) > OUT_OF_RANGE
    degenerate = constant | collapsed | saturated | outside
    return {
        "n": int(n),
        "constant": float(constant.mean()),
        "collapsed": float(collapsed.mean()),
        "saturated": float(saturated.mean()),
        "out_of_range": float(outside.mean()),
        "degenerate": float(degenerate.mean()),
    }


def is_degenerate(health: dict | None) -> bool:
    """Whether a recipe's views are degenerate (``health`` from :func:`view_health`; None: not checked)."""
    return bool(health) and health.get("degenerate", 0.0) >= DEGENERATE_SHARE


def describe(health: dict) -> str:
    """The classes of degenerate views of a recipe, as a phrase ("62% of views constant, 40% saturated")."""
    parts = [
        f"{100 * health[key]:.0f}% {label}"
        for key, label in (
            ("constant", "constant"),
            ("collapsed", "with collapsed contrast"),
            ("saturated", "saturated"),
            ("out_of_range", "outside the data's value range"),
        )
        if health.get(key)
    ]
    return f"{100 * health['degenerate']:.0f}% of its views are degenerate (" + ", ".join(parts) + ")"

"""Where files shipped with densify live, in an installed wheel and in a source checkout alike."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def builtin_recipes_dir() -> Path:
    """The folder of built-in recipe files.

    A wheel carries the top-level ``recipes/`` folder as ``densify/_recipes`` (pyproject's force-include);
    an editable install or a source checkout reads ``recipes/`` beside the package.
    """
    installed = _PACKAGE / "_recipes"
    if installed.is_dir():
        return installed
    checkout = _PACKAGE.parent / "recipes"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"densify's built-in recipes are missing: neither {installed} nor {checkout} exists"
    )

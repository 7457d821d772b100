"""Compile a :class:`Recipe` at a given ``strength`` into an ``albumentations.Compose``."""

from __future__ import annotations

import inspect
from typing import Any

from densify.recipes._albu import albumentations, allowed_transforms, build_transform
from densify.recipes._model import Recipe, Step, TransformStep
from densify.recipes._strength import MAGNITUDES, check_strength, scale_params


def effective_params(step: TransformStep, strength: float) -> dict[str, Any]:
    """The recipe's parameters for ``step`` with magnitudes scaled to ``strength``.

    Magnitude parameters the recipe leaves to albumentations' defaults are filled in first, so ``strength``
    scales them too.
    """
    params = dict(step.params)
    if strength != 1.0 and step.name in MAGNITUDES:
        signature = inspect.signature(allowed_transforms()[step.name].__init__).parameters
        for key in MAGNITUDES[step.name]:
            if (
                key not in params
                and key in signature
                and signature[key].default is not inspect.Parameter.empty
            ):
                params[key] = signature[key].default
    return scale_params(step.name, params, strength)


def _build(step: Step, strength: float, where: str):
    A = albumentations()
    if isinstance(step, TransformStep):
        return build_transform(step.name, effective_params(step, strength), f"{where}.{step.name}")
    children = [_build(s, strength, f"{where}.{step.kind}.transforms[{i}]") for i, s in enumerate(step.steps)]
    if step.kind == "one_of":
        return A.OneOf(children, p=step.p)
    return A.SomeOf(children, n=step.n, replace=step.replace, p=step.p)


def compile_recipe(recipe: Recipe, strength: float = 1.0):
    """An ``albumentations.Compose`` (p=1) of the recipe's pipeline at ``strength`` in [0, 1].

    Its random state is left to the caller (see :class:`densify.Augmenter`, which seeds it per sample).
    """
    strength = check_strength(strength)
    A = albumentations()
    where = f"{recipe.source or '<recipe>'}: recipe '{recipe.name}': pipeline"
    transforms = [_build(step, strength, f"{where}[{i}]") for i, step in enumerate(recipe.pipeline)]
    return A.Compose(transforms, p=1.0, seed=0)


def resolved_pipeline(recipe: Recipe, strength: float = 1.0) -> list[dict[str, Any]]:
    """Every step with every parameter albumentations will use (defaults included), after ``strength``."""
    A = albumentations()
    return A.to_dict(compile_recipe(recipe, strength))["transform"]["transforms"]

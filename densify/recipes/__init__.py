"""Augmentation recipes: schema, safe loading, the built-in library, strength, compilation and export."""

from densify.recipes._compile import compile_recipe, effective_params, resolved_pipeline
from densify.recipes._export import export_recipe, to_albumentations
from densify.recipes._io import builtin_names, read_recipe
from densify.recipes._model import SCHEMA_VERSION, BlockStep, Recipe, TransformStep
from densify.recipes._strength import MAGNITUDES


def list_recipes(pattern: str = "*") -> list[Recipe]:
    """The built-in recipes whose names match the glob ``pattern``, sorted by name."""
    from fnmatch import fnmatch

    return [read_recipe(name) for name in builtin_names() if fnmatch(name, pattern)]


__all__ = [
    "MAGNITUDES",
    "SCHEMA_VERSION",
    "BlockStep",
    "Recipe",
    "TransformStep",
    "builtin_names",
    "compile_recipe",
    "effective_params",
    "export_recipe",
    "list_recipes",
    "read_recipe",
    "resolved_pipeline",
    "to_albumentations",
]

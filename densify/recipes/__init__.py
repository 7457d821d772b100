"""Augmentation recipes: schema, safe loading, the built-in library, strength, compilation and export."""

from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path

from densify.recipes._compile import compile_recipe, effective_params, resolved_pipeline
from densify.recipes._export import export_recipe, to_albumentations
from densify.recipes._io import builtin_names, known_names, read_recipe, recipe_files
from densify.recipes._model import SCHEMA_VERSION, BlockStep, Recipe, TransformStep
from densify.recipes._strength import MAGNITUDES


def list_recipes(pattern: str = "*", folders: Sequence[str | Path] = ()) -> list[Recipe]:
    """The recipes whose names match the glob ``pattern``, sorted by name: the files in ``folders``, then those in
    ``DENSIFY_RECIPE_PATH``'s folders, then the built-ins (an earlier one hides a later one of the same name)."""
    found: dict[str, Recipe] = {}
    for path in [p for folder in folders for p in recipe_files(folder)]:
        recipe = read_recipe(path)
        found.setdefault(recipe.name, recipe)
    for name in known_names():
        if name not in found:
            found[name] = read_recipe(name)
    return [found[name] for name in sorted(found) if fnmatch(name, pattern)]


def expand_recipe_refs(refs: Sequence[str | Path]) -> list[str]:
    """Recipe references with every folder replaced by the recipe files it holds."""
    out: list[str] = []
    for ref in refs:
        out += [str(p) for p in recipe_files(ref)] if Path(ref).is_dir() else [str(ref)]
    return out


__all__ = [
    "MAGNITUDES",
    "SCHEMA_VERSION",
    "BlockStep",
    "Recipe",
    "TransformStep",
    "builtin_names",
    "compile_recipe",
    "effective_params",
    "expand_recipe_refs",
    "export_recipe",
    "known_names",
    "list_recipes",
    "read_recipe",
    "recipe_files",
    "resolved_pipeline",
    "to_albumentations",
]

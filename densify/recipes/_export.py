"""Interoperability with albumentations' own serialization (``A.save`` / ``A.load`` JSON and YAML)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from densify._io import write_text_atomic
from densify._version import __version__
from densify.errors import RecipeError
from densify.recipes._albu import albumentations, build_transform
from densify.recipes._compile import compile_recipe
from densify.recipes._model import BlockStep, Recipe, Step, TransformStep

_BLOCKS = {"OneOf": "one_of", "SomeOf": "some_of"}


def to_albumentations(recipe: Recipe, strength: float = 1.0) -> dict[str, Any]:
    """albumentations' serialization of the compiled recipe, plus a ``densify`` entry that ``A.load`` ignores."""
    A = albumentations()
    data = A.to_dict(compile_recipe(recipe, strength))
    data["densify"] = {
        "name": recipe.name,
        "intent": recipe.intent,
        "strength": strength,
        "densify_version": __version__,
    }
    return data


def export_recipe(recipe: Recipe, path: str | Path, strength: float = 1.0) -> Path:
    """Write the compiled recipe as albumentations JSON (``.json``) or YAML (``.yaml``/``.yml``), atomically."""
    path = Path(path)
    data = to_albumentations(recipe, strength)
    if path.suffix == ".json":
        text = json.dumps(data, indent=2) + "\n"
    elif path.suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    else:
        raise RecipeError(f"{path}: export format must be .json, .yaml or .yml")
    write_text_atomic(path, text)
    return path


def _number(params: dict[str, Any], key: str, default, kind, where: str, low=None, high=None):
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RecipeError(f"{where}.{key}: must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise RecipeError(
            f"{where}.{key}: must lie in [{low}, {high if high is not None else 'inf'}], got {value!r}"
        )
    return kind(value)


def _step(node: Any, where: str, depth: int = 0) -> Step:
    from densify.recipes._io import MAX_DEPTH, _check_finite

    if depth > MAX_DEPTH:
        raise RecipeError(f"{where}: transforms nested more than {MAX_DEPTH} levels deep")
    if not isinstance(node, dict) or not isinstance(node.get("__class_fullname__"), str):
        raise RecipeError(f"{where}: expected a transform with '__class_fullname__'")
    params = {k: v for k, v in node.items() if k not in ("__class_fullname__", "transforms", "id")}
    name = node["__class_fullname__"].rsplit(".", 1)[-1]
    if name in _BLOCKS:
        children = node.get("transforms") or []
        if not isinstance(children, list):
            raise RecipeError(f"{where}.transforms: must be a list of transforms")
        steps = tuple(_step(c, f"{where}.transforms[{i}]", depth + 1) for i, c in enumerate(children))
        if not steps:
            raise RecipeError(f"{where}.transforms: must hold at least one transform")
        replace = params.get("replace", False)
        if not isinstance(replace, bool):
            raise RecipeError(f"{where}.replace: must be true or false, got {replace!r}")
        return BlockStep(
            _BLOCKS[name],
            steps,
            p=_number(params, "p", 1.0, float, where, 0, 1),
            n=_number(params, "n", 1, int, where, 1),
            replace=replace,
        )
    _check_finite(params, f"{where}.{name}")
    build_transform(name, params, f"{where}.{name}")
    return TransformStep(name, params)


def from_albumentations(data: dict[str, Any], path: Path) -> Recipe:
    """A :class:`Recipe` from albumentations' serialization (as written by ``A.save`` or :func:`export_recipe`)."""
    root = data["transform"]
    where = f"{path}: transform"
    if not isinstance(root, dict) or root.get("__class_fullname__") != "Compose":
        raise RecipeError(f"{where}: the top level must be a Compose")
    if root.get("p", 1.0) != 1.0:
        raise RecipeError(f"{where}.p: densify applies recipes with p=1, got {root.get('p')}")
    if root.get("bbox_params") or root.get("keypoint_params") or root.get("additional_targets"):
        raise RecipeError(f"{where}: boxes, keypoints and additional targets are not supported in recipes")
    steps = tuple(
        _step(node, f"{where}.transforms[{i}]") for i, node in enumerate(root.get("transforms") or [])
    )
    meta = data.get("densify") if isinstance(data.get("densify"), dict) else {}
    name = str(meta.get("name") or path.stem.lower().replace(" ", "-"))
    intent = str(meta.get("intent") or f"Imported from the albumentations file {path.name}.")
    return Recipe(name=name, intent=intent, pipeline=steps, source=path)

"""Reading recipe files safely, resolving ``include``, and the registry of built-in recipes."""

from __future__ import annotations

import difflib
import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from densify._resources import builtin_recipes_dir
from densify.errors import RecipeError
from densify.recipes._model import SUPPORTED_SCHEMA_VERSIONS, BlockStep, Recipe, Step, TransformStep


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _FileModel(_Strict):
    """The top level of a schema-v1 recipe file."""

    schema_version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    intent: str = Field(min_length=1)
    suits: list[str] = []
    avoid: list[str] = []
    pipeline: list[Any]


class _OneOfModel(_Strict):
    p: float = Field(1.0, ge=0, le=1)
    transforms: list[Any]


class _SomeOfModel(_OneOfModel):
    n: int = Field(1, ge=1)
    replace: bool = False


def _validate(model: type[BaseModel], data: Any, where: str, sep: str = ": "):
    """``model.model_validate(data)``, with the first error turned into one line: ``where: key.path: problem``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(".[", "[")
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown key; allowed keys: {', '.join(model.model_fields)}"
        elif err["type"] == "missing":
            message = "missing required key"
        elif "input" in err and err["type"] != "model_type":
            message += f" (got {err['input']!r})"
        raise RecipeError(f"{where}{sep}{loc}: {message}" if loc else f"{where}: {message}") from None


BLOCK_KEYS = ("one_of", "some_of")
SUFFIXES = (".yaml", ".yml", ".json")
#: limits that keep a hostile or mistaken recipe from exhausting memory, the stack or the user's patience
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32  # nested one_of / some_of / include levels
MAX_STEPS = 1000  # transforms in one recipe, includes expanded


def _load_mapping(path: Path) -> dict[str, Any]:
    """Parse ``path`` with ``yaml.safe_load`` (JSON is YAML): no tags, no objects, only plain data."""
    import yaml

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise RecipeError(f"{path}: recipe file is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RecipeError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read recipe file ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"{path}: malformed YAML{where}: {problem}") from exc
    except RecursionError:
        raise RecipeError(f"{path}: YAML nested too deeply to read") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe file must be a mapping, got {type(data).__name__}")
    return data


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_recipes_dir().glob("*.yaml"))


def user_folders() -> list[Path]:
    """Folders of the user's own recipes, from ``DENSIFY_RECIPE_PATH`` (separated like ``PATH``)."""
    raw = os.environ.get("DENSIFY_RECIPE_PATH", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def recipe_files(folder: str | Path) -> list[Path]:
    """The recipe files (``.yaml``, ``.yml``, ``.json``) directly in ``folder``, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RecipeError(f"{folder}: recipe folder not found")
    return sorted(
        p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def known_names() -> list[str]:
    """Every recipe name that resolves: the user's folders' recipes, then the built-ins."""
    return sorted(
        {p.stem for folder in user_folders() if folder.is_dir() for p in recipe_files(folder)}
        | set(builtin_names())
    )


def locate(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """The file a recipe reference names: a path (absolute, or relative to the including file), or a name looked
    up in the folders of ``DENSIFY_RECIPE_PATH`` first and then among the built-in recipes."""
    text = str(name_or_path)
    candidates = [Path(text).expanduser()]
    if relative_to is not None and not Path(text).is_absolute():
        candidates.insert(0, relative_to.parent / text)
    looks_like_path = Path(text).suffix in SUFFIXES or "/" in text or "\\" in text
    for candidate in candidates:
        if looks_like_path and candidate.is_file():
            return candidate
    if looks_like_path:
        raise RecipeError(f"{text}: recipe file not found")
    for folder in (*user_folders(), builtin_recipes_dir()):
        for suffix in SUFFIXES:
            candidate = folder / f"{text}{suffix}"
            if candidate.is_file():
                return candidate
    close = difflib.get_close_matches(text, known_names(), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise RecipeError(f"unknown recipe '{text}'; {hint}known recipes: {', '.join(known_names())}")


def is_albumentations_format(data: dict[str, Any]) -> bool:
    return "transform" in data and "__version__" in data


def read_recipe(name_or_path: str | Path) -> Recipe:
    """Read and validate a recipe by built-in name or file path, with every ``include`` resolved.

    Also reads albumentations' own serialization (``A.save`` JSON/YAML) written by ``densify recipes export``.
    Every error is a :class:`RecipeError` that names the file, the recipe and the key path.
    """
    path = locate(name_or_path)
    return _read(path, stack=())


def _read(path: Path, stack: tuple[Path, ...], depth: int = 0) -> Recipe:
    resolved = path.resolve()
    if resolved in stack:
        cycle = " -> ".join(p.name for p in (*stack, resolved))
        raise RecipeError(f"{path}: include cycle: {cycle}")
    data = _load_mapping(path)
    if is_albumentations_format(data):
        from densify.recipes._export import from_albumentations

        return from_albumentations(data, path)
    version = data.get("schema_version")
    if (
        isinstance(version, int)
        and not isinstance(version, bool)
        and version not in SUPPORTED_SCHEMA_VERSIONS
    ):
        raise RecipeError(
            f"{path}: schema_version: {version} is not supported; this densify reads {list(SUPPORTED_SCHEMA_VERSIONS)}"
        )
    head = _validate(_FileModel, data, f"{path}")
    where = f"{path}: recipe '{head.name}': pipeline"
    steps = _steps(head.pipeline, where, path, (*stack, resolved), depth)
    if not stack and _count(steps) > MAX_STEPS:
        raise RecipeError(
            f"{where}: {_count(steps):,} transforms (includes expanded); the limit is {MAX_STEPS:,}"
        )
    return Recipe(
        name=head.name,
        intent=head.intent.strip(),
        pipeline=steps,
        suits=tuple(head.suits),
        avoid=tuple(head.avoid),
        source=path,
    )


def _count(steps: tuple[Step, ...]) -> int:
    return sum(_count(s.steps) if isinstance(s, BlockStep) else 1 for s in steps)


def _check_finite(value: Any, where: str) -> None:
    """Refuse NaN and infinite numbers anywhere in a transform's parameters (they reach JSON and OpenCV)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"{where}: {value} is not a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


def _steps(raw: Any, where: str, path: Path, stack: tuple[Path, ...], depth: int = 0) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        raise RecipeError(f"{where}: must be a list of steps")
    if depth + len(stack) > MAX_DEPTH:
        raise RecipeError(f"{where}: steps nested more than {MAX_DEPTH} levels deep (blocks and includes)")
    out: list[Step] = []
    for i, item in enumerate(raw):
        here = f"{where}[{i}]"
        # "- HorizontalFlip": a transform named without its mapping of parameters
        if isinstance(item, str) and item.isidentifier():
            raise RecipeError(f"{here}: a step is a mapping; write '{item}: {{}}' (or '{item}: {{p: 0.5}}')")
        if not isinstance(item, dict) or len(item) != 1:
            raise RecipeError(
                f"{here}: a step is a mapping with one key: a transform name, 'one_of', 'some_of' or 'include'"
            )
        ((key, value),) = item.items()
        if key == "include":
            if not isinstance(value, str):
                raise RecipeError(f"{here}.include: must be a recipe name or path")
            try:
                target = locate(value, relative_to=path)
            except RecipeError as exc:
                raise RecipeError(f"{here}.include: {exc}") from exc
            out.extend(_read(target, stack, depth).pipeline)
        elif key in BLOCK_KEYS:
            out.append(_block(key, value, f"{here}.{key}", path, stack, depth + 1))
        else:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise RecipeError(f"{here}.{key}: parameters must be a mapping, got {type(value).__name__}")
            _check_finite(value, f"{here}.{key}")
            from densify.recipes._albu import build_transform

            build_transform(key, value, f"{here}.{key}")  # validates name and every parameter now
            out.append(TransformStep(key, dict(value)))
    return tuple(out)


def _block(kind: str, value: Any, where: str, path: Path, stack: tuple[Path, ...], depth: int) -> BlockStep:
    model = _validate(_SomeOfModel if kind == "some_of" else _OneOfModel, value, where, sep=".")
    steps = _steps(model.transforms, f"{where}.transforms", path, stack, depth)
    n = getattr(model, "n", 1)
    replace = getattr(model, "replace", False)
    if not steps:
        raise RecipeError(f"{where}.transforms: must hold at least one step")
    if not replace and n > len(steps):
        raise RecipeError(
            f"{where}.n: {n} is more than the {len(steps)} transforms; use n <= {len(steps)} or replace: true"
        )
    return BlockStep(kind=kind, steps=steps, p=float(model.p), n=n, replace=replace)

"""The recipe data model: a validated, fully resolved pipeline of albumentations steps.

A recipe file (YAML, ``schema_version: 1``)::

    schema_version: 1                 # required; files of every released version keep loading
    name: affine-light                # lowercase letters, digits and dashes
    intent: Small rotations, shifts and zooms that keep the object recognisable.
    suits: [natural images, fashion, digits]
    avoid: [pixel-aligned data such as rendered text, where any shift is a different sample]
    pipeline:                         # steps, applied in order
      - Affine: {rotate: [-10, 10], p: 0.8}          # an albumentations transform by class name
      - one_of:                                       # exactly one child, chosen by the children's p as weights
          p: 0.5                                      # blocks apply with probability p (default 1)
          transforms: [{GaussianBlur: {}}, {GaussNoise: {}}]
      - some_of: {n: 2, replace: true, transforms: [...]}   # n children chosen at random
      - include: flip                                 # another recipe's pipeline, in place (name or path)

Transform parameters are passed to albumentations unchanged and validated by its own schemas in strict mode;
unspecified parameters take albumentations' defaults (``densify recipes show`` prints every value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)


@dataclass(frozen=True)
class TransformStep:
    """One albumentations transform: its class name and the parameters given in the recipe."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockStep:
    """``one_of`` or ``some_of`` over child steps."""

    kind: str  # "one_of" | "some_of"
    steps: tuple[Step, ...]
    p: float = 1.0
    n: int = 1
    replace: bool = False


Step = TransformStep | BlockStep


@dataclass(frozen=True)
class Recipe:
    """A resolved recipe: includes expanded, every step validated.

    Attributes:
        name, intent, suits, avoid: the recipe's description.
        pipeline: the steps, in order.
        source: the file it was read from (None for recipes built in code).
    """

    name: str
    intent: str
    pipeline: tuple[Step, ...]
    suits: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()
    source: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """The recipe as a schema-v1 mapping (includes expanded), ready for ``yaml.safe_dump``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "intent": self.intent,
            "suits": list(self.suits),
            "avoid": list(self.avoid),
            "pipeline": [step_to_dict(s) for s in self.pipeline],
        }


def step_to_dict(step: Step) -> dict[str, Any]:
    if isinstance(step, TransformStep):
        return {step.name: dict(step.params)}
    block: dict[str, Any] = {"p": step.p, "transforms": [step_to_dict(s) for s in step.steps]}
    if step.kind == "some_of":
        block.update(n=step.n, replace=step.replace)
    return {step.kind: block}

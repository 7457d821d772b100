"""An audit's plan: every input validated and loaded before anything is computed or written.

``plan_audit`` is the one place that decides whether an audit can run. It reads each recipe once (the objects
are passed down to the coverage estimator and the trainer), loads the data, and checks the settings against
each other and against the data: image sizes against what the encoder, the model and every recipe need, the
class sets of the two splits, k and the batch against the number of images. A refusal is one line naming the
setting (as the Python API spells it) and writes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from densify._version import __version__
from densify.data._working import working_size
from densify.errors import DataError, DensifyError

if TYPE_CHECKING:
    from densify.audit._run import AuditSettings
    from densify.data import DataSplits
    from densify.loader import Augmenter

#: the smallest image side the CNNs can take (small-cnn pools three times by 2; so do the CNN encoders)
MIN_SIDE = 8
CNN_ENCODERS = ("reference", "reference+views", "random-cnn")


class SettingsError(DensifyError):
    """Audit settings that cannot work together or with the data."""


@dataclass(frozen=True)
class AuditPlan:
    """A validated audit: its settings, data, recipes (``none`` first, as seeded augmenters) and identity."""

    settings: AuditSettings
    data: DataSplits
    augmenters: tuple[Augmenter, ...]
    identity: dict[str, Any]
    data_fingerprint: str
    run_id: str

    @property
    def recipes(self) -> list:
        return [a.recipe for a in self.augmenters]

    @property
    def names(self) -> list[str]:
        return [a.recipe.name for a in self.augmenters]


def resolve_recipes(refs: Sequence[str]) -> list:
    """The :class:`~densify.recipes.Recipe` objects that references name, each read once: ``all`` expanded to
    every known recipe, folders to their files, duplicates (by name) dropped, ``none`` first (the baseline every
    gain is measured against)."""
    from densify.recipes import expand_recipe_refs, known_names, read_recipe

    refs = [r for ref in refs for r in ([*known_names()] if ref == "all" else [ref])]
    seen, out = set(), []
    for ref in ["none", *expand_recipe_refs(refs)]:
        recipe = read_recipe(ref)
        if recipe.name not in seen:
            seen.add(recipe.name)
            out.append(recipe)
    return out


def _check_settings(s: AuditSettings) -> None:
    def positive(key: str, minimum: int = 1) -> None:
        value = getattr(s, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SettingsError(f"{key} must be an integer >= {minimum}, got {value!r}")

    for key in ("views", "k", "steps", "batch", "n_boot"):
        positive(key)
    if s.train and s.proxy:
        raise SettingsError(
            "train and proxy exclude each other: proxy is the cheap confirmation, train the full one; choose one"
        )
    if s.train:
        positive("seeds", 2)  # a confidence interval needs two seeds
    if s.proxy:
        positive("seeds")
    if s.channels not in (None, 1, 3):
        raise SettingsError(f"channels must be 1 or 3, got {s.channels!r}")
    if s.resize is not None and (
        not isinstance(s.resize, tuple | list)
        or len(s.resize) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in s.resize)
    ):
        raise SettingsError(f"resize must be (H, W) with positive integer sides, got {s.resize!r}")
    try:
        working_size((8, 8), s.image_size)
    except DataError as exc:
        raise SettingsError(str(exc)) from None
    for key in ("train_size", "heldout_size"):
        if getattr(s, key) is not None:
            positive(key)
    if isinstance(s.seed, bool) or not isinstance(s.seed, int) or not 0 <= s.seed < 2**32:
        raise SettingsError(f"seed must be an integer in 0..2**32-1, got {s.seed!r}")
    if not isinstance(s.strength, int | float) or not math.isfinite(s.strength) or not 0 <= s.strength <= 1:
        raise SettingsError(f"strength must be a number in [0, 1], got {s.strength!r}")
    if not s.recipes:
        raise SettingsError("recipes is empty; name at least one recipe (or 'all')")
    from densify.coverage._knn import SEARCH_MODES

    if s.search not in SEARCH_MODES:
        raise SettingsError(f"search must be one of {', '.join(SEARCH_MODES)}, got {s.search!r}")


def _check_names(s: AuditSettings) -> None:
    """Encoder and model names (and the weights file) before any data is read or anything trained."""
    from densify.embed import get_encoder

    get_encoder(s.encoder, seed=s.seed, weights=s.weights)
    if s.train or s.proxy:
        from densify.train.models import check_model_name

        check_model_name(s.model)


def _check_data(s: AuditSettings, data: DataSplits) -> None:
    h, w, _ = data.train.shape
    needs = [f"encoder '{s.encoder}'"] if s.encoder in CNN_ENCODERS else []
    needs += [f"model '{s.model}'"] if (s.train or s.proxy) and s.model == "small-cnn" else []
    if needs and min(h, w) < MIN_SIDE:
        raise DataError(
            f"{data.name}: images are {h}x{w}; the {' and the '.join(needs)} need{'s' if len(needs) == 1 else ''} "
            f"at least {MIN_SIDE}x{MIN_SIDE} "
            "(resize the data, or use encoder 'pixels' without training)"
        )
    train_counts, held_counts = data.train.class_counts(), data.heldout.class_counts()
    for label in range(len(data.classes)):
        if held_counts[label] and not train_counts[label]:
            raise DataError(
                f"{data.name}: class '{data.classes[label]}' has held-out images but no training images; "
                "coverage and accuracy cannot be measured for it (drop the class, or add training images)"
            )
    if s.k >= len(data.heldout):
        raise SettingsError(
            f"k={s.k} needs more than k held-out images; the held-out split has {len(data.heldout)}"
        )
    if (s.train or s.proxy) and s.batch > len(data.train):
        raise SettingsError(f"batch={s.batch} is larger than the {len(data.train)} training images")


def plan_audit(settings: AuditSettings) -> AuditPlan:
    """Validate ``settings`` and load what the audit needs; raises a one-line :class:`DensifyError`."""
    from densify._hash import digest
    from densify.data import at_working_size, load_data
    from densify.data._working import stored_cap
    from densify.loader import load_recipe

    _check_settings(settings)
    _check_names(settings)
    recipes = resolve_recipes(settings.recipes)
    names = [r.name for r in recipes]
    if settings.projection is not None and settings.projection not in names:
        raise SettingsError(
            f"projection {settings.projection!r} is not one of the audited recipes: {', '.join(names)}"
        )
    data = load_data(  # rows chosen before pixels are taken: a memory-mapped source is read only where chosen
        settings.data,
        train_size=settings.train_size,
        heldout_size=settings.heldout_size,
        seed=settings.seed,
        resize=None if settings.resize is None else tuple(settings.resize),
        channels=settings.channels,
        image_size=None,  # the working size is applied below, to the training subset only
        cap=True,
        max_side=stored_cap(settings.image_size),
    )
    data = at_working_size(data, settings.image_size)
    _check_data(settings, data)
    augmenters = tuple(load_recipe(r, strength=settings.strength, seed=settings.seed) for r in recipes)
    for augmenter in augmenters:
        augmenter.check_shape(data.train.source_shape)
    data_fp = digest(*data.train.fingerprint_parts(), *data.heldout.fingerprint_parts(), data.classes)
    identity = settings.identity()
    run_id = digest(json.dumps(identity, sort_keys=True), data_fp, __version__)[:16]
    return AuditPlan(settings, data, augmenters, identity, data_fp, run_id)

"""The fine-tune proxy: one model trained once on clean data, each recipe a short fine-tune from its weights.

After Tian et al. (NeurIPS 2020, "Improving Auto-Augment via Augmentation-Wise Weight Sharing"): the effect of an
augmentation shows most clearly late in training, so a shared model trained without augmentation is fine-tuned
briefly with each recipe, and the recipes are ranked by the held-out accuracy the fine-tunes reach. Every fine-tune
of a seed starts from the same weights and sees the same batches in the same order (``none`` included), so a
recipe's gain over ``none`` is paired, as in the full confirmation.

Its cost, in optimiser steps, is ``base_steps + recipes x seeds x finetune_steps`` against the full
confirmation's ``recipes x seeds x steps``; :class:`ProxyResult` reports both that ratio and the measured seconds.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from densify._hash import digest
from densify._io import write_text_atomic
from densify._version import __version__
from densify.data import DataSplits
from densify.errors import TrainError
from densify.train._loop import TrainConfig, train_run

#: the fine-tune's share of the full budget and its peak learning rate relative to the full run's; fixed before
#: the predictor study measured the proxy (benchmarks/predictors/study.py), not tuned on its results
FINETUNE_SHARE = 6
FINETUNE_LR_SHARE = 3


@dataclass(frozen=True)
class ProxyResult:
    """Fine-tune summaries (``gain`` paired against the fine-tuned ``none``) and what the proxy cost."""

    summaries: list  # list[RecipeSummary]
    base_steps: int
    finetune_steps: int
    base_seconds: float
    finetune_seconds: float

    def steps(self) -> int:
        """Optimiser steps of the whole proxy: the base model plus every fine-tune."""
        runs = sum(len(s.runs) for s in self.summaries)
        return self.base_steps + runs * self.finetune_steps

    def cost_ratio(self, full_steps: int, full_seeds: int) -> float:
        """The proxy's steps over those of a full confirmation of the same recipes (``full_seeds`` seeds of
        ``full_steps`` steps each)."""
        return self.steps() / (len(self.summaries) * full_seeds * full_steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_steps": self.base_steps,
            "finetune_steps": self.finetune_steps,
            "base_seconds": self.base_seconds,
            "finetune_seconds": self.finetune_seconds,
            "steps": self.steps(),
            "recipes": [s.to_dict() for s in self.summaries],
        }


def finetune_config(
    config: TrainConfig, finetune_steps: int | None = None, lr: float | None = None
) -> TrainConfig:
    """The fine-tunes' settings: ``config`` with 1/FINETUNE_SHARE of its steps and 1/FINETUNE_LR_SHARE of its
    peak learning rate unless given."""
    steps = finetune_steps if finetune_steps is not None else max(1, config.steps // FINETUNE_SHARE)
    return replace(
        config,
        steps=steps,
        lr=lr if lr is not None else config.lr / FINETUNE_LR_SHARE,
        checkpoint_every=max(steps, 1),
        log_every=min(config.log_every, steps),
    ).check()


def finetune_recipes(
    data: DataSplits,
    recipes: Sequence[str],
    seeds: Sequence[int] = (0, 1),
    config: TrainConfig | None = None,
    *,
    base_steps: int | None = None,
    finetune_steps: int | None = None,
    lr: float | None = None,
    base_seed: int = 0,
    strength: float = 1.0,
    out: str | Path | None = None,
    progress=None,
    jobs: int | None = None,
) -> ProxyResult:
    """Rank ``recipes`` by short fine-tunes of one clean-trained model (see the module docstring).

    Args:
        config: the full confirmation's settings; the base model trains ``base_steps`` (default ``config.steps``)
            of them without augmentation, and each fine-tune uses :func:`finetune_config`.
        seeds: fine-tune seeds (batch order and augmentation); the base model is trained once, with ``base_seed``.
        out: folder for the base weights and the fine-tunes' runs (reused when the settings are unchanged);
            a temporary folder when None.
        jobs: fine-tunes at once (as :func:`densify.train.train_recipes`; None: its default).

    Returns:
        A :class:`ProxyResult` whose summaries hold ``none`` first and a paired gain for every recipe.
    """
    from densify.train import _checked, train_recipes

    config = (config or TrainConfig()).check()
    base_config = replace(config, steps=base_steps if base_steps is not None else config.steps).check()
    tuned = finetune_config(config, finetune_steps, lr)
    names = [_checked(r, strength, data) for r in recipes]  # validate before training anything
    if not seeds:
        raise TrainError("the fine-tune proxy needs at least one seed")
    ordered = ["none", *[r for r, n in zip(recipes, names, strict=True) if n != "none"]]
    with tempfile.TemporaryDirectory(prefix="densify-proxy-") as tmp:
        folder = Path(out) if out is not None else Path(tmp)
        weights = folder / f"base-{base_config.steps}-seed{base_seed}.pt"
        record = weights.with_suffix(".json")
        fingerprint = digest(
            *data.train.fingerprint_parts(), sorted(asdict(base_config).items()), __version__
        )
        saved = json.loads(record.read_text()) if record.is_file() and weights.is_file() else {}
        if saved.get("fingerprint") != fingerprint:
            base = train_run(data, "none", base_seed, base_config, save_weights=weights,
                             progress=(lambda s, t: progress("base", base_seed, s, t)) if progress else None)  # fmt: skip
            saved = {"fingerprint": fingerprint, "seconds": base.seconds}
            write_text_atomic(record, json.dumps(saved) + "\n")
        summaries = train_recipes(data, ordered, seeds, tuned, strength=strength, out=folder / f"finetune-s{strength:g}",
                                  progress=progress, init=weights, jobs=jobs)  # fmt: skip
    finetune_seconds = sum(r.seconds for s in summaries for r in s.runs)
    return ProxyResult(summaries, base_config.steps, tuned.steps, saved["seconds"], finetune_seconds)

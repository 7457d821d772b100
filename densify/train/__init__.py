"""Trainer: confirm each recipe's effect on held-out accuracy with several seeds, at an equal step budget."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from densify._dist import barrier, is_main
from densify._hash import digest
from densify._io import write_text_atomic
from densify._version import __version__
from densify.data import DataSplits
from densify.train._loop import RunResult, TrainConfig, batch_indices, evaluate, train_run
from densify.train._stats import mean_t_ci, t95

RunProgress = Callable[[str, int, int, int], None]  # (recipe, seed, step, total)


@dataclass(frozen=True)
class RecipeSummary:
    """A recipe's runs over seeds: accuracy mean ± 95% t-interval and its paired gain over ``none``."""

    recipe: str
    accuracy: tuple[float, float, float]
    gain: tuple[float, float, float] | None  # paired over seeds against `none`, when `none` was trained
    loss_ratio: float | None  # Gontijo-Lopes diversity: final training loss / that of `none` (same seeds)
    runs: list[RunResult]

    def to_dict(self) -> dict[str, Any]:
        def interval(t):
            return None if t is None else {"mean": t[0], "low": _finite(t[1]), "high": _finite(t[2])}

        return {
            "recipe": self.recipe,
            "accuracy": interval(self.accuracy),
            "gain_over_none": interval(self.gain),
            "loss_ratio": self.loss_ratio,
            "runs": [r.to_dict() for r in self.runs],
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def summarise(runs: Sequence[RunResult]) -> list[RecipeSummary]:
    """Per-recipe summaries, in the order recipes first appear; gains are paired by seed against ``none``."""
    by_recipe: dict[str, dict[int, RunResult]] = {}
    for r in runs:
        by_recipe.setdefault(r.recipe, {})[r.seed] = r
    base = by_recipe.get("none", {})
    out = []
    for recipe, seeds in by_recipe.items():
        accs = [seeds[s].heldout_accuracy for s in sorted(seeds)]
        paired = [s for s in sorted(seeds) if s in base]
        gain = (
            mean_t_ci([seeds[s].heldout_accuracy - base[s].heldout_accuracy for s in paired], (-1.0, 1.0))
            if paired
            else None
        )
        ratio = None
        if paired:
            ratio = float(
                sum(seeds[s].final_train_loss for s in paired) / sum(base[s].final_train_loss for s in paired)
            )
        out.append(
            RecipeSummary(recipe, mean_t_ci(accs, (0.0, 1.0)), gain, ratio, [seeds[s] for s in sorted(seeds)])
        )
    return out


def _checked(recipe: str, strength: float, data: DataSplits) -> str:
    """``recipe``'s name, once it loads and works on ``data``'s images (a one-line RecipeError otherwise, before
    anything is trained rather than in the middle of a run)."""
    from densify.loader import load_recipe

    augmenter = load_recipe(recipe, strength=strength)
    augmenter.check_shape(data.train.source_shape)
    return augmenter.recipe.name


def train_recipes(
    data: DataSplits,
    recipes: Sequence[str],
    seeds: Sequence[int] = (0, 1, 2),
    config: TrainConfig | None = None,
    *,
    strength: float = 1.0,
    out: str | Path | None = None,
    progress: RunProgress | None = None,
    init: str | Path | None = None,
    jobs: int | None = None,
) -> list[RecipeSummary]:
    """Train every (recipe, seed) pair and summarise over seeds.

    ``init``: a weights file every run starts from (a fine-tune of a shared model) instead of a fresh network.
    ``jobs``: runs trained at once, in forked processes with one torch thread each (see
    :mod:`densify.train._jobs`); None: :func:`~densify.train._jobs.default_jobs` (every core on a CPU-only
    machine). A GPU, torchrun ranks or DataLoader workers (``config.workers``) train one run at a time whatever
    ``jobs`` says.

    With ``out``, each finished run is written to ``out/runs/RECIPE-seedS.json`` (atomically) and never retrained
    while its settings and data are unchanged; unfinished runs continue from ``out/checkpoints/``. Same seed,
    same data order and initial weights for every recipe, so gains are paired.
    """
    from densify._dist import world_size
    from densify._torch import device
    from densify.train._jobs import Task, check_jobs, default_jobs, run_parallel

    config = (config or TrainConfig()).check()
    jobs = default_jobs() if jobs is None else check_jobs(jobs)
    names = [_checked(r, strength, data) for r in recipes]  # validate every recipe before training anything
    fingerprint = digest(
        *data.train.fingerprint_parts(),
        data.heldout.images,
        data.heldout.labels,
        sorted(asdict(config).items()),
        strength,
        __version__,
        None if init is None else digest(np.frombuffer(Path(init).read_bytes(), np.uint8)),
    )
    folder = Path(out) if out is not None else None
    results: dict[tuple[str, int], RunResult] = {}
    tasks = []
    for ref, name in zip(recipes, names, strict=True):
        for seed in seeds:
            done = folder / "runs" / f"{name}-seed{seed}.json" if folder else None
            if done is not None and done.is_file():
                saved = json.loads(done.read_text())
                if saved.get("fingerprint") == fingerprint:
                    results[(name, seed)] = RunResult(**saved["result"])
                    continue
            tasks.append(
                Task(ref, name, seed, folder / "checkpoints" / f"{name}-seed{seed}.pt" if folder else None)
            )

    def finished(task: Task, result: RunResult) -> None:
        if folder is not None and is_main():  # under torchrun, rank 0 writes
            write_text_atomic(
                folder / "runs" / f"{task.name}-seed{task.seed}.json",
                json.dumps({"fingerprint": fingerprint, "result": result.to_dict()}) + "\n",
            )
        results[(task.name, task.seed)] = result

    # runs with DataLoader workers already use several processes each; a forked worker cannot use a GPU
    if jobs > 1 and len(tasks) > 1 and world_size() == 1 and device().type == "cpu" and config.workers == 0:
        run_parallel(
            data, tasks, config, strength=strength, init=init, jobs=jobs, progress=progress, finished=finished
        )
    else:
        for task in tasks:
            result = train_run(
                data,
                task.ref,
                task.seed,
                config,
                strength=strength,
                checkpoint=task.checkpoint,
                init=init,
                progress=(lambda step, total, n=task.name, s=task.seed: progress(n, s, step, total))
                if progress
                else None,
            )
            finished(task, result)
            barrier()
    return summarise([results[(name, seed)] for name in names for seed in seeds])


def scaling_study(
    data: DataSplits,
    recipes: Sequence[str],
    sizes: Sequence[int],
    seeds: Sequence[int] = (0, 1, 2),
    config: TrainConfig | None = None,
    *,
    strength: float = 1.0,
    out: str | Path | None = None,
    progress: RunProgress | None = None,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Accuracy vs training-set size for ``none`` and each recipe (stratified subsets, the same for every recipe)
    and each recipe's effective data multiplier at every size (see ``densify.train._scaling``)."""
    from densify.data import DataSplits as Splits
    from densify.data import stratified_subset
    from densify.train._scaling import effective_multiplier

    sizes = sorted(set(sizes))
    names = ["none", *[r for r in recipes if r != "none"]]
    acc: dict[str, dict[int, dict[int, float]]] = {}
    for n in sizes:
        subset = Splits(
            name=f"{data.name}[n={n}]",
            train=stratified_subset(data.train, n, seed=0),
            heldout=data.heldout,
            source=data.source,
            heldout_origin=data.heldout_origin,
        )
        folder = Path(out) / f"n{n}" if out is not None else None
        for summary in train_recipes(
            subset, names, seeds, config, strength=strength, out=folder, progress=progress, jobs=jobs
        ):
            acc.setdefault(summary.recipe, {})[n] = {r.seed: r.heldout_accuracy for r in summary.runs}
    base = acc.pop("none")
    return {
        "sizes": sizes,
        "accuracy": {
            "none": {n: mean_t_ci(list(base[n].values())) for n in sizes},
            **{r: {n: mean_t_ci(list(v[n].values())) for n in sizes} for r, v in acc.items()},
        },
        "multiplier": {r: [effective_multiplier(sizes, base, v, n) for n in sizes] for r, v in acc.items()},
    }


def write_train_report(out, data: DataSplits, config: TrainConfig, seeds, strength: float, summaries) -> Path:
    """Write ``out/train.json`` (atomically): the settings and every recipe's summary and runs."""
    report = {
        "densify_version": __version__,
        "data": data.name,
        "config": asdict(config),
        "seeds": list(seeds),
        "strength": strength,
        "recipes": [s.to_dict() for s in summaries],
    }
    path = Path(out) / "train.json"
    write_text_atomic(path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    return path


def write_scaling_report(out, study: dict[str, Any]) -> Path:
    """Write ``out/scaling.json`` (atomically) from a :func:`scaling_study` result (NaN as null)."""
    report = {
        "sizes": study["sizes"],
        "accuracy": {
            r: {str(n): [x if math.isfinite(x) else None for x in v] for n, v in by_n.items()}
            for r, by_n in study["accuracy"].items()
        },
        "multiplier": {r: [m.to_dict() for m in ms] for r, ms in study["multiplier"].items()},
    }
    path = Path(out) / "scaling.json"
    write_text_atomic(path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    return path


from densify.train._proxy import ProxyResult, finetune_config, finetune_recipes  # noqa: E402

__all__ = [
    "ProxyResult",
    "RecipeSummary",
    "RunResult",
    "TrainConfig",
    "batch_indices",
    "evaluate",
    "finetune_config",
    "finetune_recipes",
    "mean_t_ci",
    "scaling_study",
    "summarise",
    "t95",
    "train_recipes",
    "train_run",
    "write_scaling_report",
    "write_train_report",
]

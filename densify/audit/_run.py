"""One audit: coverage of every recipe, trained confirmation, verdict, and the report bundle."""

from __future__ import annotations

import csv
import io
import json
import platform
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from densify._version import __version__
from densify.audit import _bundle
from densify.audit._plan import AuditPlan, plan_audit
from densify.audit._schema import check_report
from densify.audit._verdict import PREDICTORS, verdict
from densify.embed import DEFAULT_ENCODER
from densify.quality._issues import report_section

SCHEMA = "densify.report/1"
#: the recipes `densify evaluate` audits by default: the baseline, two safe geometric recipes, one occlusion
#: recipe, and two that are expected to hurt on upright objects (so the verdict has something to flag)
DEFAULT_RECIPES = ("none", "flip", "vflip", "crop-pad", "affine-light", "affine-heavy", "cutout")
PROJECTION_POINTS = 2000
#: the longest tile side of the report's sample grids (photographs are shown shrunk to it; smaller images as stored)
SAMPLE_TILE = 112
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class AuditSettings:
    """Everything that determines an audit's numbers (its ``run_id`` is a hash of these and of the data).

    data: a data spec. recipes: names, files or folders (``("all",)`` for every recipe densify knows).
    encoder / weights / views / k / n_boot / search: the coverage estimate (see ``estimate_coverage``).
    train: also train a model per recipe and seed; seeds / steps / batch / model: the trained confirmation.
    proxy: instead of ``train``, the cheap confirmation: one model trained on clean data, each recipe fine-tuned
    from it for a sixth of ``steps`` with each of ``seeds`` (``densify.train.finetune_recipes``); the verdict ranks
    by the proxy's gains together with the training-free predictor (docs/predictor-study.md).
    train_size: audit a stratified subset of at most this many training images (None: all of them). The default,
    2,000, bounds the cost of an audit on any dataset (a few minutes on 2 cores) and sits in the low-data regime
    where augmentation matters most; pass None (``--train-size all``) to audit the full training set.
    heldout_size: a stratified subset of the held-out images. seed: subsets, encoder, views and bootstrap.
    strength: scales every recipe's magnitudes. projection: the recipe whose views the 2-D projection shows
    (default: the recommended recipe).
    resize / channels: convert every image when it is read (``load_data``'s arguments). image_size: the working
    size (``"auto"``: images larger than ``densify.data.AUTO_SIDE`` are scaled down to it; recipes augment the
    stored pixels first; see ``densify.data.at_working_size``).
    """

    data: str = "fashion-mini"
    recipes: tuple[str, ...] = DEFAULT_RECIPES
    encoder: str = DEFAULT_ENCODER
    weights: str | None = None
    views: int = 2
    k: int = 5
    seed: int = 0
    strength: float = 1.0
    train: bool = True
    proxy: bool = False
    seeds: int = 3
    steps: int = 600
    batch: int = 64
    model: str = "small-cnn"
    train_size: int | None = 2000
    heldout_size: int | None = None
    n_boot: int = 1000
    search: str = "auto"
    projection: str | None = None
    resize: tuple[int, int] | None = None
    channels: int | None = None
    image_size: int | str | tuple[int, int] | None = "auto"
    extra: dict = field(default_factory=dict)  # free-form notes recorded in the report (not part of run_id)

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        if not self.proxy:  # a setting added at its default leaves the run ids of earlier audits unchanged
            d.pop("proxy")
        d["recipes"] = list(self.recipes)
        return d


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"densify": __version__, "python": platform.python_version()}
    for package in (
        "numpy",
        "torch",
        "torchvision",
        "albumentations",
        "faiss-cpu",
        "matplotlib",
        "scikit-learn",
    ):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out


def _environment() -> dict[str, Any]:
    """Where the numbers were computed. torch's CPU results depend on its thread count (float reductions are
    split across threads), so an audit reproduces bit for bit on the same device with the same thread count."""
    import os

    from densify._dist import local_cores, world_size
    from densify._torch import device, env_count, torch_threads

    return {
        "device": str(device()),
        "torch_threads": torch_threads(),
        "faiss_threads": env_count("DENSIFY_FAISS_THREADS") or local_cores(),
        "cpu_count": os.cpu_count(),
        "processes": world_size(),  # torchrun ranks sharing the work (the numbers are the same with any number)
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY") or "default",
        "opencv_threads": _opencv_threads(),  # in this process; DataLoader workers run OpenCV on one thread each
    }


def _opencv_threads() -> int | None:
    """OpenCV's thread count in this process (albumentations' image operations run on it), None without cv2."""
    try:
        import cv2
    except ImportError:
        return None
    return int(cv2.getNumThreads())


def run_audit(
    settings: AuditSettings,
    out: str | Path = "densify-report",
    *,
    resume: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    workers: int = 0,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Run an audit and write its bundle to ``out``; returns the report (the content of ``report.json``).

    Under ``torchrun`` every rank calls it: the ranks share the embeddings and the training, rank 0 computes
    the metrics and writes the bundle, and the other ranks return None.

    ``workers``: processes generating the coverage estimate's views (``estimate_coverage``); not part of the
    run's identity (the report is the same with any number), recorded in its ``environment``. ``jobs``: training
    runs at once (:func:`densify.train.train_recipes`; None: every core on a CPU), each with one torch thread, so
    the report is the same with any number; recorded in ``environment`` too.

    Every input is validated (recipes, data, settings, ``out``) before anything is written: a refused audit
    leaves ``out`` as it was. One audit at a time writes to an ``out`` folder (a second one is refused). The new
    bundle is built aside and moved into place only when complete, so a failure at any point (a full disk
    included) leaves the previous report readable. With ``resume``, finished steps cached in ``out/.densify``
    (embeddings, metrics, trained runs) are reused and unfinished training runs continue from their checkpoints;
    the report is the same as an uninterrupted run's (timings aside).
    """
    from densify._dist import broadcast, init_from_env

    out = Path(out)
    note = progress or (lambda stage, done, total: None)
    rank, world = init_from_env()
    if rank > 0:  # under torchrun: share rank 0's work; rank 0 alone checks, claims and writes the bundle
        refused = broadcast(None)
        if refused is not None:
            raise refused
        _compute(plan_audit(settings), out / _bundle.STATE, note, workers, main=False, jobs=jobs)
        return None
    with ExitStack() as held:
        try:
            _bundle.check_writable(out)
            plan = plan_audit(settings)
            # a bad --jobs or DENSIFY_TRAIN_JOBS is refused before any work
            if settings.train or settings.proxy:
                from densify.train._jobs import check_jobs, default_jobs

                jobs = default_jobs() if jobs is None else check_jobs(jobs)
            _bundle.check_claim(out, plan.run_id, plan.identity, resume=resume, force=force)
            held.enter_context(_bundle.lock(out))
            _bundle.claim(out, plan.run_id, plan.identity, resume=resume, force=force)
        except Exception as error:
            if world > 1:
                broadcast(error)  # the other ranks refuse with the same error instead of waiting for rank 0
            raise
        if world > 1:
            broadcast(None)
        report, samples, issues = _compute(plan, out / _bundle.STATE, note, workers, jobs=jobs)
        note("writing the report", 0, 1)
        start = time.perf_counter()
        files = render_bundle(report, plan.data, plan.augmenters, samples, issues)
        report["timings"]["report"] = round(time.perf_counter() - start, 2)
        check_report(report)  # the typed densify.report/1 schema, before anything is written
        files[_bundle.REPORT] = (json.dumps(report, indent=2, allow_nan=False) + "\n").encode()
        _bundle.write_bundle(out, files)
        note("writing the report", 1, 1)
    return report


def _compute(
    plan: AuditPlan, state: Path, note: Progress, workers: int = 0, main: bool = True, jobs: int | None = None
) -> tuple[dict[str, Any], Any, Any] | None:
    """Coverage, training and verdict of a planned audit: (the report, the projection samples, the data issues).
    ``main`` False (a rank other than 0 under torchrun): only the shared work (coverage, training); None."""
    from densify.data._info import summarise
    from densify.estimate import estimate_coverage
    from densify.recipes import to_albumentations

    settings, data = plan.settings, plan.data
    timings: dict[str, float] = {}
    start = time.perf_counter()
    coverage = estimate_coverage(
        data,
        plan.recipes,
        encoder=settings.encoder,
        weights=settings.weights,
        views=settings.views,
        k=settings.k,
        seed=settings.seed,
        strength=settings.strength,
        cache_dir=state / "cache",
        n_boot=settings.n_boot,
        progress=note,
        samples=PROJECTION_POINTS,
        workers=workers,
        search=settings.search,
    )
    timings["coverage"] = time.perf_counter() - start
    if not main:
        if settings.train:
            _train(plan, state, note, jobs)
        return None
    start = time.perf_counter()
    issues = _data_quality(plan, state, note)
    timings["data_quality"] = time.perf_counter() - start
    training = proxy = None
    if settings.train:
        start = time.perf_counter()
        training = _train(plan, state, note, jobs)
        timings["training"] = time.perf_counter() - start
    if settings.proxy:
        start = time.perf_counter()
        proxy = _proxy(plan, state, note, jobs)
        timings["proxy"] = time.perf_counter() - start

    coverage_dict = coverage.to_dict()
    recipes_cov = {
        r["recipe"]: {"metrics": r["metrics"], "views": r["views"]} for r in coverage_dict["recipes"].values()
    }
    reference = coverage_dict["reference"]
    result = verdict(
        recipes_cov,
        reference,
        training["recipes"] if training else None,
        seed=settings.seed,
        supervised=coverage.supervised,
        n_heldout=len(data.heldout),
        encoder=coverage.encoder,
        leakage=issues.summary["leakage"],
        proxied=proxy["recipes"] if proxy else None,
        shift=issues.summary.get("shift"),
    )
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "run_id": plan.run_id,
        "densify_version": __version__,
        "settings": {**plan.identity, "extra": settings.extra},
        "data": {**summarise(data), "spec": settings.data, "fingerprint": plan.data_fingerprint},
        "encoder": coverage_dict["encoder"],
        "recipes": {
            r.name: {
                "intent": r.intent,
                "source": str(r.source) if r.source else None,
                "albumentations": to_albumentations(r, settings.strength),
            }
            for r in plan.recipes
        },
        "reference": reference,
        "coverage": recipes_cov,
        "training": training,
        **({"proxy": proxy} if proxy else {}),
        "verdict": result,
        "manifold": coverage_dict["manifold"],
        "search": coverage_dict["search"],
        "data_quality": report_section(issues),
        "versions": _versions(),
        "environment": {**_environment(), "view_workers": workers, **_training_environment(settings, jobs)},
        "timings": {**{k: round(v, 2) for k, v in timings.items()}, **coverage_dict["timings"]},
    }
    return report, coverage.samples, issues


def _data_quality(plan: AuditPlan, state: Path, note: Progress):
    """The data issues of the audited data, in label-free features (the audit's own encoder learns the given
    labels, errors included, and would hide them: benchmarks/data_quality/detect.py)."""
    from densify.estimate import clean_embeddings
    from densify.quality import DEFAULT_ENCODER
    from densify.quality._issues import STREAM_BYTES, issues_of_embedded

    note("data quality", 0, 1)
    issues = issues_of_embedded(
        plan.data,
        lambda: clean_embeddings(
            plan.data,
            encoder=DEFAULT_ENCODER,
            seed=plan.settings.seed,
            cache_dir=state / "cache",
            stream_bytes=STREAM_BYTES,
        ),
        seed=plan.settings.seed,
    )
    note("data quality", 1, 1)
    return replace(issues, settings={"encoder": DEFAULT_ENCODER, **issues.settings})


def _training_environment(settings: AuditSettings, jobs: int | None) -> dict[str, Any]:
    """How the training ran: runs at once and torch threads per run (a run's numbers depend on the latter)."""
    if not (settings.train or settings.proxy):
        return {}
    from densify._torch import train_threads
    from densify.train._jobs import check_jobs, default_jobs

    return {
        "train_jobs": default_jobs() if jobs is None else check_jobs(jobs),
        "train_threads": train_threads(),
    }


def _train(plan: AuditPlan, state: Path, note: Progress, jobs: int | None = None) -> dict[str, Any]:
    from densify._progress import run_progress
    from densify.train import TrainConfig, train_recipes

    settings = plan.settings
    config = TrainConfig(steps=settings.steps, batch=settings.batch, model=settings.model)
    summaries = train_recipes(
        plan.data,
        plan.recipes,
        range(settings.seeds),
        config,
        strength=settings.strength,
        out=state / "train",
        progress=run_progress(note, len(plan.recipes) * settings.seeds),
        jobs=jobs,
    )
    return {
        "config": asdict(config),
        "seeds": list(range(settings.seeds)),
        "recipes": {s.recipe: _strip_runs(s.to_dict()) for s in summaries},
    }


def _proxy(plan: AuditPlan, state: Path, note: Progress, jobs: int | None = None) -> dict[str, Any]:
    """The fine-tune proxy of every audited recipe (the cheap confirmation), with its cost in optimiser steps."""
    from densify._progress import run_progress
    from densify.train import TrainConfig, finetune_recipes

    settings = plan.settings
    config = TrainConfig(steps=settings.steps, batch=settings.batch, model=settings.model)
    seeds = range(settings.seeds)
    result = finetune_recipes(
        plan.data,
        plan.recipes,
        seeds,
        config,
        strength=settings.strength,
        out=state / "proxy",
        progress=run_progress(note, 1 + len(plan.recipes) * settings.seeds),
        jobs=jobs,
    )
    full = len(plan.recipes) * settings.seeds * settings.steps
    return {
        "seeds": list(seeds),
        "base_steps": result.base_steps,
        "finetune_steps": result.finetune_steps,
        "steps": result.steps(),
        "full_steps": full,
        "step_ratio": result.steps() / full,
        "recipes": {s.recipe: _strip_runs(s.to_dict()) for s in result.summaries},
    }


def _strip_runs(summary: dict[str, Any]) -> dict[str, Any]:
    """A trained summary without per-run timings (so a resumed audit writes the same numbers)."""
    summary = dict(summary)
    summary["runs"] = [
        {k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in summary["runs"]
    ]
    return summary


def metrics_csv(report: dict[str, Any]) -> str:
    """A row per recipe: every coverage metric (value, low, high), trained accuracy and gain, and flags (and the
    fine-tune proxy's gain when the audit ran it)."""
    metrics = sorted({m for r in report["coverage"].values() for m in r["metrics"]})
    header = ["recipe"] + [f"{m}{s}" for m in metrics for s in ("", "_low", "_high")]
    header += ["accuracy", "accuracy_low", "accuracy_high", "gain", "gain_low", "gain_high", "loss_ratio"]
    header += [f"predictor_{p}" for p in PREDICTORS] + ["flags"]
    header += ["data_multiplier_coverage", "data_multiplier_distance"]
    proxied = (report.get("proxy") or {}).get("recipes")
    header += ["proxy_gain"] if proxied else []  # the fine-tune proxy's mean gain (audits run with it only)
    multipliers = (report.get("manifold") or {}).get("multipliers", {})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    trained = (report.get("training") or {}).get("recipes", {})
    v = report["verdict"]
    for name, r in report["coverage"].items():
        row: list[Any] = [name]
        for m in metrics:
            d = r["metrics"].get(m) or {}
            row += [d.get("value"), d.get("low"), d.get("high")]
        t = trained.get(name) or {}
        acc, gain = t.get("accuracy") or {}, t.get("gain_over_none") or {}
        row += [
            acc.get("mean"),
            acc.get("low"),
            acc.get("high"),
            gain.get("mean"),
            gain.get("low"),
            gain.get("high"),
        ]
        row += [t.get("loss_ratio")]
        row += [v["predictor_values"][p][name] for p in PREDICTORS]
        row += [";".join(sorted(v["flags"][name]))]
        m = multipliers.get(name) or {}
        row += [m.get("coverage"), m.get("distance")]
        if proxied:
            row += [((proxied.get(name) or {}).get("gain_over_none") or {}).get("mean")]
        writer.writerow(["" if x is None else x for x in row])
    return buffer.getvalue()


def render_bundle(report, data, augmenters, samples, issues=None) -> dict[str, bytes]:
    """Every file of the bundle except ``report.json``: metrics.csv, data-issues.csv (with ``issues``, a
    :class:`~densify.quality.DataIssues`), plots/*.png and report.html."""
    from densify import plots
    from densify.audit._html import render_html
    from densify.preview import png_bytes, preview_grid

    files: dict[str, bytes] = {"metrics.csv": metrics_csv(report).encode()}
    if issues is not None:
        files["data-issues.csv"] = issues.to_csv().encode()
        grid = plots.data_issue_examples(report, data)
        if grid is not None:
            files["plots/data-issues.png"] = grid
    figures = plots.audit_figures(report, samples)
    for name, png in figures.items():
        files[f"plots/{name}.png"] = png
    settings = report["settings"]
    for augmenter in augmenters:
        grid = preview_grid(
            data.train, augmenter, rows=4, views=6, seed=settings["seed"], max_side=SAMPLE_TILE
        )
        files[f"plots/samples-{augmenter.recipe.name}.png"] = png_bytes(grid)
    files["report.html"] = render_html(
        report, {k: v for k, v in files.items() if k.endswith(".png")}
    ).encode()
    return files

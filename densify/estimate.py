"""One coverage estimate: views of each recipe, embeddings (cached), and every coverage metric per recipe.

This is the library function behind ``densify coverage``; ``densify evaluate`` builds on it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from densify._catalogue import CATALOGUE
from densify._hash import digest
from densify._version import __version__
from densify.coverage import Metric, prepare_baseline, recipe_metrics
from densify.coverage._knn import search_log, search_mode, search_settings
from densify.data import DataSplits, ImageSet
from densify.data._working import ImageSize, at_working_size
from densify.embed import DEFAULT_ENCODER, Encoder, get_encoder
from densify.embed._base import Classifier, LearnsFromViews, Stateful
from densify.embed._cache import ArrayCache, default_cache_dir
from densify.errors import CoverageError, DensifyError
from densify.manifold import ManifoldReport, manifold_diagnostics

VIEW_BATCH = 2048
#: part of every cached metrics key: a new metric in the catalogue recomputes cached metrics instead of reusing them
METRIC_NAMES = ",".join(m.name for m in CATALOGUE)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class CoverageResult:
    """The coverage metrics of one recipe (see ``densify.coverage.recipe_metrics``) and how they were obtained."""

    recipe: str
    strength: float
    metrics: dict[str, Metric]
    classes: tuple[str, ...]
    seconds: float = 0.0
    pipeline: list = field(default_factory=list)
    views: dict = field(default_factory=dict)  # densify.coverage.view_health of a sample of its views

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "strength": self.strength,
            "seconds": round(self.seconds, 3),
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "views": self.views,
            "pipeline": self.pipeline,
        }


@dataclass(frozen=True)
class CoverageRun:
    """Every recipe's :class:`CoverageResult` plus the settings and provenance needed to reproduce them."""

    data: str
    data_fingerprint: str
    encoder: str
    encoder_fingerprint: str
    k: int
    views: int
    seed: int
    classes: tuple[str, ...]
    n_train: int
    n_heldout: int
    results: list[CoverageResult]
    timings: dict[str, float]
    cache: dict[str, int]
    reference: dict[str, Metric] = field(default_factory=dict)
    supervised: bool = False  # the encoder was fitted to the training labels (it has a classification head)
    samples: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    #: the clean embeddings of every training and held-out image ("train", "heldout"), rows in the splits' order
    clean: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    manifold: ManifoldReport | None = None
    search: dict[str, Any] = field(
        default_factory=dict
    )  # k-NN search mode and each approximate search's error

    def to_dict(self) -> dict[str, Any]:
        return {
            "densify_version": __version__,
            "data": {
                "spec": self.data,
                "fingerprint": self.data_fingerprint,
                "n_train": self.n_train,
                "n_heldout": self.n_heldout,
                "classes": list(self.classes),
            },
            "encoder": {
                "name": self.encoder,
                "fingerprint": self.encoder_fingerprint,
                "supervised": self.supervised,
            },
            "k": self.k,
            "views": self.views,
            "seed": self.seed,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "cache": self.cache,
            "reference": {name: m.to_dict() for name, m in self.reference.items()},
            "recipes": {r.recipe: r.to_dict() for r in self.results},
            "manifold": None if self.manifold is None else self.manifold.to_dict(),
            "search": self.search,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


def nearest_centroid_predict(
    train: np.ndarray, labels: np.ndarray, x: np.ndarray, n_classes: int
) -> np.ndarray:
    """Labels of ``x`` by the nearest class centroid of ``train`` (the classifier of encoders without a head)."""
    centroids = np.stack(
        [
            train[labels == c].mean(axis=0) if (labels == c).any() else np.full(train.shape[1], np.inf)
            for c in range(n_classes)
        ]
    )
    if len(x) > CENTROID_BLOCK:  # rows are independent: by blocks, without (N, d) temporaries of every view
        return np.concatenate(
            [
                _nearest_centroid(x[start : start + CENTROID_BLOCK], centroids)
                for start in range(0, len(x), CENTROID_BLOCK)
            ]
        )
    return _nearest_centroid(x, centroids)


#: views classified by nearest centroid at a time
CENTROID_BLOCK = 1 << 16


def _nearest_centroid(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    # an empty class's centroid is inf: its NaN distances become inf below
    with np.errstate(invalid="ignore"):
        d = (x**2).sum(1)[:, None] - 2 * x @ centroids.T + (centroids**2).sum(1)[None, :]
    return np.nan_to_num(d, nan=np.inf).argmin(axis=1)


def _metrics_to_arrays(metrics: dict[str, Metric]) -> dict[str, np.ndarray]:
    return {n: np.array([m.value, m.low, m.high, *m.per_class], dtype=np.float64) for n, m in metrics.items()}


def _metrics_from_arrays(arrays: dict[str, np.ndarray]) -> dict[str, Metric]:
    return {
        n: Metric(float(a[0]), float(a[1]), float(a[2]), tuple(float(v) for v in a[3:]))
        for n, a in arrays.items()
    }


def _sample(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` rows of ``x``, a seeded random subset in their original order."""
    if len(x) <= n:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]


class _Embedder:
    """Encodes image arrays through the cache, returning embeddings and (when the encoder has a head) predictions.

    ``collective`` (under ``torchrun``, see ``densify._dist``): every rank calls each method together; rank 0 looks
    the key up in the cache, each rank encodes its share (every world-th batch of ``VIEW_BATCH`` images, a multiple
    of the encoders' own batch, so each image is encoded in the same batch as in one process), and rank 0
    assembles, caches and returns the arrays while the other ranks get (None, None). Only rank 0 touches the cache.
    """

    def __init__(self, encoder, cache: ArrayCache, collective: bool = False) -> None:
        from densify._dist import rank, world_size

        self.encoder, self.cache = encoder, cache
        self.has_head = isinstance(encoder, Classifier)
        self.rank, self.world = (rank(), world_size()) if collective else (0, 1)

    def _lookup(self, key: str) -> tuple[dict | None, bool]:
        """(rank 0's cache entry, whether the ranks must compute it)."""
        from densify._dist import broadcast

        hit = self.cache.get(key) if self.rank == 0 else None
        return hit, (broadcast(hit is None) if self.world > 1 else hit is None)

    def _encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.has_head:
            e, p = self.encoder.encode_and_predict(images)
            return np.asarray(e, dtype=np.float32), p
        return np.asarray(self.encoder.encode(images), dtype=np.float32), None

    def _gather(self, parts: list) -> list | None:
        from densify._dist import gather

        shards = gather(parts) if self.world > 1 else [parts]
        return None if shards is None else [part for shard in shards for part in shard]

    def __call__(self, key: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        hit, compute = self._lookup(key)
        if not compute:
            return (None, None) if hit is None else (hit["embeddings"], hit.get("predictions"))
        step = len(images) if self.world == 1 else VIEW_BATCH  # alone: one call, as before sharding existed
        starts = range(0, len(images), max(step, 1))[self.rank :: self.world]
        parts = self._gather([(start, *self._encode(images[start : start + step])) for start in starts])
        if parts is None:
            return None, None
        parts.sort(key=lambda part: part[0])
        # one part (a single process): the encoder's own array, not a copy of it
        arrays = {"embeddings": parts[0][1] if len(parts) == 1 else np.concatenate([e for _, e, _ in parts])}
        if self.has_head:
            arrays["predictions"] = (
                parts[0][2] if len(parts) == 1 else np.concatenate([p for _, _, p in parts])
            )
        self.cache.put(key, arrays)
        return arrays["embeddings"], arrays.get("predictions")

    def views(self, key: str, batches, train: ImageSet, views: int, t_emb, t_pred):
        """Embeddings (and predictions) of a recipe's views from ``batches``, this rank's (first row, uint8
        views) pairs; a view identical to its source image gets the source's embedding (an image's embedding
        must not depend on the batch it was encoded in: BLAS blocking would otherwise make ``none`` differ from
        the clean set in the last bits)."""
        hit, compute = self._lookup(key)
        if not compute:
            return (None, None) if hit is None else (hit["embeddings"], hit.get("predictions"))
        parts = []
        for start, batch in batches:
            rows = np.arange(start, start + len(batch))
            fresh = ~(batch == train.images[rows // views]).reshape(len(batch), -1).all(axis=1)
            if fresh.any():
                parts.append((rows[fresh], *self._encode(batch[fresh])))
        parts = self._gather(parts)
        if parts is None:
            return None, None
        sources = np.repeat(np.arange(len(train)), views)
        embeddings = np.asarray(t_emb, dtype=np.float32)[sources]
        predictions = np.asarray(t_pred, dtype=np.int64)[sources] if self.has_head else None
        for rows, e, p in parts:
            embeddings[rows] = e
            if predictions is not None:
                predictions[rows] = p
        arrays = {"embeddings": embeddings}
        if predictions is not None:
            arrays["predictions"] = predictions
        self.cache.put(key, arrays)
        return embeddings, predictions


def view_batches(train: ImageSet, augmenter, views: int, batch: int = VIEW_BATCH, workers: int = 0):
    """uint8 batches of the views, in order (image 0 view 0, image 0 view 1, ...), each a pure function of
    (seed, epoch 0, index, view). With ``workers`` > 0 they are made by a torch DataLoader's worker processes
    (the batches come back in order, so the views are the same whatever the worker count)."""
    for _, images in numbered_view_batches(train, augmenter, views, batch, workers):
        yield images


def numbered_view_batches(
    train: ImageSet, augmenter, views: int, batch: int = VIEW_BATCH, workers: int = 0, shard: tuple = (0, 1)
):
    """(first row, uint8 views) of every ``shard[1]``-th batch of :func:`view_batches` from the ``shard[0]``-th:
    one rank's share of the views under ``torchrun`` (all of them by default)."""
    total = len(train) * views
    rank, world = shard
    ranges = [range(start, min(start + batch, total)) for start in range(0, total, batch)][rank::world]
    if workers == 0:
        for rows in ranges:
            yield rows.start, _views_of(train, augmenter, views, rows)
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _ViewBatches(train, augmenter, views, ranges), batch_size=None, num_workers=workers, prefetch_factor=2
    )
    for rows, images in zip(ranges, loader, strict=True):
        yield rows.start, images.numpy() if hasattr(images, "numpy") else images


def _views_of(train: ImageSet, augmenter, views: int, rows: range) -> np.ndarray:
    index, view = np.divmod(np.arange(rows.start, rows.stop), views)
    return augmenter.views_of(train, index, view)  # augmented as stored, at the working size


class _ViewBatches:
    """A map-style dataset whose item i is the i-th batch of views (one task per worker per batch)."""

    def __init__(self, train: ImageSet, augmenter, views: int, ranges: list[range]) -> None:
        self.train, self.augmenter, self.views, self.ranges = train, augmenter, views, ranges

    def __len__(self) -> int:
        return len(self.ranges)

    def __getitem__(self, i: int) -> np.ndarray:
        return _views_of(self.train, self.augmenter, self.views, self.ranges[i])


#: views checked per recipe by ``view_health`` (the first images' views: the same views the metrics use)
HEALTH_VIEWS = 512


def check_views(train: ImageSet, augmenter, views: int, n: int = HEALTH_VIEWS) -> dict:
    """``densify.coverage.view_health`` of the first ``n`` views of ``augmenter`` (views are pure functions of
    (seed, index, view), so these are exactly views the metrics embed)."""
    from densify.coverage import view_health

    images = train.images
    count = min(n, len(train) * views)
    index, view = np.divmod(np.arange(count), views)
    out = augmenter.views_of(train, index, view)
    value_range = (int(images.min()), int(images.max())) if len(images) else (0, 255)
    return view_health(out, images[index], value_range)


def estimate_coverage(
    data: DataSplits,
    recipes: Sequence[str],
    *,
    encoder: str | Encoder = DEFAULT_ENCODER,
    weights: str | Path | None = None,
    views: int = 2,
    k: int = 5,
    seed: int = 0,
    strength: float = 1.0,
    cache_dir: str | Path | bool | None = True,
    n_boot: int = 1000,
    progress: Progress | None = None,
    samples: int = 0,
    image_size: ImageSize = None,
    workers: int = 0,
    search: str = "auto",
) -> CoverageRun:
    """Embed clean, augmented and held-out images and compute every coverage metric for each recipe.

    Args:
        data: the dataset; the encoder is fitted on ``data.train`` only.
        recipes: recipe names or files.
        encoder: ``reference+views`` (default: the reference CNN trained on the clean split plus views of every
            recipe in ``recipes``, so none is unseen; the predictor study's choice), ``reference`` (clean split only), ``random-cnn``, ``pixels``, ``pixels:pcaN``, ``torchvision:NAME``, or an
            :class:`~densify.embed.Encoder` instance (not yet fitted).
        weights: local weights file for ``torchvision:NAME``.
        views: augmented views per training image.
        k: neighbourhood size of every k-NN statistic.
        seed: seeds the encoder, the views and the bootstrap.
        strength: scales every recipe's magnitudes.
        cache_dir: embedding cache folder; True for the default (``$DENSIFY_CACHE`` or ``~/.cache/densify``),
            False or None to disable.
        progress: called as ``progress(stage, done, total)``.
        samples: keep a seeded sample of at most this many embeddings of the clean, held-out and each recipe's
            views in ``CoverageRun.samples`` (for projections); 0 keeps none.
        image_size: bring ``data`` to this working size first (:func:`densify.data.at_working_size`); None
            (default) uses ``data`` as given (``load_data`` has already applied its ``image_size``).
        search: k-NN search: ``auto`` (exact below ``densify.coverage.APPROX_MIN_BASE`` base points, an
            approximate inverted-file index from there up), ``exact`` or ``approximate``; every approximate search
            measures its error on a sample of its queries, reported in ``CoverageRun.search``.
        workers: processes that generate the views (a torch DataLoader's workers; 0: in this process). The
            views, and so every metric, are the same with any number of workers.

    Embeddings and each recipe's metrics are cached under keys that hold exactly what they depend on: views
    depend on the training images (not the held-out ones), metrics on the views, held-out set, k, n_boot and seed.
    ``CoverageRun.reference`` holds what real unseen images score: the fidelity (PRDC precision) of the held-out
    set against the training set, and the encoder's held-out / training accuracy ratio (label consistency).
    """
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise CoverageError(f"views must be a positive integer, got {views!r}")
    if not recipes:
        raise CoverageError("no recipes to estimate")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise CoverageError(f"workers must be a non-negative integer, got {workers!r}")
    from densify._dist import broadcast, init_from_env

    rank, world = init_from_env()  # under torchrun: shard the embeddings, rank 0 computes the metrics
    with search_mode(search):
        search_log(reset=True)
        run = _estimate(data, recipes, encoder, weights, views, k, seed, strength, cache_dir, n_boot, progress,
                        samples, image_size, workers, (rank, world))  # fmt: skip
        if run is not None:
            run.search.update(mode=search, approximate_from=search_settings()["min_base"],
                              approximate=search_log(reset=True))  # fmt: skip
    return broadcast(run) if world > 1 else run


def _checked(encoder) -> Encoder:
    """``encoder`` if it follows the Encoder protocol, else a one-line EncoderError naming what it lacks."""
    from densify.embed import ENCODERS
    from densify.errors import EncoderError

    missing = [m for m in ("name", "fit", "encode", "fingerprint") if not hasattr(encoder, m)]
    if missing:
        raise EncoderError(
            f"encoder must be a name ({', '.join(ENCODERS)}) or an object with name, fit(train), encode(images) "
            f"and fingerprint() (densify.Encoder); {type(encoder).__name__} has no {', '.join(missing)}"
        )
    return encoder


def _estimate(data, recipes, encoder, weights, views, k, seed, strength, cache_dir, n_boot, progress, samples,
              image_size, workers, shard=(0, 1)) -> CoverageRun | None:  # fmt: skip
    """estimate_coverage's body, under its search mode. Under ``torchrun`` (``shard`` = (rank, world)) every rank
    encodes its share of the images and views, and rank 0 alone computes the metrics (the others return None)."""
    from densify._dist import broadcast
    from densify.loader import load_recipe

    rank, world = shard
    main = rank == 0

    augmenters = [
        load_recipe(r, strength=strength, seed=seed, output="numpy") for r in recipes
    ]  # validate first
    # a recipe that cannot work on these images fails now, not after the encoder fit
    for augmenter in augmenters:
        augmenter.check_shape(data.train.source_shape)
    for name, split in (
        ("training", data.train),
        ("held-out", data.heldout),
    ):  # before the (slow) encoder fit
        if isinstance(k, int) and len(split) <= k:
            raise CoverageError(f"the {name} set has {len(split)} points; k={k} needs more than k")
    if image_size is not None:
        data = at_working_size(data, image_size)
    cache = ArrayCache(default_cache_dir() if cache_dir is True else (cache_dir or None))
    note = progress or (lambda stage, done, total: None)
    timings: dict[str, float] = {}
    train, held = data.train, data.heldout
    n_classes = len(data.classes)
    train_fp, data_fp = _fingerprints(data)

    start = time.perf_counter()
    enc = get_encoder(encoder, seed=seed, weights=weights) if isinstance(encoder, str) else _checked(encoder)
    note("fit encoder", 0, 1)
    stepped = hasattr(enc, "on_step")
    if stepped:  # an encoder trained in steps reports them
        enc.on_step = lambda done, total: note("fit encoder", done, total)
    _fit_encoder(enc, train, augmenters, strength, cache, collective=world > 1)
    if stepped:
        enc.on_step = None
    else:
        note("fit encoder", 1, 1)
    timings["fit_encoder"] = time.perf_counter() - start
    embed = _Embedder(enc, cache, collective=world > 1)
    fp = enc.fingerprint()

    start = time.perf_counter()
    train_key, heldout_key = _clean_keys(fp, train_fp, data_fp)
    t_emb, t_pred = embed(train_key, train.images)
    h_emb, h_pred = embed(heldout_key, held.images)
    if (
        not main
    ):  # the other ranks only encode their shares of each recipe's views (rank 0 alone uses cache keys)
        for augmenter in augmenters:
            if broadcast(None):  # rank 0: are this recipe's views needed?
                batches = numbered_view_batches(train, augmenter, views, workers=workers, shard=shard)
                embed.views("", batches, train, views, None, None)
        return None
    base = prepare_baseline(t_emb, train.labels, h_emb, held.labels, k, n_classes)
    if t_pred is None:
        t_pred = nearest_centroid_predict(t_emb, train.labels, t_emb, n_classes)
    if h_pred is None:
        h_pred = nearest_centroid_predict(t_emb, train.labels, h_emb, n_classes)
    clean_correct = t_pred == train.labels
    reference = _reference_metrics(base, h_pred == held.labels, clean_correct, n_boot, seed)
    kept = (
        {"train": _sample(t_emb, samples, seed), "heldout": _sample(h_emb, samples, seed)} if samples else {}
    )
    if samples:
        kept["train_labels"] = _sample(train.labels, samples, seed)
        kept["heldout_labels"] = _sample(held.labels, samples, seed)
    timings["baseline"] = time.perf_counter() - start
    start = time.perf_counter()
    note("manifold", 0, 1)
    manifold = manifold_diagnostics(
        t_emb,
        train.labels,
        h_emb,
        held.labels,
        data.classes,
        k=k,
        seed=seed,
        n_boot=n_boot,
        images=train.images,
        radii=base.heldout_radii,
        log_floor=base.log_floor,
    )
    note("manifold", 1, 1)
    timings["manifold"] = time.perf_counter() - start

    results = []
    sources = np.repeat(np.arange(len(train)), views)
    for i, augmenter in enumerate(augmenters):
        start = time.perf_counter()
        name = augmenter.recipe.name
        exported = _exported(augmenter.recipe, strength)
        key = digest("views", fp, train_fp, json.dumps(exported, sort_keys=True), strength, views, seed)
        metrics_key = digest("metrics", key, heldout_key, k, n_boot, seed, __version__, METRIC_NAMES,
                             sorted(search_settings().items()))  # fmt: skip
        note(f"views of {name}", i, len(augmenters))
        cached = cache.get(metrics_key)
        if cached is not None:
            metrics = _metrics_from_arrays(cached)
        need_views = cached is None or bool(samples)
        if world > 1:
            need_views = broadcast(need_views)  # the other ranks wait for this answer
        if need_views:
            batches = numbered_view_batches(train, augmenter, views, workers=workers, shard=shard)
            a_emb, a_pred = embed.views(key, batches, train, views, t_emb, t_pred)
        if cached is None:
            if a_pred is None:
                a_pred = nearest_centroid_predict(t_emb, train.labels, a_emb, n_classes)
            metrics = recipe_metrics(
                base,
                a_emb,
                sources,
                view_correct=a_pred == train.labels[sources],
                clean_correct=clean_correct,
                n_boot=n_boot,
                seed=seed,
            )
            cache.put(metrics_key, _metrics_to_arrays(metrics))
        if samples:
            kept[f"views:{name}"] = _sample(a_emb, samples, seed)
            kept[f"views_labels:{name}"] = _sample(train.labels[sources], samples, seed)
        results.append(
            CoverageResult(
                name,
                strength,
                metrics,
                data.classes,
                time.perf_counter() - start,
                exported["transform"]["transforms"],
                check_views(train, augmenter, views),
            )
        )
        note(f"views of {name}", i + 1, len(augmenters))
    timings["recipes"] = sum(r.seconds for r in results)
    start = time.perf_counter()
    factor_space = _factor_space(data, augmenters, views, k)
    if factor_space is not None:
        timings["factor_space"] = time.perf_counter() - start
    manifold = manifold.with_recipes(
        {
            r.recipe: (
                r.metrics["coverage_augmented"].value,
                r.metrics["densification"].value,
                np.asarray(r.metrics["coverage_augmented"].per_class, dtype=np.float64),
            )
            for r in results
        },
        factor_space,
    )
    return CoverageRun(
        data=data.name,
        data_fingerprint=data_fp,
        encoder=enc.name,
        encoder_fingerprint=fp,
        supervised=embed.has_head,
        k=k,
        views=views,
        seed=seed,
        classes=data.classes,
        n_train=len(train),
        n_heldout=len(held),
        results=results,
        timings=timings,
        cache={"hits": cache.hits, "misses": cache.misses, "corrupt": cache.corrupt},
        reference=reference,
        samples=kept,
        clean={"train": t_emb, "heldout": h_emb},
        manifold=manifold,
    )


def _factor_space(data: DataSplits, augmenters, views: int, k: int) -> dict[str, dict] | None:
    """For a known-factor (``synth:``) dataset, each recipe's held-out coverage in factor space, the ground truth
    beside the embedding's numbers (:mod:`densify.manifold._factors`); None for real data."""
    from densify.data import parse_spec
    from densify.manifold import factor_coordinates, factor_coverage, view_factors

    train, held = data.train, data.heldout
    if train.factors is None or held.factors is None:
        return None
    try:
        spec = parse_spec(data.name)
    except DensifyError:  # a hand-built DataSplits with factors under another name: nothing to map them by
        return None
    if spec.synth is None:
        return None
    family = spec.synth.family

    def coords(factors: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return factor_coordinates(factors, labels, family, held.factors)

    t, h = coords(train.factors, train.labels), coords(held.factors, held.labels)
    out: dict[str, dict] = {}
    for augmenter in augmenters:
        factors, why = view_factors(train, augmenter, views)
        if factors is None:
            out[augmenter.recipe.name] = {"unknown": why}
            continue
        a = coords(factors, np.repeat(train.labels, views))
        out[augmenter.recipe.name] = {m: round(v, 6) for m, v in factor_coverage(t, a, h, k).items()}
    return out


def clean_embeddings(
    data: DataSplits,
    *,
    encoder: str | Encoder = DEFAULT_ENCODER,
    weights: str | Path | None = None,
    seed: int = 0,
    recipes: Sequence[str] = (),
    strength: float = 1.0,
    cache_dir: str | Path | bool | None = True,
    stream_bytes: int | None = None,
) -> tuple[np.ndarray | EncodedBlocks, np.ndarray]:
    """(train, held-out) embeddings of ``data``'s clean images by ``encoder`` fitted on ``data.train`` (an encoder
    that learns from views sees those of ``recipes``), through the same cache and keys as
    :func:`estimate_coverage`. ``stream_bytes``: when the training embeddings would take more float32 bytes than
    this, they are not computed here (nor cached): the first element is an :class:`EncodedBlocks` that encodes
    them block by block each time it is iterated."""
    from densify.loader import load_recipe

    augmenters = [load_recipe(r, strength=strength, seed=seed, output="numpy") for r in recipes]
    cache = ArrayCache(default_cache_dir() if cache_dir is True else (cache_dir or None))
    enc = get_encoder(encoder, seed=seed, weights=weights) if isinstance(encoder, str) else _checked(encoder)
    _fit_encoder(enc, data.train, augmenters, strength, cache)
    embed = _Embedder(enc, cache)
    train_key, heldout_key = _clean_keys(enc.fingerprint(), *_fingerprints(data))
    h_emb, _ = embed(heldout_key, data.heldout.images)
    if stream_bytes is not None and 4 * len(data.train) * h_emb.shape[1] > stream_bytes:
        return EncodedBlocks(enc, data.train.images, h_emb.shape[1]), h_emb
    t_emb, _ = embed(train_key, data.train.images)
    return t_emb, h_emb


class EncodedBlocks:
    """Embeddings too large to hold, encoded again each time they are read: iterating yields float32 blocks of
    consecutive rows (``rows`` at a time, a multiple of the encoders' batch, so every image is encoded in the same
    batch as by one ``encode`` call of all of them)."""

    def __init__(self, encoder: Encoder, images: np.ndarray, dim: int, rows: int = 8 * VIEW_BATCH) -> None:
        self.encoder, self.images, self.dim, self.rows = encoder, images, int(dim), int(rows)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.images), self.dim)

    def __iter__(self):
        for start in range(0, len(self.images), self.rows):
            yield np.asarray(self.encoder.encode(self.images[start : start + self.rows]), dtype=np.float32)


def _fingerprints(data: DataSplits) -> tuple[str, str]:
    """(training split's, both splits') content digests: what the embedding cache keys know of the data."""
    train_fp = digest(*data.train.fingerprint_parts(), data.classes)
    return train_fp, digest(train_fp, data.heldout.images, data.heldout.labels)


def _clean_keys(encoder_fp: str, train_fp: str, data_fp: str) -> tuple[str, str]:
    """Cache keys of the clean training and held-out embeddings (:func:`estimate_coverage` and
    :func:`clean_embeddings` share them, so either reuses the other's)."""
    return digest("clean", encoder_fp, train_fp, "train"), digest("clean", encoder_fp, data_fp, "heldout")


def _fit_encoder(
    enc: Encoder, train: ImageSet, augmenters, strength: float, cache: ArrayCache, collective: bool = False
) -> None:
    """Fit ``enc`` on the clean training split (plus the recipes' views, for an encoder that wants them), or
    restore its fitted state from the cache. ``collective`` (under ``torchrun``): rank 0 fits (or restores) a
    stateful encoder and broadcasts its state to the other ranks, which never touch the cache."""
    if isinstance(enc, LearnsFromViews) and enc.wants_views and not enc.views_seen:
        descriptor = json.dumps(
            sorted(json.dumps(_exported(a.recipe, strength), sort_keys=True) for a in augmenters)
        )
        enc.see_views([a for a in augmenters if a.recipe.pipeline], descriptor)
    state_key = digest("encoder-state", enc.fingerprint(), digest(*train.fingerprint_parts()))
    if collective and isinstance(enc, Stateful):
        from densify._dist import broadcast, is_main

        if is_main():
            _fit_encoder(enc, train, augmenters, strength, cache)
        state = broadcast(enc.state() if is_main() else None)
        if not is_main():
            enc.load_state(state, train)
        return
    state = cache.get(state_key) if isinstance(enc, Stateful) else None
    if state is not None:
        enc.load_state(state, train)
        return
    enc.fit(train)
    if isinstance(enc, Stateful):
        cache.put(state_key, enc.state())


def _exported(recipe, strength: float) -> dict:
    """The recipe's resolved albumentations pipeline (its identity in cache keys; names and notes excluded)."""
    from densify.recipes import to_albumentations

    exported = to_albumentations(recipe, strength)
    exported.pop("densify", None)
    return exported


def _reference_metrics(base, heldout_correct, clean_correct, n_boot: int, seed: int) -> dict[str, Metric]:
    """What real unseen images score on the view metrics, the yardstick for "on the manifold" and "keeps its
    label": fidelity of the held-out set against the training set, and held-out / training accuracy."""
    from densify.coverage import ball_counts, mean_ci, per_class_means, ratio_ci

    c, y_h = base.n_classes, base.heldout_labels
    inside = ball_counts(base.train, base.heldout, base.k, real_radii_sq=base.train_radii_sq) > 0
    value, low, high = mean_ci(inside, n_boot, seed)
    fidelity = Metric(value, low, high, tuple(float(v) for v in per_class_means(inside, y_h, c)))
    heldout_correct = np.asarray(heldout_correct, dtype=float)
    clean_correct = np.asarray(clean_correct, dtype=float)
    value, low, high = ratio_ci(heldout_correct, clean_correct, n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = per_class_means(heldout_correct, y_h, c) / per_class_means(
            clean_correct, base.train_labels, c
        )
    return {
        "fidelity": fidelity,
        "label_consistency": Metric(value, low, high, tuple(float(v) for v in per_class)),
    }

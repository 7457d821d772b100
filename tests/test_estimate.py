"""estimate_coverage end to end (views -> embeddings -> metrics), its cache, and the densify coverage command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from densify.cli import cli
from densify.data import load_data
from densify.errors import CoverageError
from densify.estimate import estimate_coverage, view_batches
from densify.loader import load_recipe


@pytest.fixture(scope="module")
def small():
    return load_data("fashion-mini", train_size=200, heldout_size=60, seed=1)


def _strip(run_dict):
    run_dict = dict(run_dict)
    run_dict.pop("timings"), run_dict.pop("cache")
    for r in run_dict["recipes"].values():
        r.pop("seconds")
    return run_dict


def test_estimate_is_deterministic_and_cached(small, tmp_path: Path):
    kwargs = dict(encoder="pixels:pca16", views=2, k=3, seed=0, n_boot=100, cache_dir=tmp_path)
    first = estimate_coverage(small, ["none", "flip", "affine-heavy"], **kwargs)
    second = estimate_coverage(small, ["none", "flip", "affine-heavy"], **kwargs)
    # train, held-out and three recipes' metrics (their views are not even read)
    assert second.cache["hits"] == 5 and second.cache["misses"] == 0
    assert _strip(first.to_dict()) == _strip(second.to_dict())
    none = first.results[0].metrics
    assert (
        none["coverage_gain"].value == 0 and none["densification"].value == 0 and none["diversity"].value == 0
    )
    heavy = first.results[2].metrics
    assert heavy["diversity"].value > first.results[1].metrics["diversity"].value > 0
    json.loads(first.to_json())  # strict JSON: no NaN


def test_corrupt_cache_entries_are_recomputed(small, tmp_path: Path):
    kwargs = dict(encoder="random-cnn", views=1, k=3, n_boot=50, cache_dir=tmp_path)
    first = estimate_coverage(small, ["flip"], **kwargs)
    for path in tmp_path.glob("*.npz"):
        path.write_bytes(b"garbage")
    again = estimate_coverage(small, ["flip"], **kwargs)
    assert again.cache["corrupt"] == 4  # train, held-out, the recipe's metrics, then its views
    assert _strip(first.to_dict()) == _strip(again.to_dict())


def test_views_are_the_recipe_views_in_order(small):
    augmenter = load_recipe("affine-light", seed=4, output="numpy")
    (batch,) = list(view_batches(small.train.subset(np.arange(5)), augmenter, views=3))
    assert batch.shape == (15, 28, 28, 1)
    assert np.array_equal(batch[7], augmenter.augment(small.train.images[2], index=2, view=1))


def test_views_and_metrics_are_the_same_with_0_1_and_2_workers(small):
    augmenter = load_recipe("affine-heavy", seed=2, output="numpy")
    serial = np.concatenate(list(view_batches(small.train, augmenter, views=2, batch=64)))
    for workers in (1, 2):
        parallel = np.concatenate(
            list(view_batches(small.train, augmenter, views=2, batch=64, workers=workers))
        )
        assert parallel.dtype == np.uint8 and np.array_equal(serial, parallel)
    kwargs = dict(encoder="pixels:pca16", views=2, k=3, n_boot=50, cache_dir=None)
    a = estimate_coverage(small, ["flip", "affine-heavy"], workers=0, **kwargs)
    b = estimate_coverage(small, ["flip", "affine-heavy"], workers=2, **kwargs)
    assert _strip(a.to_dict()) == _strip(b.to_dict())
    with pytest.raises(CoverageError, match="workers must be a non-negative integer, got -1"):
        estimate_coverage(small, ["flip"], workers=-1, **kwargs)


def test_approximate_search_is_reported_with_its_error(small):
    kwargs = dict(encoder="pixels:pca16", views=2, k=3, n_boot=50, cache_dir=None)
    exact = estimate_coverage(small, ["affine-heavy"], search="exact", **kwargs)
    approx = estimate_coverage(small, ["affine-heavy"], search="approximate", **kwargs)
    assert exact.search == {"mode": "exact", "approximate_from": 200_000, "approximate": []}
    log = approx.search["approximate"]
    assert approx.search["mode"] == "approximate" and log and all(0 <= e["recall"] <= 1 for e in log)
    for name in ("coverage_gain", "densification", "fidelity"):
        assert abs(approx.results[0].metrics[name].value - exact.results[0].metrics[name].value) < 0.05
    with pytest.raises(CoverageError, match="search must be one of"):
        estimate_coverage(small, ["flip"], search="fast", **kwargs)


def test_coverage_command(tmp_path: Path):
    out = tmp_path / "cov.json"
    args = [
        "coverage",
        "--train-size",
        "200",
        "--heldout-size",
        "60",
        "--recipes",
        "flip,vflip",  # one spelling on every command; --recipe flip --recipe vflip still works
        "--encoder",
        "pixels:pca16",
        "-k",
        "3",
        "--cache-dir",
        str(tmp_path / "c"),
        "--json",
        str(out),
        "--per-class",
        "--workers",
        "1",
    ]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert (
        "summary" in result.output and "coverage-gap map" in result.output and "Ankle boot" in result.output
    )
    # the summary's 12 metrics are split over tables that fit 80 columns (one table of them cut off the last)
    from densify._catalogue import SUMMARY

    summary = result.output[result.output.index("summary") : result.output.index("(cov.:")]
    assert all(len(line) <= 80 for line in summary.splitlines()), summary
    headers = [word for line in summary.splitlines() if "recipe" in line for word in line.split()[1:]]
    assert len(headers) >= len(SUMMARY) and {"cov.", "fid.", "cons.", "div."} <= set(headers), summary
    assert (
        "manifold: intrinsic dimension (TwoNN)" in result.output
        and "coverage-equivalent real data" in result.output
    )
    report = json.loads(out.read_text())
    assert set(report["recipes"]) == {"flip", "vflip"} and report["k"] == 3
    flip = report["recipes"]["flip"]["metrics"]
    assert {"coverage_gain", "densification", "fidelity", "label_consistency", "diversity"} <= set(flip)
    assert len(flip["coverage_gain"]["per_class"]) == 10


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--encoder", "resnet"], "unknown encoder 'resnet'"),
        (["-k", "80"], "the held-out set has 60 points; k=80 needs more than k"),
        (["--encoder", "torchvision:resnet18"], "set weights to a torchvision weights name"),
        (["--recipe", "nope"], "unknown recipe 'nope'"),
    ],
)
def test_coverage_command_bad_input(tmp_path: Path, extra, message):
    args = [
        "coverage",
        "--train-size",
        "200",
        "--heldout-size",
        "60",
        "--recipe",
        "flip",
        "--encoder",
        "pixels:pca16",
        "--no-cache",
        *extra,
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.strip().count("\n") == 0


def test_changing_the_heldout_set_reuses_the_views(small, tmp_path: Path):
    """Views depend on the training images only; a new held-out set re-embeds it and recomputes metrics."""
    from densify.data import DataSplits, stratified_subset

    kwargs = dict(encoder="pixels:pca16", views=2, k=3, n_boot=50, cache_dir=tmp_path)
    estimate_coverage(small, ["flip"], **kwargs)
    fewer = DataSplits(
        name="fewer",
        train=small.train,
        heldout=stratified_subset(small.heldout, 40, seed=0),
        source=small.source,
        heldout_origin=small.heldout_origin,
    )
    run = estimate_coverage(fewer, ["flip"], **kwargs)
    # hits: train embeddings and the views; misses: held-out embeddings and the metrics
    assert run.cache == {"hits": 2, "misses": 2, "corrupt": 0}
    assert run.n_heldout == 40


def test_reference_scores_and_samples(small, tmp_path: Path):
    run = estimate_coverage(
        small, ["none", "vflip"], encoder="pixels:pca16", k=3, n_boot=50, cache_dir=tmp_path, samples=30
    )
    assert set(run.reference) == {"fidelity", "label_consistency"}
    assert 0 < run.reference["fidelity"].value <= 1
    assert run.samples["train"].shape == (30, 16) and run.samples["views:vflip"].shape == (30, 16)
    assert run.samples["views_labels:none"].shape == (30,)
    cached = estimate_coverage(
        small, ["none", "vflip"], encoder="pixels:pca16", k=3, n_boot=50, cache_dir=tmp_path, samples=30
    )
    assert np.array_equal(cached.samples["views:vflip"], run.samples["views:vflip"])


def test_reference_plus_views_encoder_sees_every_audited_recipe(small, tmp_path: Path):
    """reference+views trains on clean images and views of the audited recipes; the recipe set is part of its
    identity (a different set is a different encoder), and its training views never reuse the measured epoch."""
    from densify.embed import get_encoder
    from densify.embed._cnn import ReferenceEncoder

    assert get_encoder("reference+views").name == "reference+views"

    def encoder():
        enc = ReferenceEncoder(seed=0, steps=20, batch=16)
        enc.name = "reference+views"
        enc.wants_views = True  # the declared ability (LearnsFromViews), not the name, asks for views
        return enc

    kwargs = dict(k=3, n_boot=50, cache_dir=tmp_path)
    a = estimate_coverage(small, ["none", "vflip"], encoder=encoder(), **kwargs)
    b = estimate_coverage(small, ["none", "flip"], encoder=encoder(), **kwargs)
    plain = ReferenceEncoder(seed=0, steps=20, batch=16)
    c = estimate_coverage(small, ["none", "vflip"], encoder=plain, **kwargs)
    assert a.encoder == "reference+views" and c.encoder == "reference"
    assert len({a.encoder_fingerprint, b.encoder_fingerprint, c.encoder_fingerprint}) == 3
    again = estimate_coverage(small, ["none", "vflip"], encoder=encoder(), **kwargs)
    assert again.encoder_fingerprint == a.encoder_fingerprint
    assert again.results[1].metrics["fidelity"] == a.results[1].metrics["fidelity"]


def test_coverage_gap_map_fits_the_console_with_many_recipes(tmp_path: Path):
    """Eight recipes at 80 columns: the per-class map is split over tables, names and values whole (they were cut
    to "crop-…" and "+0.0…")."""
    names = [
        "flip",
        "crop-pad",
        "affine-light",
        "cutout",
        "elastic",
        "blur-noise",
        "photometric",
        "randaugment",
    ]
    args = ["coverage", "--train-size", "120", "--heldout-size", "40", "--recipes", ",".join(names),
            "--encoder", "pixels:pca16", "-k", "3", "--per-class", "--no-cache"]  # fmt: skip
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    gap_map = result.output[result.output.index("the coverage-gap map") :]
    assert "…" not in gap_map and all(len(line) <= 80 for line in gap_map.splitlines())
    assert all(f" {name} " in gap_map for name in names) and "Ankle boot" in gap_map


def test_a_users_own_encoder_object_is_used_and_a_wrong_one_is_refused(tmp_path):
    """Any object with name, fit, encode and fingerprint is an encoder (the README's example); an object without
    them (a torch module) is one line naming what it lacks, not an AttributeError deep inside."""
    import densify
    from densify.errors import EncoderError

    class Flat:
        name = "flat"

        def fit(self, train):
            self.fitted_on = len(train)
            return self

        def encode(self, images):
            return np.asarray(images, np.float32).reshape(len(images), -1) / 255

        def fingerprint(self):
            return "flat-v1"

    data = densify.load_data("fashion-mini", train_size=120, heldout_size=60)
    enc = Flat()
    mine = densify.estimate_coverage(data, ["flip"], encoder=enc, n_boot=100, cache_dir=tmp_path)
    builtin = densify.estimate_coverage(data, ["flip"], encoder="pixels", n_boot=100, cache_dir=tmp_path)
    assert enc.fitted_on == 120  # fitted on the training split only
    flip = {r.recipe: r for r in mine.results}["flip"].metrics
    assert flip["densification"].value == pytest.approx(
        {r.recipe: r for r in builtin.results}["flip"].metrics["densification"].value, abs=1e-6
    )  # raw pixels / 255 and the pixels encoder embed alike up to scale, which densification does not see
    with pytest.raises(EncoderError, match="object has no name, fit, encode, fingerprint"):
        densify.estimate_coverage(data, ["flip"], encoder=object(), n_boot=100)

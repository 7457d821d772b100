"""Manifold diagnostics: intrinsic-dimension estimators against closed forms and the known-factor families, the
coverage-versus-data curve, its power law and the data multipliers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from densify.data import load_data
from densify.errors import CoverageError
from densify.manifold import (
    coverage_curve,
    data_multiplier,
    dimensions,
    fit_power_law,
    intrinsic_dimension,
    manifold_diagnostics,
    mle_terms,
    nested_subsets,
    pixel_projection,
    twonn_terms,
)


def _poisson_distances(d: int, n: int = 20000, k: int = 20, seed: int = 0) -> np.ndarray:
    """Neighbour distances of a unit-intensity Poisson process in d dimensions: the j-th neighbour's ball volume is
    a sum of j standard exponentials, so T_j = (V_j / omega_d)**(1/d) (omega_d drops out of every ratio)."""
    volumes = np.cumsum(np.random.default_rng(seed).exponential(size=(n, k)), axis=1)
    return volumes ** (1.0 / d)


@pytest.mark.parametrize("d", [1, 3, 6, 10])
def test_estimators_recover_the_dimension_of_a_poisson_process(d):
    distances = _poisson_distances(d)
    for method in ("twonn", "mle"):
        est = intrinsic_dimension(None, method, distances=distances, n_boot=300)
        assert est.value == pytest.approx(d, rel=0.03)
        assert est.low < d < est.high or abs(est.value - d) < 0.02 * d


def test_twonn_is_the_pareto_mle_and_mle_matches_its_formula():
    distances = np.array([[1.0, 2.0, 4.0], [2.0, 3.0, 3.5], [0.5, 0.6, 2.0]])
    assert np.allclose(twonn_terms(distances), np.log([2.0, 1.5, 1.2]))
    terms = mle_terms(distances, 3, 3)  # k = 3: mean_{j<3} log(T_3 / T_j)
    expected = [np.mean(np.log(row[2] / row[:2])) for row in distances]
    assert np.allclose(terms, expected)


def test_uniform_cubes_in_a_larger_space():
    rng = np.random.default_rng(1)
    for d in (2, 4):
        basis = np.linalg.qr(rng.normal(size=(40, d)))[0]
        points = (rng.uniform(size=(3000, d)) @ basis.T).astype(np.float32)
        for method in ("twonn", "mle"):
            assert intrinsic_dimension(points, method, n_boot=100).value == pytest.approx(d, abs=0.4)


def test_duplicates_are_left_out_and_counted():
    rng = np.random.default_rng(2)
    points = rng.normal(size=(200, 3)).astype(np.float32)
    points = np.concatenate([points, points[:10]])
    est = intrinsic_dimension(points, "twonn", n_boot=50)
    assert est.duplicates == 20 and est.n == 190
    with pytest.raises(CoverageError, match="method"):
        intrinsic_dimension(points, "pca")
    with pytest.raises(CoverageError, match="more than"):
        intrinsic_dimension(points[:15], "mle")


@pytest.mark.parametrize(
    ("spec", "true"),
    [
        ("synth:shapes?train=2000&hue=0&brightness=1&x=0", 3),
        ("synth:shapes?train=4000", 6),
        ("synth:arrows?train=4000", 6),
        ("synth:colours?train=6000", 6),
    ],
)
def test_known_factor_sets_land_within_one_of_the_factor_count(spec, true):
    """The target of the manifold lab: on the pixels' top principal components both estimators land within +-1 of
    the number of varying factors, per class, with 1,000 images per class (docs/manifold-lab.md has the figures at
    other sizes: with 500 per class, six-factor estimates fall to 4.7-5.5, the finite-sample bias both estimators
    share; and why trained encoders' embeddings do not meet the target)."""
    data = load_data(spec)
    assert len(parse := data.train.factor_names) >= 7 and parse[0] == "rotation"
    result = dimensions(pixel_projection(data.train.images), data.train.labels, data.classes, n_boot=100)
    # TwoNN, the primary estimate, meets +-1 everywhere. The MLE's k = 10-20 neighbourhoods reach the edges of the
    # arrows' five bounded factor ranges (rotation there is a +-20 degree jitter, not a circle), which biases it
    # low: 4.8-5.0 for 6 factors, documented in docs/manifold-lab.md rather than tuned away.
    tolerance = {"twonn": 1.0, "mle": 1.25 if "arrows" in spec else 1.0}
    for method in ("twonn", "mle"):
        per_class = [e.value for e in result[method]["per_class"].values()]
        assert all(abs(v - true) <= tolerance[method] for v in per_class), (method, per_class)


@pytest.mark.parametrize("shape", [(1300, 1100), (1100, 1300)])
def test_pixel_projection_by_gram_matrix_matches_the_svd(shape):
    """Above GRAM_FROM rows and columns the projection comes from the smaller Gram matrix's top eigenvectors: the
    same pairwise distances as the full SVD's projection (components are defined up to sign)."""
    from scipy.spatial.distance import pdist

    from densify.manifold import _report

    rng = np.random.default_rng(5)
    low_rank = rng.normal(size=(shape[0], 40)) @ rng.normal(size=(40, shape[1])) + rng.normal(size=shape)
    images = np.clip(128 + 12 * low_rank, 0, 255).astype(np.uint8).reshape(shape[0], shape[1], 1, 1)
    fast = pixel_projection(images)
    x = images.reshape(shape[0], -1).astype(np.float32) / 255.0
    x -= x.mean(axis=0)
    exact = x @ np.linalg.svd(x, full_matrices=False)[2][: _report.PIXEL_COMPONENTS].T
    assert fast.shape == exact.shape == (shape[0], _report.PIXEL_COMPONENTS)
    assert np.allclose(pdist(fast[:300]), pdist(exact[:300]), rtol=1e-4, atol=1e-4)
    assert np.allclose(np.abs(fast), np.abs(exact), atol=1e-3)


def test_pixel_projection_of_many_small_images_by_gram_matrix_matches_the_svd(monkeypatch):
    """Above SVD_MAX_VALUES pixel values the projection comes from the blocked Gram matrix even when the images are
    small (no float copy of every pixel, no SVD factors as tall as the data): the same projection up to sign."""
    from densify.manifold import _report

    rng = np.random.default_rng(6)
    low_rank = rng.normal(size=(9000, 12)) @ rng.normal(size=(12, 64)) + rng.normal(size=(9000, 64))
    images = np.clip(128 + 12 * low_rank, 0, 255).astype(np.uint8).reshape(9000, 8, 8, 1)
    exact = pixel_projection(images)  # 576,000 values: the SVD
    monkeypatch.setattr(_report, "SVD_MAX_VALUES", 100_000)
    fast = pixel_projection(images)
    assert fast.shape == exact.shape == (9000, _report.PIXEL_COMPONENTS) and fast.dtype == np.float32
    np.testing.assert_allclose(np.abs(fast), np.abs(exact), atol=2e-5)


def test_large_groups_are_estimated_on_a_seeded_sample(monkeypatch):
    from densify.manifold import _dimension

    monkeypatch.setattr(_dimension, "MAX_POINTS", 2000)
    rng = np.random.default_rng(3)
    points = (rng.uniform(size=(5000, 3)) @ rng.normal(size=(3, 12))).astype(np.float32)
    labels = np.repeat([0, 1], [4000, 1000])
    result = dimensions(points, labels, ("a", "b"), n_boot=50, seed=1)
    assert result["twonn"]["overall"].n == 2000 and result["twonn"]["per_class"]["a"].n == 2000
    assert result["twonn"]["per_class"]["b"].n == 1000  # below the cap: every point
    assert result["twonn"]["overall"].value == pytest.approx(3, abs=0.4)
    assert dimensions(points, labels, ("a", "b"), n_boot=50, seed=1) == result  # seeded


def test_power_law_fit_and_inverse():
    sizes = np.array([100, 200, 400, 800, 1600])
    law = fit_power_law(sizes, 3.0 * sizes**-0.5, last=None)
    assert (law.a, law.b, law.points) == (pytest.approx(3.0), pytest.approx(0.5), 5)
    assert law.size_for(3.0 * 400**-0.5) == pytest.approx(400)
    assert fit_power_law(sizes, np.array([1.0, 1.0, 0.0, 0.0, 0.5])).points == 1
    assert np.isnan(fit_power_law(sizes, np.ones(5)).size_for(0.1))


def test_nested_subsets_are_nested_stratified_and_seeded():
    labels = np.repeat(np.arange(3), [40, 20, 8])
    subsets = nested_subsets(labels, (0.25, 0.5, 1.0), seed=4)
    for small, large in itertools.pairwise(subsets):
        assert set(small) <= set(large)
    assert np.bincount(labels[subsets[0]]).tolist() == [10, 5, 2]
    assert len(subsets[-1]) == len(labels)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(subsets, nested_subsets(labels, (1.0, 0.5, 0.25), 4), strict=True)
    )
    with pytest.raises(CoverageError):
        nested_subsets(labels, (0.0, 1.0))


def test_coverage_curve_grows_and_is_complete_when_heldout_is_train():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(800, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 800)
    curve = coverage_curve(train, labels, train, labels, k=3, n_classes=4)
    assert curve.coverage[-1] == 1.0 and np.all(np.diff(curve.coverage) >= 0)
    assert np.all(np.diff(curve.log_distance[:-1]) < 0)
    held = rng.normal(size=(400, 4)).astype(np.float32)
    curve = coverage_curve(train, labels, held, rng.integers(0, 4, 400), k=3, n_classes=4)
    assert np.all(np.diff(curve.coverage) >= 0) and 0 < curve.coverage[-1] < 1
    assert curve.distance_fit[1] == pytest.approx(1 / 4, abs=0.08)  # mean log NN distance ~ -log(n) / d
    needs = curve.class_needs(("a", "b", "c", "d"), target=0.99)
    assert all(n["multiple"] is None or n["multiple"] >= 1 for n in needs)
    assert needs[0]["images"] == int((labels == 0).sum())


def test_data_multipliers():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(600, 3)).astype(np.float32)
    labels = rng.integers(0, 2, 600)
    held = rng.normal(size=(300, 3)).astype(np.float32)
    curve = coverage_curve(train, labels, held, rng.integers(0, 2, 300), k=3, n_classes=2)
    s = curve.distance_fit[1]
    m = data_multiplier(curve, curve.coverage[-1], 0.2)
    assert m["coverage"] == 1.0 and m["distance"] == pytest.approx(np.exp(0.2 / s), rel=1e-3)
    better = data_multiplier(curve, min(0.999, curve.coverage[-1] + 0.05), 0.0)
    assert better["coverage"] > 1.0 and better["distance"] == 1.0
    assert data_multiplier(curve, 1.0, 50.0)["beyond"]


def test_manifold_diagnostics_report_is_json_ready():
    import json

    data = load_data("synth:shapes?train=400&heldout=200")
    x = pixel_projection(data.train.images)
    h = pixel_projection(data.heldout.images)
    report = manifold_diagnostics(
        x, data.train.labels, h, data.heldout.labels, data.classes, images=data.train.images, n_boot=50
    )
    report = report.with_recipes(
        {"none": (float(report.curve.coverage[-1]), 0.0, report.curve.class_coverage[-1])}
    )
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert set(d) == {"intrinsic_dimension", "pixel_components", "curve", "multipliers", "factor_space"}
    assert d["multipliers"]["none"] == {"coverage": 1.0, "distance": 1.0, "beyond": False}
    assert [n["class"] for n in d["curve"]["class_needs"]] == list(data.classes)


def test_the_manifold_lab_example_runs(tmp_path):
    """examples/manifold_lab.py end to end, with a short training budget and the cheap pixel encoder."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "manifold_lab.py"
    env = dict(
        os.environ, NO_ALBUMENTATIONS_UPDATE="1", DENSIFY_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg"
    )
    args = ["--out", str(tmp_path / "lab"), "--steps", "10", "--seeds", "1", "--encoder", "pixels:pca16"]
    result = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "lab" / "summary.json").read_text())
    assert set(summary["trained"]) == {"none", "rotate-15", "rotate-180", "hue-50"}
    assert (
        summary["factor_space"]["rotate-180"]["coverage_augmented"]
        > summary["factor_space"]["none"]["coverage_clean"]
    )
    assert (tmp_path / "lab" / "coverage-by-rotation.png").stat().st_size > 1000

"""The coverage metrics against the reference prdc package, brute force, closed forms and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from densify.coverage import (
    heldout_coverage,
    knn,
    knn_vote,
    kth_neighbour_distance,
    mean_ci,
    prdc,
    prepare_baseline,
    recipe_metrics,
)
from densify.errors import CoverageError

prdc_ref = pytest.importorskip("prdc")


def _reference(real, fake, k):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference prints/warns about its own defaults
        return prdc_ref.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)


def _datasets():
    rng = np.random.default_rng(0)
    gauss = (
        rng.standard_normal((300, 8)).astype(np.float32),
        (rng.standard_normal((250, 8)) * 1.2 + 0.3).astype(np.float32),
    )
    centres = rng.standard_normal((5, 16)) * 4
    blobs = tuple(
        (centres[rng.integers(0, 5, n)] + rng.standard_normal((n, 16)) * s).astype(np.float32)
        for n, s in ((400, 0.5), (300, 0.8))
    )
    lattice = tuple(rng.integers(0, 4, (n, 3)).astype(np.float32) for n in (200, 150))  # many exact ties
    dup_real = rng.standard_normal((100, 4)).astype(np.float32)
    dups = (
        np.concatenate([dup_real, dup_real[:40]]),
        np.concatenate([dup_real[:30], rng.standard_normal((60, 4)).astype(np.float32)]),
    )
    far = (
        rng.standard_normal((120, 5)).astype(np.float32),
        (rng.standard_normal((90, 5)) + 50).astype(np.float32),
    )
    return {"gaussian": gauss, "blobs": blobs, "lattice-ties": lattice, "duplicates": dups, "far": far}


DATASETS = _datasets()


@pytest.mark.parametrize("k", [1, 3, 5, 10])
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_prdc_matches_the_reference_package(name, k):
    real, fake = DATASETS[name]
    ours, ref = prdc(real, fake, k), _reference(real, fake, k)
    for key in ("precision", "recall", "density", "coverage"):
        assert getattr(ours, key) == pytest.approx(float(ref[key]), abs=1e-6), key


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_knn_matches_brute_force(name):
    real, fake = DATASETS[name]
    full = np.sqrt(((fake[:, None, :].astype(np.float64) - real[None, :, :]) ** 2).sum(-1))
    dist, idx = knn(fake, real, 4)
    assert np.allclose(dist, np.sort(full, axis=1)[:, :4], atol=1e-9)
    assert np.allclose(np.take_along_axis(full, idx, axis=1), dist, atol=1e-9)
    self_full = np.sqrt(((real[:, None, :].astype(np.float64) - real[None, :, :]) ** 2).sum(-1))
    assert np.allclose(kth_neighbour_distance(real, 3), np.sort(self_full, axis=1)[:, 3], atol=1e-9)


def test_knn_chunks_give_the_same_answer():
    real, fake = DATASETS["blobs"]
    a = knn(fake, real, 5)
    b = knn(fake, real, 5, chunk=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# --- closed forms ------------------------------------------------------------------------------------------------
def test_coverage_of_a_set_by_itself_by_copies_and_by_a_far_set():
    rng = np.random.default_rng(1)
    h = rng.standard_normal((200, 6)).astype(np.float32)
    assert heldout_coverage(h, h, k=3) == 1.0
    assert heldout_coverage(np.concatenate([h, h]), h, k=3) == 1.0
    assert heldout_coverage(h + 100, h, k=3) == 0.0


def _setup(n=300, m=120, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)) * 3
    yt, yh = rng.integers(0, classes, n), rng.integers(0, classes, m)
    t = (centres[yt] + rng.standard_normal((n, d))).astype(np.float32)
    h = (centres[yh] + rng.standard_normal((m, d))).astype(np.float32)
    return t, yt, h, yh


def test_views_that_copy_their_sources_change_nothing():
    t, yt, h, yh = _setup()
    base = prepare_baseline(t, yt, h, yh, k=5)
    sources = np.repeat(np.arange(len(t)), 2)
    m = recipe_metrics(base, t[sources], sources, n_boot=50)
    for name in ("coverage_gain", "densification", "label_coverage_gain", "knn_accuracy_gain", "diversity"):
        assert m[name].value == 0.0, name
    assert m["fidelity"].value == 1.0
    assert m["coverage_augmented"].value == m["coverage_clean"].value


def test_views_far_off_the_manifold():
    t, yt, h, yh = _setup()
    base = prepare_baseline(t, yt, h, yh, k=5)
    sources = np.arange(len(t))
    m = recipe_metrics(base, t + 1000, sources, n_boot=50)
    assert m["fidelity"].value == 0.0 and m["coverage_gain"].value == 0.0 and m["densification"].value == 0.0
    assert m["diversity"].value > 100


def test_views_onto_heldout_points_raise_coverage_to_one():
    t, yt, h, yh = _setup()
    base = prepare_baseline(t, yt, h, yh, k=5)
    sources = np.argmin(
        ((h[:, None] - t[None]) ** 2).sum(-1), axis=1
    )  # each held-out point as a view of some image
    m = recipe_metrics(base, h.copy(), sources, n_boot=50)
    assert m["coverage_augmented"].value == 1.0
    assert m["densification"].value > 1.0


def test_label_consistency_is_the_accuracy_ratio():
    t, yt, h, yh = _setup()
    base = prepare_baseline(t, yt, h, yh, k=5)
    sources = np.arange(len(t))
    view_ok = np.arange(len(t)) % 2 == 0
    m = recipe_metrics(
        base, t + 0.01, sources, view_correct=view_ok, clean_correct=np.ones(len(t), bool), n_boot=50
    )
    assert m["label_consistency"].value == pytest.approx(view_ok.mean())
    assert m["label_consistency"].low < m["label_consistency"].value < m["label_consistency"].high


def test_knn_vote_breaks_ties_toward_the_nearest():
    assert knn_vote(np.array([[2, 1, 1, 2], [0, 0, 1, 1], [1, 1, 1, 0]]), 3).tolist() == [2, 0, 1]


def test_bootstrap_interval_contains_the_mean_and_is_seeded():
    values = np.random.default_rng(0).random(500)
    mean, low, high = mean_ci(values, 400, seed=3)
    assert low < mean < high and (mean, low, high) == mean_ci(values, 400, seed=3)


# --- properties --------------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6), views=st.integers(1, 3), scale=st.floats(0.0, 3.0))
def test_metrics_stay_in_range_and_ignore_row_order(seed, k, views, scale):
    t, yt, h, yh = _setup(n=80, m=40, seed=seed)
    rng = np.random.default_rng(seed)
    sources = np.repeat(np.arange(len(t)), views)
    a = (t[sources] + scale * rng.standard_normal((len(sources), t.shape[1]))).astype(np.float32)
    m = recipe_metrics(prepare_baseline(t, yt, h, yh, k), a, sources, n_boot=20)
    for name in (
        "coverage_clean",
        "coverage_augmented",
        "fidelity",
        "label_coverage_augmented",
        "knn_accuracy_augmented",
    ):
        assert 0.0 <= m[name].value <= 1.0, name
    assert m["densification"].value >= 0 and m["diversity"].value >= 0 and m["coverage_gain"].value >= 0
    ph, pa = rng.permutation(len(h)), rng.permutation(len(a))
    m2 = recipe_metrics(prepare_baseline(t, yt, h[ph], yh[ph], k), a[pa], sources[pa], n_boot=20)
    for name in m:
        assert m2[name].value == pytest.approx(m[name].value, abs=1e-12), name


@settings(max_examples=25, deadline=None)
@given(
    points=hnp.arrays(
        np.float32, st.tuples(st.integers(8, 30), st.just(3)), elements=st.floats(-5, 5, width=32)
    ),
    extra=hnp.arrays(
        np.float32, st.tuples(st.integers(1, 10), st.just(3)), elements=st.floats(-5, 5, width=32)
    ),
)
def test_coverage_is_monotone_when_points_are_added(points, extra):
    held = points[: len(points) // 2 + 4]
    train = points[len(points) // 2 :]
    assert heldout_coverage(np.concatenate([train, extra]), held, k=2) >= heldout_coverage(train, held, k=2)


# --- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t, yt, h, yh: (t[:4], yt[:4], h, yh), "the training set has 4 points; k=5 needs more than k"),
        (lambda t, yt, h, yh: (t, np.zeros_like(yt), h, yh), "single class"),
        (
            lambda t, yt, h, yh: (np.where(np.arange(len(t))[:, None] == 3, np.nan, t), yt, h, yh),
            "1 embedding row",
        ),
        (lambda t, yt, h, yh: (t, yt, h[:0], yh[:0]), "no embeddings"),
        (lambda t, yt, h, yh: (t, yt, h[:, :3], yh), "embedding dimensions differ"),
        (lambda t, yt, h, yh: (t, yt[:-1], h, yh), "expected 300 integer labels"),
    ],
    ids=["n-le-k", "one-class", "nan", "empty-heldout", "dims", "labels"],
)
def test_bad_input(mutate, message):
    with pytest.raises(CoverageError, match=message) as info:
        prepare_baseline(*mutate(*_setup()), k=5)
    assert "\n" not in str(info.value)


def test_prdc_bad_input():
    real, fake = DATASETS["gaussian"]
    with pytest.raises(CoverageError, match="k=5 needs more than k points"):
        prdc(real[:5], fake, 5)
    with pytest.raises(CoverageError, match="inf"):
        prdc(real, np.full_like(fake, np.inf), 5)


def test_multinomial_bootstrap_matches_index_resampling_in_distribution():
    from densify.coverage._bootstrap import boot_means

    values = (np.random.default_rng(0).random(400) < 0.3).astype(float)
    fast = boot_means(values, 4000, seed=1)  # few levels: multinomial path
    rng = np.random.default_rng(2)
    slow = values[rng.integers(0, 400, (4000, 400))].mean(axis=1)
    assert abs(fast.mean() - slow.mean()) < 0.003 and abs(fast.std() - slow.std()) < 0.002


def test_undefined_per_class_values_serialise_as_null():
    import json

    t, yt, h, yh = _setup(classes=3)
    yh = np.where(yh == 2, 0, yh)  # no held-out point of class 2
    m = recipe_metrics(
        prepare_baseline(t, yt, h, yh, k=5, n_classes=3), t + 0.1, np.arange(len(t)), n_boot=20
    )
    encoded = json.loads(json.dumps(m["coverage_gain"].to_dict(), allow_nan=False))
    assert encoded["per_class"][2] is None and encoded["value"] is not None


def test_linear_probe_is_sklearns_ridge_and_adds_nothing_for_identical_views():
    from sklearn.linear_model import Ridge

    from densify.coverage import prepare_baseline, recipe_metrics
    from densify.coverage._probe import RIDGE, fit_probe, standardiser

    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 6)) * [1, 2, 3, 4, 5, 6] + 1.5
    y = rng.integers(0, 3, size=120)
    mean, scale = standardiser(x)
    w, b = fit_probe(x, y, 3, mean, scale)
    ref = Ridge(alpha=RIDGE * len(x)).fit((x - mean) / scale, np.eye(3)[y])
    np.testing.assert_allclose(w, ref.coef_.T, atol=1e-10)
    np.testing.assert_allclose(b, ref.intercept_, atol=1e-10)

    heldout = rng.normal(size=(60, 6)) * [1, 2, 3, 4, 5, 6] + 1.5
    base = prepare_baseline(x, y, heldout, rng.integers(0, 3, size=60), 3, 3)
    same = recipe_metrics(base, np.repeat(x, 2, axis=0), np.repeat(np.arange(120), 2), n_boot=50)
    assert same["probe_accuracy_gain"].value == 0.0
    assert abs(same["probe_margin_gain"].value) < 1e-9


def test_blocked_probe_equals_the_one_pass_probe(monkeypatch):
    from densify.coverage import _probe
    from densify.coverage._probe import fit_probe, standardiser

    rng = np.random.default_rng(5)
    x = (rng.normal(size=(300, 5)) * [1, 3, 0.5, 2, 1] + 2).astype(np.float32)
    views = (rng.normal(size=(500, 5)) * [1, 3, 0.5, 2, 1] + 2).astype(np.float32)
    y = rng.integers(0, 4, size=800)
    mean, scale = standardiser(x)
    one_pass = fit_probe(np.concatenate([x, views]), y, 4, mean, scale)
    assert all(
        np.array_equal(a, b) for a, b in zip(fit_probe([x, views], y, 4, mean, scale), one_pass, strict=True)
    )
    monkeypatch.setattr(_probe, "PROBE_BLOCK", 64)  # 800 rows in blocks of 64, across the two parts' boundary
    blocked = fit_probe([x, views], y, 4, mean, scale)
    for a, b in zip(blocked, one_pass, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_probe_scores_and_prediction_variance_by_blocks_equal_one_pass(monkeypatch):
    from densify.coverage import _probe

    rng = np.random.default_rng(8)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    views = rng.normal(size=(700, 6)).astype(np.float32)
    sources = rng.integers(0, 200, size=700)  # unsorted: the blocks must add in the original order
    mean, scale = _probe.standardiser(x)
    w, b = _probe.fit_probe(x, rng.integers(0, 3, size=200), 3, mean, scale)
    clean = _probe.probe_scores(x, w, b, mean, scale)
    scores = _probe.probe_scores(views, w, b, mean, scale)
    variance = _probe.prediction_variance(clean, scores, sources)
    monkeypatch.setattr(_probe, "PROBE_BLOCK", 64)
    monkeypatch.setattr(_probe, "SCORE_BLOCK", 64)  # 700 views scored in 11 blocks, the last one short
    blocked = _probe.probe_scores(views, w, b, mean, scale)
    np.testing.assert_allclose(blocked, scores, rtol=1e-12, atol=1e-14)
    float64 = views.astype(np.float64)  # float64 rows are standardised in copies, never in place
    assert np.array_equal(_probe.probe_scores(float64, w, b, mean, scale), blocked)
    assert np.array_equal(float64, views.astype(np.float64))
    assert np.array_equal(_probe.prediction_variance(clean, scores, sources), variance, equal_nan=True)


def test_knn_reranked_in_small_blocks_gives_the_same_bits(monkeypatch):
    from densify.coverage import _knn

    rng = np.random.default_rng(11)
    base = rng.normal(size=(900, 12)).astype(np.float32)
    base[5] = base[7]  # an exact tie stays a tie, in the same order
    queries = np.concatenate([rng.normal(size=(300, 12)).astype(np.float32), base[:50]])
    whole = _knn.knn(queries, base, 4)
    self_whole = _knn.knn(base, base, 3, self_query=True)
    monkeypatch.setattr(_knn, "RERANK_VALUES", 5 * 12 * 7)  # 7 rows of 4-5 candidates at a time
    for a, b in zip(_knn.knn(queries, base, 4), whole, strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(_knn.knn(base, base, 3, self_query=True), self_whole, strict=True):
        assert np.array_equal(a, b)


def test_nearest_centroid_by_blocks_gives_the_same_labels(monkeypatch):
    from densify import estimate

    rng = np.random.default_rng(13)
    train, labels = rng.normal(size=(120, 4)).astype(np.float32), rng.integers(0, 3, size=120)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    whole = estimate.nearest_centroid_predict(train, labels, x, 4)  # class 3 is empty: never predicted
    monkeypatch.setattr(estimate, "CENTROID_BLOCK", 48)
    blocked = estimate.nearest_centroid_predict(train, labels, x, 4)
    assert np.array_equal(blocked, whole) and set(whole) <= {0, 1, 2}


def test_view_averages_by_blocks_are_the_same_sums(monkeypatch):
    from densify.coverage import _alignment

    rng = np.random.default_rng(12)
    train, views = rng.normal(size=(40, 3)), rng.normal(size=(300, 3)).astype(np.float32)
    sources = rng.integers(0, 30, size=300)  # samples 30-39 have no views: they keep their own features
    whole = _alignment.view_averages(train, views, sources)
    monkeypatch.setattr(_alignment, "_VIEW_BLOCK", 16)
    assert np.array_equal(_alignment.view_averages(train, views, sources), whole)
    assert np.array_equal(whole[30:], train[30:])


def test_bootstrap_in_fewer_rows_draws_the_same_resamples(monkeypatch):
    from densify.coverage import _bootstrap

    values = np.random.default_rng(2).normal(size=1001)  # many levels: resampled indices
    whole = _bootstrap.boot_means(values, 250, seed=4)
    monkeypatch.setattr(_bootstrap, "_MAX_DRAWN", 3 * 1001 + 5)  # three replicates at a time
    assert np.array_equal(_bootstrap.boot_means(values, 250, seed=4), whole)


def test_class_margins_closed_form_and_none_adds_nothing():
    from densify.coverage import prepare_baseline, recipe_metrics
    from densify.coverage._metrics import class_margins

    ref = np.array([[0.0, 0.0], [4.0, 0.0], [10.0, 0.0]])
    labels = np.array([0, 1, 1])
    points = np.array([[1.0, 0.0], [3.0, 0.0]])
    # point 0 (class 0): own at 1, other at 3 -> +2; point 1 (class 1): own at 1, other at 3 -> +2
    np.testing.assert_allclose(class_margins(points, np.array([0, 1]), ref, labels, 2), [2.0, 2.0])
    # labelled the other way round: -2 each
    np.testing.assert_allclose(class_margins(points, np.array([1, 0]), ref, labels, 2), [-2.0, -2.0])

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(80, 4)), rng.integers(0, 2, size=80)
    base = prepare_baseline(x, y, rng.normal(size=(40, 4)), np.zeros(40, np.int64), 3, 2)
    same = recipe_metrics(base, np.repeat(x, 2, axis=0), np.repeat(np.arange(80), 2), n_boot=50)
    assert same["class_margin_gain"].value == 0.0
    # every held-out point is class 0; views of class-0 images placed on them bring its own class to distance 0 and
    # leave the nearest class-1 sample where it was: every margin grows (or stays, where it was already 0 away)
    src = np.full(40, np.flatnonzero(y == 0)[0])
    moved = recipe_metrics(base, base.heldout.copy(), src, n_boot=50)
    assert moved["class_margin_gain"].low >= 0 and moved["class_margin_gain"].value > 0


def _explicit_alignment(x: np.ndarray, y: np.ndarray, n_classes: int, column: int | None = None) -> float:
    """Centred kernel-target alignment from the n x n matrices (Cortes et al., 2012), the definition itself."""
    target = np.eye(n_classes)[y] if column is None else np.eye(n_classes)[y][:, [column]]
    centre = np.eye(len(x)) - 1.0 / len(x)
    kc, lc = centre @ (x @ x.T) @ centre, centre @ (target @ target.T) @ centre
    return float((kc * lc).sum() / (np.linalg.norm(kc) * np.linalg.norm(lc)))


def test_kernel_alignment_matches_the_n_by_n_definition_and_closed_forms():
    from densify.coverage._alignment import (
        _alignments,
        _one_hot,
        alignment_gain,
        kernel_alignment,
        view_averages,
    )

    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(90, 5)), rng.integers(0, 3, size=90)
    assert kernel_alignment(x, y, 3) == pytest.approx(_explicit_alignment(x, y, 3), rel=1e-12)
    per_class = _alignments(x, _one_hot(y, 3))[1]
    for c in range(3):
        assert per_class[c] == pytest.approx(_explicit_alignment(x, y, 3, c), rel=1e-12)
    # features that are the one-hot labels align perfectly; scaling the features changes nothing
    assert kernel_alignment(np.eye(3)[y], y, 3) == pytest.approx(1.0)
    assert kernel_alignment(7.0 * x, y, 3) == pytest.approx(kernel_alignment(x, y, 3))
    # two classes at +-1 on one axis plus independent noise on another of variance s^2: Kc's Frobenius norm is
    # sqrt(1 + s^4) (eigenvalues n and n s^2, the axes uncorrelated), so A = 1 / sqrt(1 + s^4) exactly when the
    # noise column is made exactly uncorrelated, zero-mean and of variance s^2
    n, s = 200, 0.5
    labels = np.repeat([0, 1], n // 2)
    noise = np.tile([1.0, -1.0, -1.0, 1.0], n // 4) * s  # orthogonal to the label axis and to the constant
    feats = np.column_stack([np.where(labels == 0, -1.0, 1.0), noise])
    assert kernel_alignment(feats, labels, 2) == pytest.approx(1 / np.sqrt(1 + s**4), rel=1e-12)
    # averaging each sample with views that remove the noise raises the alignment to 1
    views = np.column_stack([feats[:, 0], -noise])  # the noise cancels in the average
    assert np.allclose(view_averages(feats, views, np.arange(n))[:, 1], 0.0)
    gain, low, high, pcs = alignment_gain(feats, views, np.arange(n), labels, 2, n_boot=50)
    # standardised first: the noise axis has the label axis' variance, s^2 -> 1 before averaging
    assert gain == pytest.approx(1 - 1 / np.sqrt(2), rel=1e-9) and low <= gain <= high and len(pcs) == 2


def test_alignment_gain_and_prediction_variance_of_identical_and_noisy_views():
    from densify.coverage import prepare_baseline, recipe_metrics

    rng = np.random.default_rng(4)
    centres = rng.normal(size=(3, 8)) * 3
    y = rng.integers(0, 3, size=150)
    x = centres[y] + rng.normal(size=(150, 8))
    h_y = rng.integers(0, 3, size=60)
    base = prepare_baseline(x, y, centres[h_y] + rng.normal(size=(60, 8)), h_y, 3, 3)
    src = np.repeat(np.arange(150), 2)
    same = recipe_metrics(base, x[src], src, n_boot=50)
    assert same["alignment_gain"].value == 0.0 and same["prediction_variance"].value == 0.0
    # views toward their class centre sharpen the classes; views toward another class' centre blur them
    toward = recipe_metrics(base, 0.5 * x[src] + 0.5 * centres[y[src]], src, n_boot=50)
    away = recipe_metrics(base, 0.5 * x[src] + 0.5 * centres[(y[src] + 1) % 3], src, n_boot=50)
    assert toward["alignment_gain"].low > 0 > away["alignment_gain"].high
    assert away["prediction_variance"].value > toward["prediction_variance"].value > 0


def test_alignment_by_blocks_of_rows_equals_one_pass(monkeypatch):
    """Above ``_PARTS_BLOCK`` rows the alignment's Gram matrices are summed over blocks: the same alignments (to
    rounding) with and without weights, and the same gain and interval."""
    from densify.coverage import _alignment

    rng = np.random.default_rng(5)
    x = rng.normal(size=(1000, 6)) + rng.integers(0, 4, 1000)[:, None]
    y = _alignment._one_hot(rng.integers(0, 4, 1000), 4)
    w = rng.integers(0, 3, 1000).astype(np.float64)
    views, sources = (
        x[np.repeat(np.arange(1000), 2)] + rng.normal(size=(2000, 6)),
        np.repeat(np.arange(1000), 2),
    )
    labels = y.argmax(axis=1)
    whole = [_alignment._alignments(x, y), _alignment._alignments(x, y, w)]
    gain = _alignment.alignment_gain(x, views, sources, labels, 4, n_boot=20)
    monkeypatch.setattr(_alignment, "_PARTS_BLOCK", 96)
    for (a, per), (b, per_b) in zip(whole, [_alignment._alignments(x, y), _alignment._alignments(x, y, w)],
                                    strict=True):  # fmt: skip
        assert b == pytest.approx(a, rel=1e-12) and np.allclose(per_b, per, rtol=1e-12)
    blocked = _alignment.alignment_gain(x, views, sources, labels, 4, n_boot=20)
    np.testing.assert_allclose(blocked[:3], gain[:3], rtol=1e-10)
    np.testing.assert_allclose(blocked[3], gain[3], rtol=1e-10)


def test_prediction_variance_closed_form():
    from densify.coverage._probe import prediction_variance

    clean = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    views = np.array([[0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])
    sources = np.array([0, 1, 1])
    # sample 0: outputs (1, 0) and (0, 1): each class varies by 0.25 -> 0.5; sample 1: three equal outputs -> 0
    np.testing.assert_allclose(prediction_variance(clean, views, sources), [0.5, 0.0, np.nan])


def test_alignment_of_wide_features_is_exact_on_their_principal_components(monkeypatch):
    from densify.coverage import _alignment

    rng = np.random.default_rng(8)
    mix = rng.normal(size=(10, 300))  # 300-wide features of rank 10: the top 128 components hold all of them
    y = rng.integers(0, 3, size=200)
    x = (rng.normal(size=(200, 10)) + 2 * np.eye(10)[y]) @ mix
    views = (rng.normal(size=(400, 10)) + 2 * np.eye(10)[np.repeat(y, 2)]) @ mix
    src = np.repeat(np.arange(200), 2)
    projected = _alignment.alignment_gain(x, views, src, y, 3, n_boot=20)
    monkeypatch.setattr(_alignment, "MAX_DIM", 1000)
    direct = _alignment.alignment_gain(x, views, src, y, 3, n_boot=20)
    np.testing.assert_allclose(projected[:3], direct[:3], rtol=1e-8, atol=1e-12)


def test_approximate_search_finds_the_exact_neighbours_and_logs_its_error():
    from densify.coverage import search_log, search_mode, set_search
    from densify.coverage._knn import search_settings

    rng = np.random.default_rng(2)
    centres = rng.normal(size=(20, 16)) * 4
    base = centres[rng.integers(0, 20, 6000)] + rng.normal(size=(6000, 16))
    queries = centres[rng.integers(0, 20, 700)] + rng.normal(size=(700, 16))
    exact = knn(queries, base, 4)
    search_log(reset=True)
    with search_mode("auto", min_base=10_000):  # below the threshold: exact, nothing logged
        assert np.array_equal(knn(queries, base, 4)[1], exact[1]) and search_log() == []
    with search_mode("approximate"):
        approx = knn(queries, base, 4)
        again = knn(queries, base, 4)
    assert search_settings()["mode"] == "auto"  # restored after the block
    (entry, _) = search_log(reset=True)
    assert entry["base"] == 6000 and entry["queries"] == 700 and entry["k"] == 4 and entry["checked"] == 256
    # well-separated clusters: the probed lists hold every true neighbour; distances are exact where found
    assert entry["recall"] == 1.0 and entry["kth_distance_excess"] == 0.0
    assert np.array_equal(approx[1], exact[1]) and np.array_equal(approx[0], exact[0])
    assert np.array_equal(again[1], approx[1])  # deterministic
    with pytest.raises(CoverageError, match="search must be one of auto, exact, approximate, got 'fast'"):
        set_search("fast")


def test_reused_indexes_build_one_index_per_base_and_change_no_result(monkeypatch):
    """Inside ``reused_indexes`` two approximate searches over the same base array share one index; every
    neighbour, distance and logged error equals that of separate indexes (each search calibrates its own scan)."""
    from densify.coverage import _knn, search_log, search_mode

    rng = np.random.default_rng(6)
    centres = rng.normal(size=(30, 12)) * 3
    base = (centres[rng.integers(0, 30, 8000)] + rng.normal(size=(8000, 12))).astype(np.float32)
    near = (centres[rng.integers(0, 30, 600)] + rng.normal(size=(600, 12))).astype(np.float32)
    far = (centres[rng.integers(0, 30, 300)] + 2.0 * rng.normal(size=(300, 12))).astype(np.float32)
    with search_mode("approximate"):
        search_log(reset=True)
        separate = [knn(near, base, 5), knn(far, base, 3), knn(base, base, 4, self_query=True)]
        separate_log = search_log(reset=True)
        built = []
        original = _knn.approximate_index
        monkeypatch.setattr(_knn, "approximate_index", lambda b: built.append(len(b)) or original(b))
        with _knn.reused_indexes():
            shared = [knn(near, base, 5), knn(far, base, 3), knn(base, base, 4, self_query=True)]
        shared_log = search_log(reset=True)
        assert built == [8000] and _knn._reused is None  # one index, let go after the block
        again = knn(near, base, 5)
    assert built == [8000, 8000]  # outside the block every search builds its own
    for (d1, i1), (d2, i2) in zip(separate, shared, strict=True):
        assert np.array_equal(d1, d2) and np.array_equal(i1, i2)
    assert shared_log == separate_log and np.array_equal(again[1], separate[0][1])


def test_approximate_search_scans_a_fixed_number_of_points_and_reranks_like_the_full_margin():
    from densify.coverage import search_mode
    from densify.coverage._knn import MARGIN, SCAN_POINTS, _rerank, approximate_index

    rng = np.random.default_rng(4)
    # integer coordinates: many exact ties among the candidates, the case the near-tie re-ranking is for
    base = rng.integers(0, 6, size=(40_000, 6)).astype(np.float32)
    queries = rng.integers(0, 6, size=(500, 6)).astype(np.float32) + 0.5 * (rng.random((500, 6)) < 0.3)
    index = approximate_index(base)
    assert index.nlist == 800 and index.nprobe < index.nlist  # probes part of the lists, not all of them
    scanned = index.nprobe * len(base) / index.nlist
    assert SCAN_POINTS <= scanned < SCAN_POINTS + len(base) / index.nlist
    with search_mode("approximate"):
        dist, idx = knn(queries, base, 4)
    # every query re-ranked among k + MARGIN probed candidates: the same neighbours, distances and order
    full_sq, full_i = _rerank(base, queries, index.search(queries, 4 + MARGIN)[1], 4)
    assert np.array_equal(idx, full_i) and np.array_equal(dist, np.sqrt(full_sq))
    exact = knn(queries, base, 4)
    assert np.array_equal(dist, exact[0])  # ties aside, the probed lists held the true 4 nearest distances


def test_list_major_search_returns_what_the_index_search_does():
    from densify.coverage._knn import approximate_index, list_major_search

    rng = np.random.default_rng(11)
    base = rng.normal(size=(30_000, 64)).astype(np.float32)
    queries = rng.normal(size=(3_000, 64)).astype(np.float32)
    index = approximate_index(base)
    assert 3_000 * index.nprobe >= 16 * index.nlist  # enough queries per list: the list-major path runs
    faiss_d, faiss_i = index.search(queries, 7)
    ours_d, ours_i = list_major_search(index, queries, 7)
    # continuous data: no near-ties, so the same ids in the same order; distances differ in float32 rounding
    assert np.array_equal(ours_i, faiss_i)
    np.testing.assert_allclose(ours_d, faiss_d, rtol=1e-4)
    # lists smaller than k: padded with -1 and float32's largest value, as faiss' own search pads when the probed
    # lists run short
    small = approximate_index(base[:400])
    small.nprobe = 1
    d1, i1 = list_major_search(small, queries, 30)
    d2, i2 = small.search(queries, 30)
    assert np.array_equal(i1 < 0, i2 < 0) and (i1 < 0).any()
    assert np.array_equal(np.sort(i1, axis=1), np.sort(i2, axis=1))
    assert np.array_equal(d1[i1 < 0], d2[i2 < 0])


def test_approximate_knn_is_the_same_list_major_or_query_major(monkeypatch):
    from densify.coverage import _knn as knn_module
    from densify.coverage import search_mode

    rng = np.random.default_rng(12)
    # integer coordinates: exact ties and near-ties at the k-th neighbour, widened and re-ranked exactly
    base = rng.integers(0, 4, size=(20_000, 64)).astype(np.float32)
    queries = rng.integers(0, 4, size=(2_000, 64)).astype(np.float32)
    with search_mode("approximate"):
        list_major = knn(queries, base, 5)
        monkeypatch.setattr(knn_module, "LIST_MAJOR_MIN_D", 10_000)  # d = 64 below it: faiss' own search
        query_major = knn(queries, base, 5)
    assert (np.diff(list_major[0], axis=1) == 0).mean() > 0.1  # the ties are there
    # exact distances, the same bits both ways (which of equally distant points comes first may differ)
    assert np.array_equal(list_major[0], query_major[0])


def test_approximate_search_scans_as_few_points_as_reach_the_recall_target():
    from densify.coverage import search_log, search_mode
    from densify.coverage._knn import MIN_SCAN_POINTS, RECALL_TARGET, SCAN_POINTS

    rng = np.random.default_rng(6)
    # a 3-dimensional linear manifold in 32 dimensions: the nearest lists hold the neighbours
    easy = (rng.normal(size=(40_000, 3)) @ rng.normal(size=(3, 32))).astype(np.float32)
    # isotropic noise in 64 dimensions: the neighbours scatter over many lists
    hard = rng.normal(size=(40_000, 64)).astype(np.float32)
    search_log(reset=True)
    with search_mode("approximate"):
        knn(easy[:2000], easy, 5)
        knn(hard[:2000], hard, 5)
    easy_log, hard_log = search_log(reset=True)
    assert MIN_SCAN_POINTS <= easy_log["scanned"] < 2 * MIN_SCAN_POINTS  # the first scan was enough
    assert easy_log["recall"] >= RECALL_TARGET
    assert hard_log["scanned"] >= 4 * MIN_SCAN_POINTS  # it doubled the scan at least twice
    assert hard_log["recall"] >= RECALL_TARGET or hard_log["scanned"] >= SCAN_POINTS


@pytest.mark.parametrize("name", ["lattice-ties", "duplicates", "blobs"])
def test_prdc_in_small_blocks_and_column_chunks_matches_brute_force(monkeypatch, name):
    """The streamed comparison (blocks of fake rows, uint16 row counts over chunks of columns, near-ties settled
    exactly) gives the per-point statistics of the all-pairs definition, whatever the block and chunk sizes."""
    from densify.coverage import _prdc, prdc_points

    real, fake = DATASETS[name]
    k = 3
    diff = fake[:, None, :].astype(np.float64) - real[None, :, :]
    d2 = np.einsum("mnd,mnd->mn", diff, diff)
    r_real = np.sort(((real[:, None, :].astype(np.float64) - real[None]) ** 2).sum(-1), axis=1)[:, k]
    r_fake = np.sort(((fake[:, None, :].astype(np.float64) - fake[None]) ** 2).sum(-1), axis=1)[:, k]
    want_balls = (d2 < r_real[None, :]).sum(axis=1)
    want_recalled = (d2 < r_fake[:, None]).any(axis=0)
    want_covered = (d2 < r_real[None, :]).any(axis=0)
    for block_bytes, columns in ((1 << 22, 65535), (4 * len(real) * 7, 13), (1, 1)):
        monkeypatch.setattr(_prdc, "BLOCK_BYTES", block_bytes)
        monkeypatch.setattr(_prdc, "_COUNT_COLUMNS", columns)
        balls, recalled, covered = prdc_points(real, fake, k)
        np.testing.assert_array_equal(balls, want_balls)
        np.testing.assert_array_equal(recalled, want_recalled)
        np.testing.assert_array_equal(covered, want_covered)


def test_half_precision_lists_give_the_exact_neighbours_however_coarse_their_rounding(monkeypatch):
    """The approximate index stores its lists in float16 where the rounding is fine for the data (centred data);
    every distance is recomputed from the float32 base, the boundary test is widened by the stored points' rounding
    and a query whose widened candidates are not shown to hold its nearest is searched exhaustively. Forced onto
    data float16 rounds by up to 0.25 per coordinate (values near 1,000), with every list scanned, the neighbours
    are still the exact search's."""
    import faiss

    from densify.coverage import _knn as knn_module
    from densify.coverage import search_mode

    rng = np.random.default_rng(21)
    unit = rng.normal(size=(6_000, 64)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    assert isinstance(knn_module.approximate_index(unit), faiss.IndexIVFScalarQuantizer)  # 128 bytes a point
    base = (1000 + rng.integers(0, 3, size=(6_000, 8)) + 0.3 * rng.random((6_000, 8))).astype(np.float32)
    queries = (1000 + rng.integers(0, 3, size=(800, 8)) + 0.3 * rng.random((800, 8))).astype(np.float32)
    assert not knn_module._half_suits(base)  # too coarse: float32 lists
    assert isinstance(knn_module.approximate_index(base), faiss.IndexIVFFlat)
    monkeypatch.setattr(knn_module, "HALF_ROUNDING_SHARE", np.inf)
    index = knn_module.approximate_index(base)
    assert isinstance(index, faiss.IndexIVFScalarQuantizer) and index.code_size == 2 * 8
    assert 0.1 < knn_module._stored_error(index, base) < 0.25 * np.sqrt(8)  # coarse rounding, measured
    monkeypatch.setattr(
        knn_module, "SCAN_POINTS", 10**9
    )  # every list scanned: approximate = exact candidates
    monkeypatch.setattr(knn_module, "MIN_SCAN_POINTS", 10**9)
    exact = knn(queries, base, 5)
    with search_mode("approximate"):
        approx = knn(queries, base, 5)
        self_approx = knn(base[:500], base, 4, self_query=True)
    assert np.array_equal(approx[0], exact[0]) and np.array_equal(approx[1], exact[1])
    assert np.array_equal(self_approx[0], knn(base[:500], base, 4, self_query=True)[0])

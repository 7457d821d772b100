"""densify.quality: confident learning against closed forms and the reference ``cleanlab``, duplicates, outliers,
and injected faults found end to end from the API and the CLI."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_png

from densify.cli import cli
from densify.data import DataSplits, ImageSet, load_data
from densify.quality import (
    class_spread,
    confident_joint,
    confident_thresholds,
    data_issues,
    find_data_issues,
    find_duplicates,
    heldout_outlier_scores,
    knn_disagreement,
    label_issues,
    noise_rates,
    out_of_fold_probabilities,
    outlier_scores,
    overlapping_classes,
    self_confidence,
)
from densify.quality._labels import fit_softmax, principal_projection, softmax_probabilities

# ---------------------------------------------------------------------------------------------- closed forms


def test_confident_thresholds_are_per_class_mean_self_probability():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6], [0.0, 1.0]])
    np.testing.assert_allclose(confident_thresholds(labels, probs), [0.7, 0.8])
    # a class nobody is labelled with gets a threshold no probability reaches
    assert confident_thresholds(np.array([0, 0]), np.array([[0.6, 0.4], [0.7, 0.3]]))[1] == 2.0


def test_confident_joint_and_issues_on_a_hand_worked_case():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array(
        [[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.95, 0.05]]
    )  # thresholds: class 0 (0.9+0.8+0.1)/3 = 0.6, class 1 (0.8+0.7+0.05)/3 = 0.5167
    joint = confident_joint(labels, probs, calibrate=False)
    np.testing.assert_array_equal(joint, [[2, 1], [1, 2]])
    np.testing.assert_array_equal(label_issues(labels, probs), [False, False, True, False, False, True])
    calibrated = confident_joint(labels, probs)
    np.testing.assert_allclose(calibrated.sum(axis=1), [3, 3])
    np.testing.assert_allclose(noise_rates(calibrated), [1 / 3, 1 / 3])
    np.testing.assert_allclose(self_confidence(labels, probs), probs[np.arange(6), labels])


def test_noise_rates_and_overlap_pairs_closed_form():
    joint = np.array([[8.0, 2.0, 0.0], [1.0, 9.0, 0.0], [0.0, 3.0, 7.0]])
    np.testing.assert_allclose(noise_rates(joint), [0.2, 0.1, 0.3])
    assert overlapping_classes(joint) == [(0, 1, 3 / 30), (1, 2, 3 / 30)]


def test_knn_disagreement_is_the_share_of_other_labels():
    np.testing.assert_allclose(
        knn_disagreement(np.array([[0, 0, 1, 1], [2, 2, 2, 2]]), np.array([0, 1])), [0.5, 1.0]
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_issues_and_joint_match_cleanlab(seed):
    count = pytest.importorskip("cleanlab.count")
    filt = pytest.importorskip("cleanlab.filter")
    rng = np.random.default_rng(seed)
    n, c = 300, 4
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), labels] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ours = np.flatnonzero(label_issues(labels, probs))
    theirs = filt.find_label_issues(labels, probs, filter_by="confident_learning")
    np.testing.assert_array_equal(ours, np.flatnonzero(theirs))
    np.testing.assert_array_equal(
        confident_joint(labels, probs, calibrate=False),
        count.compute_confident_joint(labels, probs, calibrate=False),
    )
    # cleanlab rounds the calibrated joint to integers preserving row totals; ours keeps the fractions
    theirs = count.compute_confident_joint(labels, probs)
    ours = confident_joint(labels, probs)
    np.testing.assert_allclose(ours, theirs, atol=1.0)
    np.testing.assert_allclose(ours.sum(axis=1), theirs.sum(axis=1))


def test_softmax_probe_matches_scikit_learn():
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    labels = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    l2 = 0.05
    model = fit_softmax(x, labels, 3, l2)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    reference = linear_model.LogisticRegression(C=1 / (l2 * len(x)), tol=1e-10, max_iter=10000).fit(z, labels)
    np.testing.assert_allclose(softmax_probabilities(x, model), reference.predict_proba(z), atol=2e-4)


def test_principal_projection_keeps_narrow_features_and_distances_of_low_rank_ones():
    rng = np.random.default_rng(0)
    narrow = rng.normal(size=(50, 8))
    np.testing.assert_array_equal(principal_projection(narrow, components=8)[0], narrow)
    wide = rng.normal(size=(60, 3)) @ rng.normal(size=(3, 100))  # rank 3 in 100 dimensions
    (projected,) = principal_projection(wide, components=5)
    assert projected.shape == (60, 5)
    d = lambda a: np.linalg.norm(a[:, None] - a[None], axis=2)  # noqa: E731
    np.testing.assert_allclose(d(projected), d(wide), atol=1e-8)


def test_principal_projection_in_blocks_equals_one_block():
    """Above its block size the projection accumulates the covariance block by block from float32 features (no
    float64 copy): the same projections to rounding, others included."""
    rng = np.random.default_rng(1)
    train = (rng.normal(size=(230, 6)) @ rng.normal(size=(6, 40)) + rng.normal(0, 0.1, (230, 40))).astype(
        np.float32
    )
    held = rng.normal(size=(70, 40)).astype(np.float32)
    whole = principal_projection(train, held, components=6)
    blocks = principal_projection(train, held, components=6, chunk=64)
    for a, b in zip(whole, blocks, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-9)


class _Blocks:
    """Features as blocks of rows with a shape, counting how often they are read (as EncodedBlocks)."""

    def __init__(self, x: np.ndarray, rows: int) -> None:
        self.x, self.rows, self.shape, self.reads = x, rows, x.shape, 0

    def __len__(self) -> int:
        return len(self.x)

    def __iter__(self):
        self.reads += 1
        for start in range(0, len(self.x), self.rows):
            yield self.x[start : start + self.rows]


def test_principal_projection_of_streamed_blocks_equals_the_array():
    """Features given as blocks are read twice (covariance about the first block's mean, then the projection)
    and give the in-memory projection to rounding; narrow ones come back as they are."""
    rng = np.random.default_rng(4)
    train = (rng.normal(size=(230, 6)) @ rng.normal(size=(6, 40)) + 5 + rng.normal(0, 0.1, (230, 40))).astype(
        np.float32
    )
    held = rng.normal(size=(70, 40)).astype(np.float32)
    streamed = _Blocks(train, 64)
    for components in (6, None):
        whole = principal_projection(train, held, components=components)
        blocks = principal_projection(streamed, held, components=components)
        assert blocks[0].shape == whole[0].shape
        for a, b in zip(whole, blocks, strict=True):
            np.testing.assert_allclose(b, a, atol=1e-9)
    assert streamed.reads == 4
    narrow = _Blocks(train[:, :5], 50)
    np.testing.assert_array_equal(principal_projection(narrow, components=8)[0], train[:, :5])


def test_out_of_fold_probabilities_find_every_flipped_label_of_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    truth = np.repeat(np.arange(3), 60)
    x = centres[truth] + rng.normal(size=(180, 2))
    given = truth.copy()
    flipped = np.array([3, 70, 150, 151])
    given[flipped] = (truth[flipped] + 1) % 3
    probs = out_of_fold_probabilities(x, given, 3)
    # confident learning is conservative: what it flags was flipped; ranked by self-confidence, the flips lead
    assert set(np.flatnonzero(label_issues(given, probs))) <= set(flipped)
    assert len(np.flatnonzero(label_issues(given, probs))) >= 2
    assert set(np.argsort(self_confidence(given, probs))[: len(flipped)]) == set(flipped)
    np.testing.assert_array_equal(probs, out_of_fold_probabilities(x, given, 3))  # deterministic


# ---------------------------------------------------------------------------------------------- duplicates, outliers


def _textures(n: int, side: int = 24, seed: int = 0) -> np.ndarray:
    """Smooth random textures (distinct images whose thumbnails are far apart)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 6, 6, 3)).astype(np.float32)
    return (
        np.stack([cv2.resize(s, (side, side), interpolation=cv2.INTER_CUBIC) for s in small])
        .clip(0, 255)
        .astype(np.uint8)
    )


def test_exact_and_near_duplicates_within_and_across():
    base = _textures(30)
    queries = _textures(5, seed=1)
    queries[0] = base[4]  # exact
    rng = np.random.default_rng(0)
    queries[1] = np.clip(base[9].astype(int) + 10 + rng.normal(0, 2, base[9].shape), 0, 255).astype(np.uint8)
    found = find_duplicates(queries, base)
    assert list(found["match"]) == [4, 9, -1, -1, -1]
    assert list(found["kind"]) == ["exact", "near", "", "", ""]
    assert found["correlation"][0] == 1.0 and found["correlation"][1] > 0.97
    within = find_duplicates(np.concatenate([base, base[[2]]]))
    assert within["match"][2] == 30 and within["match"][30] == 2 and (within["match"][:30] >= 0).sum() == 1


def test_a_look_alike_among_many_is_not_a_near_duplicate():
    rng = np.random.default_rng(0)
    template = _textures(1)[0].astype(float)
    side = template.shape[0]
    yy, xx = np.mgrid[0:side, 0:side]
    alikes = []
    grid = [(y, x) for y in (4, 9, 14, 19) for x in (4, 9, 14, 19)]
    for cy, cx in [grid[i] for i in rng.choice(16, 10, replace=False)]:  # ten look-alikes: a blob each, apart
        blob = 90 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (side / 10) ** 2))
        alikes.append(np.clip(template + blob[..., None] + rng.normal(0, 6, template.shape), 0, 255))
    found = find_duplicates(np.stack(alikes).astype(np.uint8), threshold=0.5)
    assert (found["match"] == -1).all()
    # ten noisy copies of one image: no copy is much closer than the fifth, so the ratio test alone finds none;
    # every pixel of each agrees with the others, so the residual test finds them all
    copies = np.stack([np.clip(template + rng.normal(0, 3, template.shape), 0, 255) for _ in range(10)])
    copies = copies.astype(np.uint8)
    assert (find_duplicates(copies, threshold=0.5, residual=None)["match"] == -1).all()
    assert (find_duplicates(copies, threshold=0.5)["match"] >= 0).all()
    flat = np.full((3, 8, 8, 1), 7, np.uint8)
    flat[1] = 9  # near-constant images: matched by exact digests only
    assert list(find_duplicates(flat)["kind"]) == ["exact", "", "exact"]


def test_residual_deviation_against_least_squares():
    """The largest residual of a least-squares fit q ~ a c + b, over q's standard deviation, computed directly."""
    from densify.quality._duplicates import _descriptors, residual_deviation

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (6, 9, 7, 1), dtype=np.uint8)
    images[1] = np.clip(0.5 * images[0].astype(float) + 40, 0, 255).round()  # an affine copy of image 0
    d, _ = _descriptors(images, None)
    pairs = np.array([[1, 2, 3], [2, 4, 5]])
    corr = np.einsum("md,mkd->mk", d[pairs[:, 0]], d[pairs])
    got = residual_deviation(d[pairs[:, 0]], d[pairs], corr)
    for m, row in enumerate(pairs):
        q = images[row[0]].ravel().astype(float)
        for i, j in enumerate(row):
            design = np.stack([images[j].ravel().astype(float), np.ones(q.size)], axis=1)
            coef, *_ = np.linalg.lstsq(design, q, rcond=None)
            want = np.abs(q - design @ coef).max() / q.std()
            np.testing.assert_allclose(got[m, i], want, rtol=1e-5, atol=1e-5)
    assert got[0, 0] == pytest.approx(0.0, abs=1e-5)  # a query against itself
    assert got[1, 0] == pytest.approx(0.0, abs=1e-5)


def test_a_copy_among_look_alikes_passes_the_residual_test_not_the_ratio_test():
    """A plain bar with look-alikes that differ strongly at one pixel each: they correlate almost as well as a copy
    with small errors everywhere, so the ratio test misses the copy; every pixel of the copy agrees, so the residual
    test finds it, and it flags no look-alike."""
    rng = np.random.default_rng(0)
    bar = np.zeros((8, 8, 1))
    bar[:, 3:5] = 200
    alikes = []
    for pixel in rng.choice(64, 8, replace=False):
        a = bar.copy().ravel()
        a[pixel] += 100 if a[pixel] == 0 else -100
        alikes.append(a.reshape(bar.shape))
    base = np.stack([bar, *alikes]).astype(np.uint8)
    copy = np.clip(bar + 12 + rng.uniform(-14, 14, bar.shape), 0, 255).astype(np.uint8)
    ratio_only = find_duplicates(copy[None], base, residual=None)
    both = find_duplicates(copy[None], base)
    assert ratio_only["match"][0] == -1 and both["match"][0] == 0 and both["kind"][0] == "near"
    within = find_duplicates(base[1:])  # the look-alikes among themselves: none is a copy of another
    assert (within["match"] == -1).all()


def test_descriptors_equal_opencv_one_image_at_a_time():
    """The block-vectorised descriptors (OpenCV's INTER_AREA weights as two matrix products) equal resizing each
    image with cv2 on its own, downscaling by a non-integer factor and upscaling alike."""
    import cv2

    from densify.quality._duplicates import _descriptors, describe

    rng = np.random.default_rng(0)
    for shape, side in (
        ((40, 150, 150, 3), 16),
        ((30, 8, 8, 1), 16),
        ((20, 28, 36, 1), 16),
        ((5, 90, 70, 3), 64),
    ):
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        images[2] = 9  # near-constant: flagged flat, zero descriptor
        got, flat = _descriptors(images, side, chunk=7)
        for i, img in enumerate(images):
            grey = cv2.resize(img.astype(np.float32).mean(axis=2), (side, side), interpolation=cv2.INTER_AREA)
            v = grey.ravel().astype(np.float64) - grey.mean()
            want = np.zeros_like(v) if i == 2 else v / np.linalg.norm(v)
            np.testing.assert_allclose(got[i], want, atol=2e-6)
        assert list(np.flatnonzero(flat)) == [2]
    described = describe(images)
    assert describe(described) is described
    for key in ("match", "kind", "correlation"):
        np.testing.assert_array_equal(find_duplicates(described)[key], find_duplicates(images)[key])


def test_outlier_scores_closed_form():
    x = np.array([[0.0], [1.0], [2.0], [3.0], [10.0], [100.0], [101.0], [102.0]])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    scores = outlier_scores(x, labels, k=1)
    # class 0: 1st-neighbour distances 1, 1, 1, 1, 7 (median 1); class 1: 1, 1, 1
    np.testing.assert_allclose(scores, [1, 1, 1, 1, 7, 1, 1, 1])
    assert np.isnan(outlier_scores(x[:3], np.array([0, 0, 1]), k=1)[2])  # a class of k samples has no score


# ---------------------------------------------------------------------------------------------- end to end

PATTERNS = ("stripes", "columns", "diagonals")


def test_residual_scores_closed_form():
    from densify.quality._outliers import residual_scores

    # 40 training thumbnails in R^8: large spread along e0 and e1, +-0.1 along e2 (residual 0.1 each). In groups
    # of four rows (a, +), (b, +), (a, -), (b, -): the e2 column is orthogonal to the others in the whole set and in
    # each half (even rows, odd rows) that scores the other
    rng = np.random.default_rng(0)
    train = np.zeros((40, 8), np.float32)
    for column, spread in ((0, 3.0), (1, 2.0)):
        pairs = rng.normal(0, spread, (10, 2))
        train[:, column] = np.concatenate([[a, b, a, b] for a, b in pairs])
    train[:, 2] = np.tile([0.1, 0.1, -0.1, -0.1], 10)
    heldout = np.zeros((3, 8), np.float32)
    heldout[0, [0, 4]] = [5.0, 0.5]  # 0.5 off the two principal axes: 5x the typical residual
    heldout[1, [1, 2]] = [-4.0, 0.1]  # as typical as training images
    flat = np.array([False, False, True])
    t, h = residual_scores(train, heldout, degrees=8, heldout_flat=flat)  # keep 8 // 4 = 2 components
    np.testing.assert_allclose(t, 1.0, rtol=1e-5)
    np.testing.assert_allclose(h[:2], [5.0, 1.0], rtol=1e-5)
    assert np.isnan(h[2])  # a flat thumbnail is not scored
    t_flat = np.zeros(40, bool)
    t_flat[:36] = True  # halves of two thumbnails for two components: nothing to score against
    assert np.isnan(residual_scores(train, heldout, degrees=8, train_flat=t_flat)[1]).all()


def test_heldout_outlier_scores_closed_form_and_shared_spread():
    train = np.array([[0.0], [1.0], [2.0], [3.0], [10.0], [100.0], [101.0], [102.0]])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    held = np.array([[1.5], [23.0], [101.0], [5.0]])
    held_labels = np.array([0, 0, 1, 2])
    spread = class_spread(train, labels, k=1)
    assert spread[1] == {0: 1.0, 1: 1.0}
    # 1st nearest same-class training point: 0.5, 13, 0 over each class's median 1; class 2 has no training points
    scores = heldout_outlier_scores(train, labels, held, held_labels, k=1)
    np.testing.assert_allclose(scores[:3], [0.5, 13.0, 0.0])
    assert np.isnan(scores[3])
    np.testing.assert_array_equal(
        heldout_outlier_scores(train, labels, held, held_labels, k=1, spread=spread), scores
    )
    np.testing.assert_array_equal(
        outlier_scores(train, labels, k=1, spread=spread), outlier_scores(train, labels, k=1)
    )


def _pattern(kind: str, rng, side: int = 16) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side]
    phase = rng.uniform(-0.4, 0.4)  # near-fixed phase and period: classes a linear probe on pixels separates
    period = rng.uniform(3.8, 4.2)
    wave = {
        "stripes": np.sin(2 * np.pi * yy / period + phase),
        "columns": np.sin(2 * np.pi * xx / period + phase),
        "diagonals": np.sin(2 * np.pi * (xx + yy) / (1.4 * period) + phase),
    }[kind]
    img = 128 + 90 * wave + rng.normal(0, 12, wave.shape)
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _patterns(n_per_class: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    return np.stack([_pattern(PATTERNS[c], rng) for c in labels]), labels


def _faulty_splits() -> tuple[DataSplits, np.ndarray]:
    train_x, train_y = _patterns(40, 0)
    held_x, held_y = _patterns(10, 1)
    flipped = np.array([5, 47, 90])
    train_y = train_y.copy()
    train_y[flipped] = (train_y[flipped] + 1) % 3
    train_x[100] = held_x[3]  # a held-out image leaked into train
    train_y[100] = held_y[3]
    data = DataSplits(
        "patterns", ImageSet(train_x, train_y, PATTERNS, "patterns/train"), ImageSet(held_x, held_y, PATTERNS)
    )
    return data, flipped


def test_find_data_issues_finds_injected_flips_and_the_leak():
    data, flipped = _faulty_splits()
    features = lambda s: s.images.reshape(len(s), -1).astype(np.float32)  # noqa: E731
    issues = find_data_issues(data, features(data.train), features(data.heldout))
    train_label = sorted(r["index"] for r in issues.flagged("label") if r["split"] == "train")
    assert set(flipped) <= set(train_label) and len(train_label) <= len(flipped) + 2
    for row in issues.rows:
        if row["split"] == "train" and row["index"] in flipped:
            assert row["suggested_label"] == PATTERNS[(data.train.labels[row["index"]] - 1) % 3]
    leaks = issues.flagged("leak")
    assert [(r["index"], r["duplicate_of"], r["duplicate_kind"]) for r in leaks] == [
        (3, "train:100", "exact")
    ]
    assert issues.summary["leakage"]["heldout_in_train"] == 1 and issues.summary["leakage"]["exact"] == 1
    assert issues.summary["train"]["label_issues"] == len(train_label)
    table = list(csv.DictReader(io.StringIO(issues.to_csv())))
    assert len(table) == len(issues.flagged()) and table[0]["issues"].startswith("label")
    assert len(list(csv.DictReader(io.StringIO(issues.to_csv(flagged_only=False))))) == 150
    with pytest.raises(ValueError, match="unknown issue kind"):
        issues.flagged("typo")


def test_issues_of_embedded_features_equal_find_data_issues():
    from densify.quality._issues import issues_of_embedded

    data, _ = _faulty_splits()
    features = lambda s: s.images.reshape(len(s), -1).astype(np.float32)  # noqa: E731
    direct = find_data_issues(data, features(data.train), features(data.heldout), seed=3)
    lazily = issues_of_embedded(data, lambda: (features(data.train), features(data.heldout)), seed=3)
    assert lazily.to_csv(flagged_only=False) == direct.to_csv(flagged_only=False)
    assert lazily.summary == direct.summary and lazily.settings == direct.settings


def test_a_noise_image_ranks_first_by_noise_score():
    (images, labels), (held_x, held_y) = _patterns(150, 0), _patterns(10, 1)
    images[7] = np.random.default_rng(1).integers(0, 256, images[7].shape, dtype=np.uint8)
    data = DataSplits("patterns", ImageSet(images, labels, PATTERNS), ImageSet(held_x, held_y, PATTERNS))
    features = lambda s: s.images.reshape(len(s), -1).astype(np.float32)  # noqa: E731
    issues = find_data_issues(data, features(data.train), features(data.heldout))
    train = [r for r in issues.rows if r["split"] == "train"]
    ranked = sorted(train, key=lambda r: -r["noise_score"])
    assert ranked[0]["index"] == 7 and ranked[0]["noise_score"] > 2 * ranked[1]["noise_score"]
    assert "noise_score" in next(csv.DictReader(io.StringIO(issues.to_csv(flagged_only=False))))
    assert issues.settings["noise_components"] == min(256, images.shape[1] * images.shape[2]) // 4


def _write_tree(root: Path) -> tuple[Path, Path]:
    data, _ = _faulty_splits()
    for split, images in (("train", data.train), ("test", data.heldout)):
        for i, (img, label) in enumerate(zip(images.images, images.labels, strict=True)):
            write_png(root / split / PATTERNS[label] / f"{i:03d}.png", img)
    return root / "train" / PATTERNS[data.train.labels[5]] / "005.png", root / "test" / PATTERNS[
        data.heldout.labels[3]
    ] / "003.png"


def test_folder_sources_keep_each_image_path_through_subsets(tmp_path):
    _mislabelled, _leaked = _write_tree(tmp_path / "tree")
    data = load_data(f"folder:{tmp_path / 'tree'}", train_size=60, seed=0)
    assert len(data.train.paths) == 60 and len(data.heldout.paths) == 30
    for path, label in zip(data.train.paths, data.train.labels, strict=True):
        assert Path(path).parent.name == data.classes[label] and Path(path).is_file()
    assert load_data("fashion-mini", train_size=10).train.paths == ()


def test_cli_data_issues_writes_the_flagged_files(tmp_path):
    mislabelled, leaked = _write_tree(tmp_path / "tree")
    out = tmp_path / "issues.csv"
    result = CliRunner().invoke(  # a wide terminal: no cell of the table wraps
        cli,
        ["data", "issues", f"folder:{tmp_path / 'tree'}", "-o", str(out), "--encoder", "pixels"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "LEAKAGE: 1 held-out image (3.3%) has a duplicate in train" in result.output
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    by_path = {r["path"]: r for r in rows}
    assert "label" in by_path[str(mislabelled)]["issues"]
    assert "leak" in by_path[str(leaked)]["issues"]
    # the terminal table names each shown file relative to the folder they share (said once, above the table),
    # and a label error as "given -> suggested"
    shown = rows[:10]
    root = Path(os.path.commonpath([r["path"] for r in shown]))
    assert f"(files in {root})" in result.output
    first = shown[0]
    assert str(Path(first["path"]).relative_to(root)) in result.output
    (mislabel, *_) = [r for r in shown if "label" in r["issues"].split(";")]
    assert f"{mislabel['given_label']} -> {mislabel['suggested_label']}" in result.output
    narrow = CliRunner().invoke(  # a narrow terminal: names and files fold, none loses its end to an ellipsis
        cli,
        ["data", "issues", f"folder:{tmp_path / 'tree'}", "-o", str(out), "--encoder", "pixels"],
        env={"COLUMNS": "50"},
    )
    assert narrow.exit_code == 0 and "…" not in narrow.output, narrow.output
    every = tmp_path / "all.csv"
    assert (
        CliRunner()
        .invoke(cli, ["data", "issues", f"folder:{tmp_path / 'tree'}", "-o", str(every), "--all", "--json"])
        .exit_code
        == 0
    )
    with every.open() as fh:
        assert len(list(csv.DictReader(fh))) == 150


def test_cli_data_issues_bad_output_is_one_line_and_keeps_earlier_file(tmp_path):
    (tmp_path / "taken").mkdir()
    result = CliRunner().invoke(
        cli, ["data", "issues", "fashion-mini", "--train-size", "60", "-o", str(tmp_path / "taken")]
    )
    assert result.exit_code == 2 and "taken" in result.output and len(result.output.strip().splitlines()) == 1


def test_data_issues_api_uses_a_label_free_encoder_by_default(tmp_path):
    data = load_data("fashion-mini", train_size=300, heldout_size=100)
    flips = np.arange(0, 300, 10)
    labels = np.array(data.train.labels)
    labels[flips] = (labels[flips] + 5) % 10
    noisy = replace(data, train=replace(data.train, labels=labels))
    issues = data_issues(noisy, cache_dir=tmp_path)
    assert issues.settings["encoder"] == "random-cnn"
    flagged = {r["index"] for r in issues.flagged("label") if r["split"] == "train"}
    assert len(flagged & set(flips)) >= 0.5 * len(flips)


def test_data_issues_with_streamed_features_equal_the_held_ones(tmp_path, monkeypatch):
    """Above STREAM_BYTES the training features are encoded twice by blocks, never held nor cached: the same
    flags and, to rounding, the same scores."""
    from densify.estimate import EncodedBlocks, clean_embeddings
    from densify.quality import _issues

    data = load_data("fashion-mini", train_size=300, heldout_size=100)
    held = data_issues(data, cache_dir=tmp_path / "held")
    monkeypatch.setattr(_issues, "STREAM_BYTES", 1)
    streamed = data_issues(data, cache_dir=tmp_path / "streamed")
    first, _ = clean_embeddings(data, encoder="random-cnn", cache_dir=tmp_path / "streamed", stream_bytes=1)
    assert isinstance(first, EncodedBlocks) and first.shape == (300, 512)
    whole = clean_embeddings(data, encoder="random-cnn", cache_dir=False)[0]
    np.testing.assert_array_equal(np.concatenate(list(first)), whole)
    assert len(list((tmp_path / "streamed").glob("*.npz"))) < len(list((tmp_path / "held").glob("*.npz")))
    assert [r["issues"] for r in streamed.rows] == [r["issues"] for r in held.rows]
    for key in ("label_quality", "knn_disagreement", "outlier_score"):
        np.testing.assert_allclose(
            [r[key] for r in streamed.rows], [r[key] for r in held.rows], rtol=1e-6, atol=1e-9
        )


def test_audit_reports_data_quality_and_warns_of_leakage(tmp_path):
    from densify.audit import AuditSettings, read_report, run_audit
    from densify.audit._verdict import verdict

    _write_tree(tmp_path / "tree")
    out = tmp_path / "report"
    settings = AuditSettings(
        data=f"folder:{tmp_path / 'tree'}",
        recipes=("flip",),
        encoder="pixels:pca16",
        k=3,
        n_boot=50,
        train=False,
    )
    report = run_audit(settings, out)
    q = report["data_quality"]
    assert (
        q["encoder"] == "random-cnn" and q["leakage"]["heldout_in_train"] == 1 and q["flagged"]["label"] >= 3
    )
    assert report["verdict"]["warnings"][0].startswith(
        "1 held-out image (3.3%) also occurs in the training set"
    )
    assert read_report(out)["data_quality"] == q
    with (out / "data-issues.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["issues"] for r in rows} >= {"leak"} and all(Path(r["path"]).is_file() for r in rows)
    html = (out / "report.html").read_text()
    assert "<h2 id=data-quality>Data quality</h2>" in html and 'data-plot="data-issues"' in html
    assert (out / "plots" / "data-issues.png").stat().st_size > 1000
    # the verdict without a leak has no such warning
    clean = verdict(
        report["coverage"], report["reference"], None, supervised=False, leakage={"heldout_in_train": 0}
    )
    assert not any("also occur" in w for w in clean["warnings"])


def test_data_issues_notice_a_heldout_set_drawn_unlike_the_training_set():
    """Known-factor shapes whose training objects sit near the centre and held-out ones anywhere: the shift check
    (in the duplicate search's thumbnails) calls it, and the summary says so; the same data without the gap does
    not."""
    from densify.quality import report_section, summary_lines

    gap = "synth:shapes?train=300&heldout=300&size=16&x=-0.1:0.1/-0.6:0.6&y=-0.1:0.1/-0.6:0.6"
    for spec, shifted in ((gap, True), ("synth:shapes?train=300&heldout=300&size=16", False)):
        data = load_data(spec)
        # coarse features keep the label checks cheap; the shift check reads the images' thumbnails
        features = lambda s: s.images[:, ::4, ::4].reshape(len(s), -1).astype(np.float32)  # noqa: E731
        issues = find_data_issues(data, features(data.train), features(data.heldout))
        shift = issues.summary["shift"]
        assert shift["shifted"] is shifted and shift["n_reference"] == 150 and shift["n_heldout"] == 300
        lines = [line for line in summary_lines(issues.summary) if line.startswith("SHIFT:")]
        assert bool(lines) is shifted and all("partly reflect the shift" in line for line in lines)
        assert report_section(issues)["shift"] == shift


def test_exact_matches_equal_the_first_other_index_with_the_same_digest():
    """The vectorised exact match against the plain reading of its definition (a dict of index lists), within one
    set and across two, on digests with many repeats (some ending in zero bytes)."""
    from densify.quality._duplicates import exact_matches

    rng = np.random.default_rng(0)
    pool = np.array([bytes(rng.integers(0, 256, 15, dtype=np.uint8)) + bytes([b]) for b in (0, 0, 1, 2, 3, 0)],
                    dtype="S16")  # fmt: skip
    pool[1] = pool[0][:15] + b"\x07"  # differs from pool[0] in the last byte only
    ref, query = pool[rng.integers(0, 6, 200)], pool[rng.integers(0, 6, 50)]
    query[:3] = np.array([b"\x01" * 16, b"\x02" * 16, b"\xff" * 16], dtype="S16")  # in no set

    def reference(q, r, within):
        first: dict[bytes, list[int]] = {}
        for j, d in enumerate(r):
            first.setdefault(bytes(d), []).append(j)
        out = []
        for i, d in enumerate(q):
            hits = [j for j in first.get(bytes(d), ()) if not (within and j == i)]
            out.append(hits[0] if hits else -1)
        return np.array(out)

    assert np.array_equal(exact_matches(query, ref), reference(query, ref, False))
    assert np.array_equal(exact_matches(ref, ref, within=True), reference(ref, ref, True))
    singles = np.array([b"a" * 16, b"b" * 16, b"a" * 16], dtype="S16")
    assert exact_matches(singles, singles, within=True).tolist() == [2, -1, 0]
    assert (
        exact_matches(singles[:0], singles).tolist() == []
        and exact_matches(singles, singles[:0]).tolist() == [-1] * 3
    )

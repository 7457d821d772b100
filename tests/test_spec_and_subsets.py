from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from densify.data import ImageSet, carve_heldout, parse_spec, stratified_indices, stratified_subset
from densify.errors import DataError, SpecError


@pytest.mark.parametrize(
    "spec, kind, path",
    [
        ("fashion-mini", "fashion-mini", None),
        (" digits ", "digits", None),
        ("idx:/data/mnist", "idx", Path("/data/mnist")),
        ("folder:C:/odd:name", "folder", Path("C:/odd:name")),
        ("npz:~/x.npz", "npz", Path("~/x.npz").expanduser()),
    ],
)
def test_parse_spec(spec, kind, path):
    parsed = parse_spec(spec)
    assert (parsed.kind, parsed.path) == (kind, path)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty data spec"),
        ("hdf5:/x", "unknown data-spec prefix 'hdf5:'"),
        ("fashion-minni", "did you mean 'fashion-mini'"),
        ("idx:", "empty path"),
        ("IDX:/x", "unknown data-spec prefix 'IDX:'"),
    ],
)
def test_parse_spec_errors(spec, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(spec)


def test_existing_path_without_prefix_gets_a_hint(tmp_path: Path):
    with pytest.raises(SpecError, match="prefix it"):
        parse_spec(str(tmp_path))


def _imageset(labels) -> ImageSet:
    labels = np.asarray(labels)
    return ImageSet(
        np.zeros((len(labels), 2, 2, 1), np.uint8), labels, tuple("abcdef")[: labels.max() + 1], "t/train"
    )


def test_stratified_subset_keeps_proportions_and_every_class():
    labels = np.repeat([0, 1, 2], [600, 300, 100])
    sub = stratified_subset(_imageset(labels), 100, seed=1)
    assert sub.class_counts().tolist() == [60, 30, 10]
    tiny = stratified_subset(_imageset(labels), 3, seed=1)
    assert tiny.class_counts().tolist() == [1, 1, 1]


def test_subset_errors():
    images = _imageset([0, 1] * 5)
    with pytest.raises(DataError, match="only 10 are available"):
        stratified_subset(images, 11)
    with pytest.raises(DataError, match="smaller than the number of classes"):
        stratified_subset(_imageset([0, 1, 2] * 3), 2)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=2, max_size=6),
    frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_stratified_indices_properties(counts, frac, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    rng = np.random.default_rng(0)
    labels = labels[rng.permutation(len(labels))]
    size = len(counts) + int(frac * (len(labels) - len(counts)))
    idx = stratified_indices(labels, size, seed)
    assert len(idx) == size == len(np.unique(idx))
    assert np.all(np.diff(idx) > 0)
    got = np.bincount(labels[idx], minlength=len(counts))
    assert np.all(got >= 1) and np.all(got <= counts)
    quota = np.asarray(counts) * size / len(labels)
    if (
        quota.min() >= 1
    ):  # no class needed topping up to one image: largest remainder is within 1 of the quota
        assert np.all(np.abs(got - quota) < 1)
    assert np.array_equal(idx, stratified_indices(labels, size, seed))


def test_carve_heldout_is_disjoint_and_complete():
    images = ImageSet(
        np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1), np.arange(50) % 5, tuple("abcde"), "x/train"
    )
    train, held = carve_heldout(images, 10, seed=2)
    assert held.class_counts().tolist() == [2] * 5
    values = sorted(train.images.ravel().tolist() + held.images.ravel().tolist())
    assert values == list(range(50))
    assert (train.name, held.name) == ("x/train", "x/heldout")


def test_imageset_validation():
    with pytest.raises(DataError, match="uint8"):
        ImageSet(np.zeros((2, 2, 2, 1), np.float32), np.array([0, 1]), ("a", "b"))
    with pytest.raises(DataError, match=r"C in \(1, 3\)"):
        ImageSet(np.zeros((2, 2, 2, 2), np.uint8), np.array([0, 1]), ("a", "b"))
    with pytest.raises(DataError, match="2 images but 3 labels"):
        ImageSet(np.zeros((2, 2, 2, 1), np.uint8), np.array([0, 1, 1]), ("a", "b"))
    with pytest.raises(DataError, match="label 2 is outside the class list"):
        ImageSet(np.zeros((2, 2, 2, 1), np.uint8), np.array([0, 2]), ("a", "b"))

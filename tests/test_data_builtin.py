import numpy as np
import pytest

from densify.data import load_data


def test_fashion_mini_is_the_default_and_class_balanced():
    data = load_data()
    assert data.name == "fashion-mini"
    assert (len(data.train), len(data.heldout)) == (10_000, 2_000)
    assert data.train.shape == (28, 28, 1)
    assert data.classes[0] == "T-shirt/top" and data.classes[-1] == "Ankle boot"
    assert data.train.class_counts().tolist() == [1000] * 10
    assert data.heldout.class_counts().tolist() == [200] * 10
    assert data.train.images.dtype == np.uint8 and not data.train.images.flags.writeable
    assert data.heldout_origin == "test split"


def test_fashion_mini_subsets_are_seeded():
    a = load_data(train_size=500, heldout_size=100, seed=3)
    b = load_data(train_size=500, heldout_size=100, seed=3)
    c = load_data(train_size=500, heldout_size=100, seed=4)
    assert np.array_equal(a.train.images, b.train.images)
    assert not np.array_equal(a.train.images, c.train.images)
    assert a.train.class_counts().tolist() == [50] * 10
    assert a.heldout.class_counts().tolist() == [10] * 10


def test_digits_carves_a_stratified_heldout_split():
    pytest.importorskip("sklearn")
    data = load_data("digits")
    assert data.train.shape == (8, 8, 1)
    assert len(data.train) + len(data.heldout) == 1797
    assert "carved from train" in data.heldout_origin
    assert data.heldout.images.max() <= 255 and data.train.images.max() > 200
    fractions = data.heldout.class_counts() / (data.heldout.class_counts() + data.train.class_counts())
    assert np.allclose(fractions, 0.2, atol=0.02)

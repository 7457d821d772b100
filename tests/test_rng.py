import numpy as np
import pytest

from densify._rng import SampleRNG, sample_key, view_key


def _draws(rng: SampleRNG, key: int):
    rng.reseed(key)
    py, gen = rng.py, rng.np
    return (
        [py.random() for _ in range(20)],
        py.randint(0, 10**6),
        py.choice("abcdefgh"),
        py.gauss(0, 1),
        py.sample(range(100), 5),
        py.getrandbits(200),
        gen.integers(0, 10**9, 3).tolist(),
    )


def test_same_key_same_draws_and_different_keys_differ():
    a, b = SampleRNG(), SampleRNG()
    assert _draws(a, 42) == _draws(b, 42) == _draws(a, 42)
    assert _draws(a, 42) != _draws(a, 43)


def test_python_draws_are_uniform_and_span_refills():
    rng = SampleRNG()
    rng.reseed(7)
    values = np.array([rng.py.random() for _ in range(20_000)])  # many refills of 16
    assert values.min() >= 0 and values.max() < 1
    assert abs(values.mean() - 0.5) < 0.01 and abs(values.std() - (1 / 12) ** 0.5) < 0.01
    bits = [rng.py.getrandbits(3) for _ in range(8000)]
    assert set(bits) == set(range(8)) and abs(np.mean(bits) - 3.5) < 0.1


def test_keys_are_distinct_over_a_grid():
    keys = {
        view_key(sample_key(s, e), i, v)
        for s in range(3)
        for e in range(3)
        for i in range(200)
        for v in range(4)
    }
    assert len(keys) == 3 * 3 * 200 * 4
    assert view_key(5, 1 << 41, 0) == sample_key(5, 1 << 41, 0)  # out-of-packing indices fall back


def test_state_cannot_be_saved_half_way():
    with pytest.raises(NotImplementedError):
        SampleRNG().py.getstate()


def test_view_keys_take_numpy_integers():
    """An index from numpy (np.flatnonzero, an int64 array) gives the same key and view as a Python int."""
    import numpy as np

    from densify._rng import view_key

    assert view_key(np.uint64(12345), np.int64(987654), np.int64(3)) == view_key(12345, 987654, 3)
    from densify.data import load_data
    from densify.loader import load_recipe

    data = load_data("digits", train_size=40)
    augmenter = load_recipe("affine-light", seed=1, output="numpy")
    index = np.flatnonzero(data.train.labels == 3)[0]
    assert np.array_equal(
        augmenter.view_of(data.train, index, 1), augmenter.view_of(data.train, int(index), 1)
    )


def test_view_keys_vectorised_equal_one_by_one():
    from densify._rng import _STATE_SALT, _splitmix, view_keys

    base = sample_key(3, 1)
    indices = np.array([0, 1, 5, 123456, (1 << 40) - 1, 1 << 40, 7])  # the last two-but-one falls back
    views = np.array([0, 3, 1, (1 << 24) - 1, 2, 0, 1 << 24])
    keys, states = view_keys(base, indices, views)
    assert keys == [view_key(base, int(i), int(v)) for i, v in zip(indices, views, strict=True)]
    assert states == [_splitmix(k ^ _STATE_SALT) for k in keys]
    a, b = SampleRNG(), SampleRNG()
    a.reseed(keys[2])
    b.reseed(keys[2], states[2])
    assert a.np.integers(0, 1 << 62, 4).tolist() == b.np.integers(0, 1 << 62, 4).tolist()
    assert [a.py.random() for _ in range(20)] == [b.py.random() for _ in range(20)]


def test_small_getrandbits_take_the_top_bits_of_one_draw():
    """k <= 52 bits come from one float's top bits, as the general loop takes them (no change of stream)."""
    rng = SampleRNG()
    for k in (1, 3, 17, 52, 53, 64, 200):
        rng.reseed(11)
        got = rng.py.getrandbits(k)
        rng.reseed(11)
        out, filled = 0, 0
        while filled < k:
            take = min(52, k - filled)
            out |= (int(rng.py.random() * 9007199254740992.0) >> (53 - take)) << filled
            filled += take
        assert got == out and 0 <= got < 1 << k
    assert rng.py.getrandbits(0) == 0


def test_stream_floats_are_the_python_stream_of_each_key():
    """The vectorised PCG64 steps give, bit for bit, what ``SampleRNG.py.random()`` returns after a reseed,
    for packed keys, keys from ``sample_key`` (indices past the packing) and the stream's whole first batch."""
    from densify._rng import SampleRNG, stream_floats, view_keys

    indices = np.concatenate([np.arange(300), [1 << 41, (1 << 62) + 5]])
    keys, states = view_keys(0xFFFF_FFFF_FFFF_FFFF, indices, np.arange(len(indices)) % 5)
    floats = stream_floats(keys, states, 16)
    rng = SampleRNG()
    for row, key, state in zip(floats, keys, states, strict=True):
        rng.reseed(key, state)
        assert [rng.py.random() for _ in range(16)] == row.tolist()
    assert stream_floats(keys, states, 0).shape == (len(keys), 0)
    with pytest.raises(ValueError):
        stream_floats(keys, states, 17)

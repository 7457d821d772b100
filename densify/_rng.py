"""Per-sample random state with cheap reseeding, so every augmented view is a pure function of its key.

albumentations draws from two generators: a ``random.Random`` (``py_random``: probabilities and most
parameters) and a ``numpy.random.Generator`` (noise, holes, choices). Reseeding Mersenne Twister costs about
5 µs, as much as a whole horizontal flip, so per sample densify instead

1. sets the state of one PCG64 generator from the sample's 64-bit key (about 1.5 µs), and
2. gives albumentations a ``random.Random`` whose ``random()`` is the C-level ``__next__`` of an iterator over
   floats drawn in one batch from that generator (about 0.05 µs a call, as fast as Mersenne Twister's).

Both generators therefore read disjoint stretches of one PCG64 stream keyed by (seed, epoch, index, view).
"""

from __future__ import annotations

import itertools
import random

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_BATCH = 16  # floats drawn per refill; most transforms draw fewer per image
_TWO_53 = 9007199254740992.0
_STATE_SALT = 0x5851F42D4C957F2D  # a key's PCG64 state word is _splitmix(key ^ _STATE_SALT)
_MASK128 = (1 << 128) - 1


def _splitmix(z: int) -> int:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _MASK
    return z ^ (z >> 31)


def sample_key(*parts: int) -> int:
    """A 64-bit key that mixes every part (seed, epoch, index, view, ...); any change gives an unrelated key."""
    h = _GOLDEN
    for part in parts:
        h = _splitmix((h + (int(part) & _MASK) + _GOLDEN) & _MASK)
    return h


def view_key(base: int, index: int, view: int) -> int:
    """Key of (index, view) under ``base`` (= ``sample_key(seed, epoch)``): one SplitMix64 of a unique packing.
    numpy integers are taken as Python ints (their fixed width would overflow the packing)."""
    base, index, view = int(base), int(index), int(view)
    if not 0 <= view < 1 << 24 or not 0 <= index < 1 << 40:
        return sample_key(base, index, view)
    return _splitmix((base + ((index << 24) | view) * _GOLDEN) & _MASK)


def _splitmix_array(z: np.ndarray) -> np.ndarray:
    """:func:`_splitmix` of every element of a uint64 array (numpy's uint64 arithmetic wraps like ``& _MASK``)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def view_keys(base: int, indices: np.ndarray, views: np.ndarray) -> tuple[list[int], list[int]]:
    """``view_key(base, i, v)`` for arrays of indices and views, and each key's PCG64 state word: the same
    numbers as :func:`view_key` and :meth:`SampleRNG.reseed` compute one by one, in a few array operations."""
    indices = np.asarray(indices, dtype=np.int64)
    views = np.asarray(views, dtype=np.int64)
    packable = (indices >= 0) & (indices < 1 << 40) & (views >= 0) & (views < 1 << 24)
    packed = (indices.astype(np.uint64) << np.uint64(24)) | views.astype(np.uint64)
    keys = _splitmix_array(np.uint64(int(base) & _MASK) + packed * np.uint64(_GOLDEN))
    if not packable.all():
        keys[~packable] = [
            sample_key(base, i, v) for i, v in zip(indices[~packable], views[~packable], strict=True)
        ]
    states = _splitmix_array(keys ^ np.uint64(_STATE_SALT))
    return keys.tolist(), states.tolist()


class StreamRandom(random.Random):
    """``random.Random`` fed by a numpy Generator: ``random()`` returns the generator's floats, 16 at a time.

    Every other method of ``random.Random`` (uniform, randint, choice, gauss, sample, ...) is built on
    :meth:`random` and :meth:`getrandbits`, so all of them follow the generator's state.
    """

    def __init__(self, generator: np.random.Generator) -> None:
        self._generator = generator
        super().__init__(0)

    def seed(self, a=None, version: int = 2) -> None:  # type: ignore[override]
        """Restart from the generator's current state (the generator is what gets seeded)."""
        generator = self._generator
        self.gauss_next = None  # random.Random.gauss caches its second value: it must not leak across samples
        self.random = itertools.chain(generator.random(_BATCH).tolist(), self._refills()).__next__  # type: ignore[method-assign]

    def _refills(self):
        while True:
            yield from self._generator.random(_BATCH).tolist()

    def random(self) -> float:  # replaced per instance by seed(); kept for the class protocol
        return float(self._generator.random())

    def getrandbits(self, k: int) -> int:
        if 0 < k <= 52:  # what randrange and choice ask for: the loop below, in one step
            return int(self.random() * _TWO_53) >> (53 - k)
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        out, filled = 0, 0
        while filled < k:
            take = min(52, k - filled)
            out |= (int(self.random() * _TWO_53) >> (53 - take)) << filled
            filled += take
        return out

    def getstate(self):
        raise NotImplementedError("StreamRandom's state is its generator's; reseed with SampleRNG.reseed")

    def setstate(self, state) -> None:
        raise NotImplementedError("StreamRandom's state is its generator's; reseed with SampleRNG.reseed")


class SampleRNG:
    """The pair of generators handed to albumentations, reseeded per sample from a 64-bit key."""

    def __init__(self) -> None:
        self._bits = np.random.PCG64(0)
        self.np = np.random.Generator(self._bits)
        self.py = StreamRandom(self.np)
        self._words = {"state": 0, "inc": 1}
        self._state = {"bit_generator": "PCG64", "state": self._words, "has_uint32": 0, "uinteger": 0}

    def reseed(self, key: int, state: int | None = None) -> None:
        """Start both generators at ``key``'s stream; ``state`` is the key's PCG64 state word when already
        computed (:func:`view_keys`), else it is computed here."""
        words = self._words
        words["state"] = _splitmix(key ^ _STATE_SALT) if state is None else state
        words["inc"] = ((key << 1) | 1) & _MASK128
        self._bits.state = self._state
        self.py.seed()


# numpy's PCG64: state <- state * _PCG_MULT + inc (mod 2^128), output XSL-RR of the new state
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_M32 = np.uint64(0xFFFFFFFF)


def _mul64(a: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) 64-bit words of the 128-bit products of uint64 ``a`` with the 64-bit constant ``b``."""
    b0, b1 = np.uint64(b & 0xFFFFFFFF), np.uint64(b >> 32)
    a0, a1 = a & _M32, a >> np.uint64(32)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> np.uint64(32)) + (p01 & _M32) + (p10 & _M32)
    high = p11 + (p01 >> np.uint64(32)) + (p10 >> np.uint64(32)) + (mid >> np.uint64(32))
    return high, a * np.uint64(b)


def stream_floats(keys: list[int], states: list[int], n: int) -> np.ndarray:
    """float64 (len(keys), n): the first ``n`` floats each key's ``SampleRNG.py.random()`` returns after
    ``reseed(key, state)`` (``n`` at most 16, the stream's first batch), computed for every key at once.

    PCG64 after ``j`` steps from state ``s`` with increment ``c`` is ``M^j s + (M^(j-1) + ... + 1) c``
    (mod 2^128); each float is ``(XSL-RR output >> 11) 2^-53``, as ``numpy.random.Generator.random``.
    """
    if not 0 <= n <= _BATCH:
        raise ValueError(f"n must be in [0, {_BATCH}], got {n}")
    s = np.asarray(states, dtype=np.uint64)
    key = np.asarray(keys, dtype=np.uint64)
    inc_lo, inc_hi = (key << np.uint64(1)) | np.uint64(1), key >> np.uint64(63)
    out = np.empty((len(s), n))
    power, total = 1, 0  # M^j and M^(j-1) + ... + 1, mod 2^128
    for j in range(n):
        power, total = power * _PCG_MULT & _MASK128, (total * _PCG_MULT + 1) & _MASK128
        a_hi, a_lo = power >> 64, power & _MASK
        c_hi, c_lo = total >> 64, total & _MASK
        hi1, lo1 = _mul64(s, a_lo)
        hi1 += s * np.uint64(a_hi)
        hi2, lo2 = _mul64(inc_lo, c_lo)
        hi2 += inc_lo * np.uint64(c_hi) + inc_hi * np.uint64(c_lo)
        lo = lo1 + lo2
        hi = hi1 + hi2 + (lo < lo1).astype(np.uint64)
        x, rot = hi ^ lo, hi >> np.uint64(58)
        word = (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))
        out[:, j] = (word >> np.uint64(11)).astype(np.float64) * (1.0 / _TWO_53)
    return out

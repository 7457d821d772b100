"""densify.quality.heldout_shift: is the held-out set drawn like the training set (closed forms, simulated shifts)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from densify.quality import heldout_shift, shift_shares, shift_split


def test_shift_shares_closed_form():
    """k = 1 on a line: reference points 0, 10, ..., 40 have radius 10 (strictly inside: distance < 10). Probe 5 and
    15 are inside, 100 is not; held-out 50.5 (10.5 from 40) and 200 are not."""
    reference = np.arange(0, 50, 10, dtype=np.float32)[:, None]
    probe = np.array([[5.0], [15.0], [100.0]], np.float32)
    held = np.array([[50.5], [200.0]], np.float32)
    s = shift_shares(reference, probe, held, k=1)
    assert s["train_share"] == pytest.approx(2 / 3) and s["heldout_share"] == 0.0
    se = math.sqrt((2 / 3) * (1 / 3) / 3)
    assert s["deficit"] == pytest.approx(2 / 3)
    assert s["low"] == pytest.approx(2 / 3 - 1.96 * se) and s["high"] == pytest.approx(2 / 3 + 1.96 * se)
    assert (s["n_reference"], s["n_probe"], s["n_heldout"], s["k"]) == (5, 3, 2, 1)


def test_shift_split_is_a_seeded_partition():
    ref, probe, held = shift_split(101, 30, seed=3, sample=40)
    assert len(ref) == 40 and len(probe) == 40 and len(held) == 30
    assert not set(ref) & set(probe) and all(np.diff(ref) > 0) and all(np.diff(probe) > 0)
    again = shift_split(101, 30, seed=3, sample=40)
    assert all(np.array_equal(a, b) for a, b in zip((ref, probe, held), again, strict=True))
    assert len(shift_split(10, 50, seed=0, sample=20)[2]) == 20


def test_same_distribution_is_not_a_shift_and_a_moved_one_is():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(4000, 16)).astype(np.float32)
    same = heldout_shift(train, rng.normal(size=(1000, 16)).astype(np.float32))
    assert not same["shifted"] and same["low"] < 0 < same["high"]
    moved = rng.normal(size=(1000, 16)).astype(np.float32)
    moved[:, 0] += 4.0  # off the training cloud along one direction
    off = heldout_shift(train, moved)
    assert off["shifted"] and off["deficit"] > 0.5 and off["low"] > 0
    # significant but small: not called a shift
    slight = rng.normal(size=(20000, 16)).astype(np.float32)
    slight[:, 0] += 0.5
    small = heldout_shift(train, slight, sample=20000)
    assert small["low"] > 0 and small["deficit"] < small["floor"] and not small["shifted"]
    assert heldout_shift(train[:10], moved, k=5) is None


def test_a_heldout_set_more_alike_than_training_is_concentrated_not_shifted():
    """Held-out points drawn from the training distribution shrunk toward its centre (as blurring pulls images
    together) fall inside more reference balls than the probe half: ``concentrated``, and not ``shifted``."""
    rng = np.random.default_rng(1)
    # d = 32: about 78% of the probe half lies inside some reference ball, leaving room for an excess (in d = 8 it
    # is 95%, and no held-out set can exceed it by the floor)
    train = rng.normal(size=(4000, 32)).astype(np.float32)
    same = heldout_shift(train, rng.normal(size=(1000, 32)).astype(np.float32))
    assert not same["concentrated"] and not same["shifted"]
    shrunk = heldout_shift(train, 0.7 * rng.normal(size=(1000, 32)).astype(np.float32))
    assert shrunk["concentrated"] and not shrunk["shifted"]
    assert shrunk["deficit"] <= -shrunk["floor"] and shrunk["high"] < 0
    # the same excess under a higher floor is reported but not called
    assert not heldout_shift(train, 0.7 * rng.normal(size=(1000, 32)).astype(np.float32), floor=0.5)[
        "concentrated"
    ]


def test_the_summary_names_a_concentrated_heldout_set():
    from densify.data import load_data
    from densify.quality import find_data_issues, summary_lines

    data = load_data("synth:shapes?train=200&heldout=200&size=16")
    features = lambda s: s.images[:, ::4, ::4].reshape(len(s), -1).astype(np.float32)  # noqa: E731
    summary = find_data_issues(data, features(data.train), features(data.heldout)).summary
    assert summary["shift"]["concentrated"] is False  # drawn alike
    concentrated = {"train_share": 0.62, "heldout_share": 0.91, "deficit": -0.29, "low": -0.32, "high": -0.26,
                    "n_reference": 100, "n_probe": 100, "n_heldout": 200, "k": 5, "floor": 0.1, "shifted": False,
                    "concentrated": True}  # fmt: skip
    (line,) = [x for x in summary_lines({**summary, "shift": concentrated}) if x.startswith("SHIFT:")]
    assert "more alike than training images" in line and "91%" in line and "62%" in line
    calm = summary_lines({**summary, "shift": {**concentrated, "concentrated": False}})
    assert not any(x.startswith("SHIFT:") for x in calm) and any("drawn like the training" in x for x in calm)

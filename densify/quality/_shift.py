"""Is the held-out set drawn like the training set? A two-sample check in label-free features.

densify's training-free predictors measure a recipe's views against the training images (fidelity: the share of views
inside some training image's k-NN ball). That is the right yardstick when held-out images come from the same
distribution as the training images. When they do not (a train/test shift: the predictor study's ``shapes-gap``
condition trains on shapes rotated 0-20 degrees and tests on 0-360), the recipes whose views reach the held-out
images leave the training manifold, fidelity penalises them, and the ranking misleads (rho +0.44 there, the best
recipe ranked low).

The check: split the training embeddings at random into a *reference* half and a *probe* half. Under no shift,
held-out images and probe images are exchangeable draws from one distribution, so the same share of each falls
inside some reference k-NN ball (radii within the reference half). A held-out share well below the probe share
means held-out images lie where training images do not. Reported: both shares, their difference (the *deficit*) and
its 95% interval (normal approximation for two independent proportions, given the reference half); the held-out
set counts as shifted when the interval lies above zero and the deficit is at least ``SHIFT_FLOOR`` (a tenth of
the images: large samples make small deficits significant, and small ones do not move a ranking).

The features must not have been fitted to the training images: an encoder trained on them pulls them together, and
the probe half, which it has seen, then lies inside the reference balls far more often than unseen held-out images
do, shift or not (Fashion-MNIST, 1,000 training images, the audit's label-trained ``reference`` encoder: probe 0.92
against held-out 0.29, and deficits of 0.18-0.86 on all 11 unshifted conditions of the predictor study). They must
also see the shift: random-CNN features and 32 principal components of the pixels raised no false alarm there
either, but saw nothing of shapes-gap's rotation gap (deficits +0.016 and +0.003: their balls hold nearly
everything). The audit uses the duplicate search's 16 x 16 grayscale thumbnails (centred, unit norm: fitted to
nothing, computed anyway): deficits of -0.034 to +0.023 on the 11 unshifted conditions, +0.35 on shapes-gap; being
normalised, they do not see shifts of brightness or contrast (benchmarks/data_quality/shift.py).
"""

from __future__ import annotations

import math

import numpy as np

#: at most this many points in each of the reference half, the probe half and the held-out sample (seeded): the shares
#: are proportions, and 10,000 points pin each to about +-0.01
SHIFT_SAMPLE = 10_000
#: a deficit below this share of the images is not called a shift, however significant
SHIFT_FLOOR = 0.1


def shift_shares(reference: np.ndarray, probe: np.ndarray, heldout: np.ndarray, k: int = 5) -> dict:
    """The probe's and the held-out points' shares inside some ``reference`` k-NN ball (radius: the distance to the
    k-th nearest other reference point; strictly inside), their difference (probe - held-out) and its 95% interval."""
    from densify.coverage import ball_counts

    p_probe = float(np.mean(ball_counts(reference, probe, k) > 0))
    p_held = float(np.mean(ball_counts(reference, heldout, k) > 0))
    deficit = p_probe - p_held
    se = math.sqrt(p_probe * (1 - p_probe) / len(probe) + p_held * (1 - p_held) / len(heldout))
    return {
        "train_share": p_probe,
        "heldout_share": p_held,
        "deficit": deficit,
        "low": deficit - 1.96 * se,
        "high": deficit + 1.96 * se,
        "n_reference": len(reference),
        "n_probe": len(probe),
        "n_heldout": len(heldout),
        "k": int(k),
    }


def shift_split(n_train: int, n_heldout: int, seed: int = 0, sample: int = SHIFT_SAMPLE):
    """(reference, probe, held-out) sorted row indices: a seeded permutation of the training rows cut in halves,
    each cut to ``sample`` rows, and at most ``sample`` held-out rows."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_train)
    half = n_train // 2
    reference = np.sort(order[: min(half, sample)])
    probe = np.sort(order[half : half + min(n_train - half, sample)])
    held = (
        np.sort(rng.choice(n_heldout, sample, replace=False)) if n_heldout > sample else np.arange(n_heldout)
    )
    return reference, probe, held


def heldout_shift(
    train,
    heldout,
    k: int = 5,
    seed: int = 0,
    sample: int = SHIFT_SAMPLE,
    floor: float = SHIFT_FLOOR,
) -> dict | None:
    """:func:`shift_shares` for :func:`shift_split`'s reference and probe halves of ``train`` and its sample of
    ``heldout``, with ``floor``, ``shifted`` (the deficit's interval lies above zero and the deficit is at least
    ``floor``: held-out images lie where training images do not) and ``concentrated`` (the other direction: the
    interval lies below zero and the held-out share exceeds the probe's by at least ``floor``: held-out images are
    more alike than training images, as blurred or lower-resolution ones are). None when a half holds no more than
    ``k`` points."""
    train, heldout = np.asarray(train), np.asarray(heldout)
    reference, probe, held = shift_split(len(train), len(heldout), seed, sample)
    if len(reference) <= k or len(probe) == 0 or len(held) == 0:
        return None
    out = shift_shares(train[reference], train[probe], heldout[held], k)
    out["floor"] = floor
    out["shifted"] = bool(out["low"] > 0 and out["deficit"] >= floor)
    out["concentrated"] = bool(out["high"] < 0 and -out["deficit"] >= floor)
    return out

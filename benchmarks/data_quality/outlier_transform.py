"""Do inverted photographs give themselves away to a model that has learnt which way up and which tone is natural?
A self-supervised transformation-prediction outlier score, tested.

    python benchmarks/data_quality/outlier_transform.py [--photos ../shared/data]

Why: neither the k-NN outlier score (label-free features), the noise score (thumbnail PCA residual) nor colour
histograms (``outlier_colour.py``) find ``detect.py``'s planted *inverted* images on photographs: an inverted photo
is, by every statistic that ignores what photos look like, a plausible photo. Golan & El-Yaniv (NeurIPS 2018,
"Deep Anomaly Detection Using Geometric Transformations") score a sample by how well a classifier trained to tell
which transformation was applied to the *normal* data recognises the transformations of that sample: a model that
has learnt that skies are bright and above, shadows dark and below, calls an inverted photo "inverted" and its
inversion (the original photo) "untouched", so it gets every transformation wrong.

The score, fixed before any run: four transformations, two binary factors that natural images are not invariant to
(tone: x or 255 - x; up-down: as is or flipped vertically), each image under all four; densify's small CNN (four
conv stages, width 16; no labels used) trained to predict which of the four was applied, Adam (learning rate 1e-3),
500 steps of 32 images (x 4 transformations), torch seed 0; two-fold cross-fitting (the training images split in two
halves at random with seed 0, each half scored by the model trained on the other half, so no image is scored by a
model that saw it); held-out images scored by the mean of the two models. Score = the mean over the four
transformations of -log p(the applied transformation | the transformed image), over the median of the training
images' scores.

Rule, written before the first run:
  - a ranking column of the data-quality table if, on both photo sets, at least 7 of the 10 planted inverted
    images are among the 20 highest-scoring training images (of about 2,040): the colour histograms' rule;
  - also a flag, at a score of 2 (twice the median, as the k-NN outlier ratio), if that flags at least 7 of the 10
    planted inverted images on both photo sets and at most 1% of the other training images and of the held-out
    images on every dataset.
Grayscale sets are judged for the flag's false alarms only (the k-NN flag already finds their inverted images).
Results: outlier_transform-results.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from detect import photos_args, planted_outliers  # noqa: E402

TOP = 20
STEPS = 500
BATCH = 32
FLAG = 2.0


def transformed(x):
    """(4N, C, H, W) float tensor and (4N,) labels: every image under the four transformations, in blocks."""
    import torch

    views = [x, 1.0 - x, torch.flip(x, dims=[2]), 1.0 - torch.flip(x, dims=[2])]
    labels = torch.arange(4).repeat_interleave(len(x))
    return torch.cat(views), labels


def fit(images: np.ndarray, seed: int = 0):
    import torch

    from densify.train.models import build_model

    torch.manual_seed(seed)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    model = build_model("small-cnn", x.shape[1], 4)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(STEPS):
        batch, labels = transformed(x[torch.randint(0, len(x), (BATCH,), generator=g)])
        loss = torch.nn.functional.cross_entropy(model(batch), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def raw_scores(model, images: np.ndarray) -> np.ndarray:
    """Mean over the four transformations of -log p(applied | transformed image), per image."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    out = []
    with torch.no_grad():
        for start in range(0, len(x), 256):
            part = x[start : start + 256]
            batch, labels = transformed(part)
            logp = torch.log_softmax(model(batch), dim=1)[torch.arange(len(batch)), labels]
            out.append((-logp.reshape(4, len(part)).mean(dim=0)).numpy())
    return np.concatenate(out).astype(np.float64)


def transform_scores(train: np.ndarray, heldout: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train scores, held-out scores) over the training median, two-fold cross-fitted (see the docstring)."""
    half = np.random.default_rng(seed).permutation(len(train)) < len(train) // 2
    scores = np.empty(len(train))
    models = []
    for fold in (half, ~half):
        model = fit(train[fold], seed)
        scores[~fold] = raw_scores(model, train[~fold])
        models.append(model)
    held = np.mean([raw_scores(m, heldout) for m in models], axis=0)
    median = np.median(scores)
    return scores / median, held / median


def main(argv=None) -> None:
    args = photos_args(__doc__, argv)
    import torch

    torch.set_num_threads(2)
    out = {}
    for name in ("fashion", "digits", "intel", "flowers"):
        start = time.perf_counter()
        planted, labels, _, noise, inverted, others = planted_outliers(name, args.photos)
        scores, held = transform_scores(np.asarray(planted.train.images), np.asarray(planted.heldout.images))
        order = np.argsort(-scores, kind="stable")
        rank = np.empty(len(order), int)
        rank[order] = np.arange(len(order))
        out[name] = {
            "train_images": len(labels),
            "heldout_images": len(held),
            "seconds": round(time.perf_counter() - start, 1),
            "inverted_in_top": int(np.sum(rank[inverted] < TOP)),
            "noise_in_top": int(np.sum(rank[noise] < TOP)),
            "inverted_ranks": sorted(int(v) + 1 for v in rank[inverted]),
            "noise_ranks": sorted(int(v) + 1 for v in rank[noise]),
            "flagged": {
                "inverted": int(np.sum(scores[inverted] >= FLAG)),
                "noise": int(np.sum(scores[noise] >= FLAG)),
                "others": int(np.sum(scores[others] >= FLAG)),
                "others_share": round(float(np.mean(scores[others] >= FLAG)), 4),
                "heldout": int(np.sum(held >= FLAG)),
                "heldout_share": round(float(np.mean(held >= FLAG)), 4),
            },
        }
        print(name, json.dumps(out[name]), flush=True)
    photos = ("intel", "flowers")
    column = all(out[n]["inverted_in_top"] >= 7 for n in photos)
    flag = all(out[n]["flagged"]["inverted"] >= 7 for n in photos) and all(
        out[n]["flagged"]["others_share"] <= 0.01 and out[n]["flagged"]["heldout_share"] <= 0.01 for n in out
    )
    out["rule_adopts_ranking_column"] = column
    out["rule_adopts_flag"] = flag
    print("ranking column:", column, "flag:", flag)
    (HERE / "outlier_transform-results.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

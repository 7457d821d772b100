"""Do inverted photographs stand out by their tones and colours? A colour-histogram outlier ranking, tested.

    python benchmarks/data_quality/outlier_colour.py [--photos ../shared/data]

Why: neither the k-NN outlier score (label-free features) nor the noise score (thumbnail PCA residual) finds
``detect.py``'s planted *inverted* images on photographs (an inverted photo has a photo's spectrum, and in
random-CNN or pixel features it is no farther from a class than the class's photos are from each other). Inverting
maps a natural photo's tones and colours to rare ones (bright shadows, dark skies, magenta foliage), so its
histogram of tones and opponent colours should be unlike its class's.

The score, fixed before any run: each image's joint histogram over 8 luminance bins ((R+G+B)/3) x 3 red-green
bins (R-G below -24, within +-24, above +24) x 3 yellow-blue bins ((R+G)/2-B, the same cuts) of its pixels at the
working size (72 bins, summing to 1; grayscale images fill only the middle colour bins), square-rooted (so that
Euclidean distance is the Hellinger distance), then the audit's k-NN outlier score on those vectors: the distance
to the 5th nearest training image of the same class over the class's median of that distance
(``densify.quality._outliers.outlier_scores``).

Rule, written before the first run: the score becomes a ranking column of the data-quality table if, on both photo
sets, at least 7 of the 10 planted inverted images are among the 20 highest-scoring training images (of about
2,040); grayscale sets are reported, not judged (the k-NN flag already finds inverted Fashion-MNIST images). It
never becomes a flag by this benchmark. Results: outlier_colour-results.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from detect import photos_args, planted_outliers  # noqa: E402

CUT = 24.0  # opponent-colour bin edges: -CUT and +CUT
TOP = 20


def colour_histograms(images: np.ndarray) -> np.ndarray:
    """float64 (N, 72): each uint8 (H, W, C) image's joint histogram of luminance (8 bins) x red-green (3) x
    yellow-blue (3), as shares of its pixels."""
    x = np.asarray(images, dtype=np.float32)
    r, g, b = (x[..., 0], x[..., 0], x[..., 0]) if x.shape[-1] == 1 else (x[..., 0], x[..., 1], x[..., 2])
    lum = np.minimum((r + g + b) / 3.0 * 8 / 256, 7).astype(np.int64)
    rg = np.digitize(r - g, [-CUT, CUT])
    yb = np.digitize((r + g) / 2.0 - b, [-CUT, CUT])
    bins = (lum * 9 + rg * 3 + yb).reshape(len(x), -1)
    out = np.zeros((len(x), 72))
    rows = np.repeat(np.arange(len(x)), bins.shape[1])
    np.add.at(out, (rows, bins.ravel()), 1.0)
    return out / bins.shape[1]


def main(argv=None) -> None:
    args = photos_args(__doc__, argv)
    from densify.quality import _outliers

    out = {}
    for name in ("fashion", "digits", "intel", "flowers"):
        planted, labels, _, noise, inverted, others = planted_outliers(name, args.photos)
        features = np.sqrt(colour_histograms(planted.train.images)).astype(np.float32)
        scores = _outliers.outlier_scores(features, labels)
        order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
        rank = np.empty(len(order), int)
        rank[order] = np.arange(len(order))
        out[name] = {
            "train_images": len(labels),
            "inverted_in_top": int(np.sum(rank[inverted] < TOP)),
            "noise_in_top": int(np.sum(rank[noise] < TOP)),
            "inverted_ranks": sorted(int(v) + 1 for v in rank[inverted]),
            "noise_ranks": sorted(int(v) + 1 for v in rank[noise]),
            "flagged_at_outlier_ratio": {
                "inverted": int(np.sum(scores[inverted] >= _outliers.OUTLIER_RATIO)),
                "noise": int(np.sum(scores[noise] >= _outliers.OUTLIER_RATIO)),
                "others": int(np.sum(scores[others] >= _outliers.OUTLIER_RATIO)),
            },
        }
        print(name, json.dumps(out[name]), flush=True)
    adopt = all(out[n]["inverted_in_top"] >= 7 for n in ("intel", "flowers"))
    out["rule_adopts_colour_score"] = adopt
    print("adopt the colour score as a ranking column:", adopt)
    (HERE / "outlier_colour-results.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

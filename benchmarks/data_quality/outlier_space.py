"""Off-manifold outliers in the full label-free features or in their top 64 principal components?

    python benchmarks/data_quality/outlier_space.py [--photos ../shared/data]

The planted faults of ``detect.py`` (20 training images replaced by uniform noise or another class's image
inverted) on its four datasets; for each label-free encoder, the outlier flags (k-th same-class neighbour distance
over the class median >= 2) in the full features and in their top 64 principal components (``NEAR_COMPONENTS``):
recall of the planted outliers and flags on other images. Why: the per-class neighbour searches are exact and
quadratic in a class's size, and 64 dimensions make them 8x cheaper than random-cnn's 512.

Rule, written before the run: move the outlier search to the projection if, with the default data-quality encoder
(random-cnn), its recall is no lower on any dataset and its other flags are at most 2x + 5 there. Results:
outlier_space-results.json (2026-11-28: adopted; see docs/data-quality.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from detect import LABEL_FREE, photos_args, planted_outliers  # noqa: E402


def main(argv=None) -> None:
    args = photos_args(__doc__, argv)
    from densify.estimate import clean_embeddings
    from densify.quality import _labels, _outliers
    from densify.quality._issues import NEAR_COMPONENTS

    out = {}
    for name in ("fashion", "digits", "intel", "flowers"):
        planted, labels, rows, _, _, others = planted_outliers(name, args.photos)
        for enc in LABEL_FREE:
            tf = np.asarray(clean_embeddings(planted, encoder=enc, cache_dir=None)[0], np.float32)
            near = _labels.principal_projection(tf, components=NEAR_COMPONENTS)[0].astype(np.float32)
            res = {}
            for space, features in (("full", tf), ("pc64", near)):
                s = _outliers.outlier_scores(features, labels)
                flagged = np.isfinite(s) & (s >= _outliers.OUTLIER_RATIO)
                res[space] = {
                    "dimensions": features.shape[1],
                    "recall": float(flagged[rows].mean()),
                    "other_flags": int((flagged & others).sum()),
                    "train_images": len(labels),
                }
            out[f"{name}-{enc}"] = res
            print(name, enc, json.dumps(res), flush=True)
    default = [v for k, v in out.items() if k.endswith("-random-cnn")]
    adopt = all(
        v["pc64"]["recall"] >= v["full"]["recall"]
        and v["pc64"]["other_flags"] <= 2 * v["full"]["other_flags"] + 5
        for v in default
    )
    out["rule_adopts_projection"] = adopt
    print("adopt the projection:", adopt)
    (HERE / "outlier_space-results.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Does fixing the flagged labels help? Trained confirmation of ``densify.quality`` (issue 17, item 3).

    python benchmarks/data_quality/fixing.py [--datasets fashion,digits] [--noise 0.1] [--kind uniform|pair]

Per dataset (the detection benchmark's splits: detect.py), a known share of training labels is flipped (uniform,
or class-pair: class c to c + 1; seed 1), then densify's small CNN is trained (600 steps x 64, 3 seeds, the predictor study's budget) on four
versions of the training set, each with ``none`` and ``affine-light``:
- ``clean``: the original labels (the ceiling);
- ``noisy``: the flipped labels as they are;
- ``removed``: the noisy set without the samples confident learning flags (densify.quality's default encoder);
- ``relabelled``: the noisy set with each flagged sample given the probe's suggested label.
Reported: held-out accuracy, the paired (same seeds) differences removed - noisy and relabelled - noisy, and
the recipe's gain over none under clean and under noisy labels (does augmentation spread a wrong label over its
views?). Results: benchmarks/data_quality/fixing-results.json, resumable per dataset (and noise kind: class-pair
entries are keyed ``NAME-pair``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from detect import flip_labels, load  # noqa: E402

RESULT = HERE / "fixing-results.json"
RECIPES = ("none", "affine-light")
SEEDS = 3
STEPS, BATCH = 600, 64


def paired(a: list[float], b: list[float]) -> dict:
    """Mean of a - b over paired seeds, with a 95% t-interval (in accuracy points)."""
    from scipy import stats

    d = 100 * (np.asarray(a) - np.asarray(b))
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return {"mean": round(float(d.mean()), 3), "low": round(float(d.mean() - half), 3),
            "high": round(float(d.mean() + half), 3)}  # fmt: skip


def versions(data, noise: float, cache: Path, kind: str = "uniform"):
    from densify.quality import data_issues

    n_classes = len(data.classes)
    labels, flipped = flip_labels(np.asarray(data.train.labels), n_classes, noise, kind, seed=1)
    noisy = replace(data, train=replace(data.train, labels=labels))
    issues = data_issues(noisy, cache_dir=cache)
    rows = [r for r in issues.rows if r["split"] == "train"]
    flagged = np.array(["label" in r["issues"].split(";") for r in rows])
    keep = np.flatnonzero(~flagged)
    suggested = labels.copy()
    index = {c: i for i, c in enumerate(data.classes)}
    for i in np.flatnonzero(flagged):
        suggested[i] = index[rows[i]["suggested_label"]]
    detection = {
        "flipped": int(flipped.sum()),
        "flagged": int(flagged.sum()),
        "flagged_and_flipped": int((flagged & flipped).sum()),
        "relabelled_correctly": int((suggested[flagged] == np.asarray(data.train.labels)[flagged]).sum()),
    }
    sets = {
        "clean": data,
        "noisy": noisy,
        "removed": replace(noisy, train=noisy.train.subset(keep)),
        "relabelled": replace(noisy, train=replace(noisy.train, labels=suggested)),
    }
    return sets, detection


def run(name: str, args, results: dict) -> None:
    from densify.train import TrainConfig, train_recipes

    key = name if args.kind == "uniform" else f"{name}-{args.kind}"
    if key in results and "accuracy" in results[key]:
        print(f"{key}: done already", flush=True)
        return
    data = load(name, args.photos)
    sets, detection = versions(data, args.noise, args.cache, args.kind)
    print(name, json.dumps(detection), flush=True)
    accuracy: dict[str, dict[str, list[float]]] = {}
    start = time.perf_counter()
    for version, split in sets.items():
        summaries = train_recipes(
            split, RECIPES, range(SEEDS), TrainConfig(steps=STEPS, batch=BATCH),
            out=args.out / key / version,
        )  # fmt: skip
        for s in summaries:
            runs = sorted(s.runs, key=lambda r: r.seed)
            accuracy.setdefault(version, {})[s.recipe] = [r.heldout_accuracy for r in runs]
            print(name, version, s.recipe, [f"{100 * r.heldout_accuracy:.2f}" for r in runs], flush=True)
    fix = {
        f"{v} - noisy ({recipe})": paired(accuracy[v][recipe], accuracy["noisy"][recipe])
        for v in ("removed", "relabelled", "clean")
        for recipe in RECIPES
    }
    recipe_gain = {v: paired(accuracy[v]["affine-light"], accuracy[v]["none"]) for v in sets}
    results[key] = {
        "noise": args.noise,
        "kind": args.kind,
        "train": len(data.train),
        "heldout": len(data.heldout),
        "detection": detection,
        "accuracy": accuracy,
        "fix_gain_points": fix,
        "affine_light_gain_points": recipe_gain,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    from densify._io import write_text_atomic

    write_text_atomic(RESULT, json.dumps(results, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="fashion,digits")
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--kind", choices=("uniform", "pair"), default="uniform")
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=ROOT / "predictor-study" / "cache")
    parser.add_argument("--out", type=Path, default=ROOT / "predictor-study" / "fixing")
    args = parser.parse_args()
    results = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    for name in args.datasets.split(","):
        run(name, args, results)


if __name__ == "__main__":
    main()

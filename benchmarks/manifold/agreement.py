"""Does embedding-space coverage track coverage of the true manifold? (issue: the manifold lab)

On each known-factor family, with a training set that covers only part of some factor's range, every recipe
whose effect on the factors is known exactly (``densify.manifold.view_factors``) gets its held-out coverage gain
and densification twice: in factor space (the ground truth: ``factor_coordinates``) and in each encoder's embedding
space (``densify.estimate_coverage``, the same views: same seed and keys). The agreement is Spearman's rho over
recipes, per family, encoder and metric.

Fixed before any result was seen: the three conditions below (one factor-range gap per family, chosen from what a
user plausibly faces: a rotation range, a position/size range, a rotation plus a lighting range), the recipe list
(the built-in recipes that are exact in factor space plus the validation recipes in ``recipes/``), k = 5, 2 views,
seed 0, and the target (rho >= 0.9 for the best encoder on each family).

Run: ``python benchmarks/manifold/agreement.py [--out benchmarks/manifold/results]`` (about 10 minutes on two
cores). Writes ``agreement.json`` and ``agreement.md`` (the table in docs/manifold-lab.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONDITIONS = {
    "shapes": "synth:shapes?train=1000&heldout=1000&rotation=0:60/0:360",
    "arrows": "synth:arrows?train=1000&heldout=1000&x=-0.15:0/-0.15:0.15&scale=0.6:0.75/0.6:0.9",
    "colours": "synth:colours?train=1200&heldout=1200&rotation=0:45/0:360&brightness=0.8:1/0.6:1",
}
BUILTIN = ["none", "flip", "vflip", "affine-light", "crop-pad"]
ENCODERS = ["reference", "reference+views", "random-cnn", "pixels"]
METRICS = ["coverage_gain", "densification"]
K, VIEWS, SEED = 5, 2, 0


def spearman(a, b) -> float | None:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def run(out: Path, encoders: list[str], families: list[str]) -> dict:
    from densify.data import load_data
    from densify.estimate import estimate_coverage
    from densify.loader import load_recipe
    from densify.manifold import factor_coordinates, factor_coverage, view_factors

    recipes = BUILTIN + sorted(str(p) for p in (HERE / "recipes").glob("*.yaml"))
    results: dict = {
        "settings": {"k": K, "views": VIEWS, "seed": SEED, "conditions": CONDITIONS},
        "families": {},
    }
    for family in families:
        spec = CONDITIONS[family]
        data = load_data(spec)
        held = factor_coordinates(data.heldout.factors, data.heldout.labels, family, data.heldout.factors)
        train = factor_coordinates(data.train.factors, data.train.labels, family, data.heldout.factors)
        factor, exact, skipped = {}, [], {}
        for recipe in recipes:
            augmenter = load_recipe(recipe, seed=SEED, output="numpy")
            name = augmenter.recipe.name
            views, why = view_factors(data.train, augmenter, VIEWS)
            if views is None:
                skipped[name] = why
                continue
            view_labels = np.repeat(data.train.labels, VIEWS)
            coords = factor_coordinates(views, view_labels, family, data.heldout.factors)
            factor[name] = factor_coverage(train, coords, held, K)
            exact.append(recipe)
        entry = {"spec": spec, "factor_space": factor, "skipped": skipped, "encoders": {}}
        for encoder in encoders:
            start = time.perf_counter()
            run_ = estimate_coverage(
                data, exact, encoder=encoder, k=K, views=VIEWS, seed=SEED, cache_dir=False
            )
            emb = {r.recipe: {m: r.metrics[m].value for m in METRICS} for r in run_.results}
            names = [n for n in factor if n in emb]
            entry["encoders"][encoder] = {
                "embedding_space": emb,
                "rho": {
                    m: spearman([factor[n][m] for n in names], [emb[n][m] for n in names]) for m in METRICS
                },
                "seconds": round(time.perf_counter() - start, 1),
            }
            print(
                family,
                encoder,
                entry["encoders"][encoder]["rho"],
                f"{time.perf_counter() - start:.0f}s",
                flush=True,
            )
        results["families"][family] = entry
        out.mkdir(parents=True, exist_ok=True)
        (out / "agreement.json").write_text(json.dumps(results, indent=2))
    (out / "agreement.md").write_text(table(results))
    return results


def table(results: dict) -> str:
    lines = [
        "| family (train gap) | encoder | rho coverage gain | rho densification |",
        "|---|---|---|---|",
    ]
    for family, entry in results["families"].items():
        for encoder, e in entry["encoders"].items():
            rho = [("-" if e["rho"][m] is None else f"{e['rho'][m]:+.2f}") for m in METRICS]
            lines.append(f"| {family} | {encoder} | {rho[0]} | {rho[1]} |")
    lines.append("")
    for family, entry in results["families"].items():
        factor = entry["factor_space"]
        lines.append(f"**{family}** (`{entry['spec']}`), factor space, per recipe:")
        lines.append("")
        lines.append(
            "| recipe | coverage gain | densification | "
            + " | ".join(f"{e} dens." for e in entry["encoders"])
            + " |"
        )
        lines.append("|---|---|---|" + "---|" * len(entry["encoders"]))
        for name, f in sorted(factor.items(), key=lambda kv: -kv[1]["densification"]):
            emb = [f"{e['embedding_space'][name]['densification']:.3f}" for e in entry["encoders"].values()]
            lines.append(
                f"| {name} | {f['coverage_gain']:+.3f} | {f['densification']:.3f} | " + " | ".join(emb) + " |"
            )
        if entry["skipped"]:
            lines.append("")
            lines.append(
                "Not exact in factor space (left out): "
                + "; ".join(f"{k} ({v})" for k, v in entry["skipped"].items())
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--families", default=",".join(CONDITIONS))
    args = parser.parse_args(argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    run(args.out, args.encoders.split(","), args.families.split(","))
    print((args.out / "agreement.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

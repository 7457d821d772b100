"""The manifold lab: a dataset whose manifold is known, a training set that covers only part of it, and the recipe
that fills exactly the missing part, measured before training and confirmed by it.

    python examples/manifold_lab.py [--out manifold-lab] [--steps 600] [--seeds 3]

1. ``synth:shapes``: four shapes whose class does not depend on rotation; the training images are rotated only by
   0-60 degrees, the held-out images by anything. The training set samples a slice of the manifold.
2. Coverage in factor space (the truth) and in the encoder's embedding space (what densify can see on real data),
   for four recipes: none, small rotations, any rotation (the missing factor range), any hue (a range the training
   set already covers).
3. The manifold diagnostics every audit reports: intrinsic dimension, how coverage grows with real data, and
   what each recipe's views are worth in real images.
4. The trained confirmation: held-out accuracy with each recipe, paired seeds.

Figures and ``summary.json`` go to ``--out``; docs/manifold-lab.md shows them. About 9 minutes on two cores (12 training
runs of about 45 s); a second run reuses every finished training run.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import densify
from densify.estimate import estimate_coverage
from densify.manifold import factor_coordinates, factor_coverage, view_factors

HERE = Path(__file__).resolve().parent
SPEC = "synth:shapes?train=1000&heldout=1000&rotation=0:60/0:360"
VALIDATION = HERE.parent / "benchmarks" / "manifold" / "recipes"
RECIPES = {
    "none": "none",
    "rotate-15": str(VALIDATION / "rotate-15.yaml"),
    "rotate-180": str(VALIDATION / "rotate-180.yaml"),
    "hue-50": str(VALIDATION / "hue-50.yaml"),
}
VIEWS, K, SEED = 2, 5, 0


def covered_by_angle(
    data, coords_train, coords_views, coords_held, bins: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """Share of held-out images covered in factor space, by their rotation (as a fraction of the shape's period)."""
    from densify.coverage import kth_neighbour_distance, nearest
    from densify.data._synth import SHAPE_PERIOD, SHAPES

    radii = kth_neighbour_distance(coords_held, K)
    base = coords_train if coords_views is None else np.concatenate([coords_train, coords_views])
    d, _ = nearest(coords_held, base)
    period = np.array([SHAPE_PERIOD[SHAPES[c]] for c in data.heldout.labels])
    phase = np.mod(data.heldout.factors[:, 0], period) / period
    which = np.minimum((phase * bins).astype(int), bins - 1)
    covered = d < radii
    return (np.arange(bins) + 0.5) / bins, np.array([covered[which == b].mean() for b in range(bins)])


def figures(out: Path, data, curves: dict, augmenters: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from densify.plots import BLACK, BLUE, GREEN, ORANGE, VERMILLION  # densify's colour-blind-safe palette

    # 1. what the training set holds, what held-out asks for, what the missing-range recipe adds
    rows = []
    cls = 1  # triangle: its 120-degree period is half covered by 0-60
    train_rows = np.flatnonzero(data.train.labels == cls)[:10]
    held_rows = np.flatnonzero(data.heldout.labels == cls)[:10]
    rows.append(np.concatenate(list(data.train.images[train_rows]), axis=1))
    rows.append(
        np.concatenate([augmenters["rotate-180"].view_of(data.train, i, 0) for i in train_rows], axis=1)
    )
    rows.append(np.concatenate(list(data.heldout.images[held_rows]), axis=1))
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    ax.imshow(np.concatenate(rows, axis=0))
    ax.set_yticks([16, 48, 80], ["train (0-60°)", "rotate-180 views", "held-out (0-360°)"])
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.savefig(out / "samples.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    # 2. factor-space coverage of held-out images by their rotation
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    colours = {"none": BLACK, "rotate-15": ORANGE, "rotate-180": GREEN, "hue-50": BLUE}
    for name, (x, y) in curves.items():
        ax.plot(x * 100, y, "o-", color=colours.get(name, VERMILLION), label=name, ms=4)
    ax.axvspan(0, 100 * 60 / 120, color="#eeeeee", zorder=0, label="train range (triangle)")
    ax.set_xlabel("held-out rotation (% of the shape's symmetry period)")
    ax.set_ylabel("held-out images covered\n(factor space)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(frameon=False, fontsize=7, ncol=2)
    fig.savefig(out / "coverage-by-rotation.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("manifold-lab"))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--encoder", default="reference+views")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    data = densify.load_data(SPEC)
    print(
        f"1. {SPEC}: {len(data.train)} training images rotated 0-60°, {len(data.heldout)} held-out rotated 0-360°"
    )

    # 2. coverage in factor space (the truth) and in embedding space (what densify sees)
    held = factor_coordinates(data.heldout.factors, data.heldout.labels, "shapes", data.heldout.factors)
    train = factor_coordinates(data.train.factors, data.train.labels, "shapes", data.heldout.factors)
    augmenters = {
        name: densify.load_recipe(path, seed=SEED, output="numpy") for name, path in RECIPES.items()
    }
    factor, curves = {}, {}
    for name, augmenter in augmenters.items():
        views, why = view_factors(data.train, augmenter, VIEWS)
        assert views is not None, why
        coords = factor_coordinates(
            views, np.repeat(data.train.labels, VIEWS), "shapes", data.heldout.factors
        )
        factor[name] = factor_coverage(train, coords, held, K)
        curves[name] = covered_by_angle(data, train, coords, held)
    run = estimate_coverage(data, list(RECIPES.values()), encoder=args.encoder, views=VIEWS, k=K, seed=SEED)
    embedding = {
        r.recipe: {m: r.metrics[m].value for m in ("coverage_clean", "coverage_augmented", "densification")}
        for r in run.results
    }
    print("2. held-out coverage, factor space (truth) vs embedding space (" + args.encoder + "):")
    for name in RECIPES:
        f, e = factor[name], embedding[name]
        print(
            f"   {name:11s} factor {f['coverage_augmented']:.3f} (dens. {f['densification']:.3f})   "
            f"embedding {e['coverage_augmented']:.3f} (dens. {e['densification']:.3f})"
        )

    # 3. the manifold diagnostics of the audit
    manifold = run.manifold.to_dict()
    dims = manifold["intrinsic_dimension"]
    varying = densify.parse_spec(SPEC).synth.varying()
    print(
        f"3. intrinsic dimension: {len(varying)} factors vary ({', '.join(varying)}); TwoNN on the pixels' "
        f"principal components {dims['pixels']['twonn']['overall']['value']:.1f}, on the embeddings "
        f"{dims['embeddings']['twonn']['overall']['value']:.1f}"
    )
    curve = manifold["curve"]
    print(f"   coverage vs training size: {dict(zip(curve['sizes'], curve['coverage'], strict=True))}")
    for need in curve["class_needs"]:
        print(
            f"   class {need['class']:8s} covered {need['coverage']:.2f}; fitted images to reach "
            f"{curve['target']:.0%}: {'>' if need['beyond'] else '~'}{need['multiple']}x"
            + (
                f"; best recipe {need['recipe']} ({need['recipe_coverage']:.2f})"
                if need.get("recipe")
                else ""
            )
        )
    names = {r.recipe: n for n, r in zip(RECIPES, run.results, strict=True)}
    multipliers = {names[k]: v for k, v in manifold["multipliers"].items()}
    print(f"   coverage-equivalent data multipliers: { {k: v['coverage'] for k, v in multipliers.items()} }")

    # 4. the trained confirmation
    from densify.train import TrainConfig, train_recipes

    summaries = train_recipes(
        data, list(RECIPES.values()), range(args.seeds), TrainConfig(steps=args.steps), out=args.out / "train"
    )
    trained = {}
    for name, s in zip(RECIPES, summaries, strict=True):
        d = s.to_dict()
        trained[name] = {"accuracy": d["accuracy"], "gain": d["gain_over_none"]}
        gain = d["gain_over_none"]
        print(
            f"4. {name:11s} held-out accuracy {100 * d['accuracy']['mean']:.1f}%"
            + (
                ""
                if gain is None
                else f", gain {100 * gain['mean']:+.1f} points [{100 * (gain['low'] or 0):+.1f}, "
                f"{100 * (gain['high'] or 0):+.1f}]"
            )
        )
    figures(args.out, data, curves, augmenters)
    summary = {
        "spec": SPEC,
        "factor_space": factor,
        "embedding_space": embedding,
        "encoder": args.encoder,
        "manifold": {**manifold, "multipliers": multipliers},
        "trained": trained,
        "steps": args.steps,
        "seeds": args.seeds,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"figures and summary.json in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

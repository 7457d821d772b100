"""Which working size for photographs? Accuracy and cost of the audit's trainer and encoder at 32, 48 and 64 px.

    python benchmarks/bench_working_size.py --photos ../shared/data [--out bench-working-size] [--sizes 32,64,48]

For each photo set (intel-scenes, flowers: 1,000 training and 1,000 held-out images, seed 0) and each working
size, the audit's default trainer (small-cnn, 600 steps x 64, the `densify evaluate` defaults) trains `none` and
`flip` with seeds 0 and 1 (recipes augment the stored 150/128 px images, then views are resized: the working-size
rule), and the coverage estimator runs the default 7 recipes with the reference encoder once per size on
intel-scenes. It reports held-out accuracy, the flip gain, seconds per run, and the projected wall time of a
default photo audit (7 recipes x 3 seeds of training + the coverage estimate).

Selection rule (fixed before any result was seen): among the sizes whose projected default photo audit takes at
most 15 minutes on this 2-core machine (timed with DENSIFY_TORCH_THREADS=1, a conservative bound: two threads
train 1.56x faster on an idle machine), the one with the highest `none` accuracy averaged over both photo sets and
both seeds; if no size fits, the smallest. Runs are stored under --out and reused; results in
--out/results.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

SETS = {"intel": "folder:{photos}/intel-scenes", "flowers": "folder:{photos}/flowers"}
TRAIN, HELDOUT, STEPS, BATCH, SEEDS = 1000, 1000, 600, 64, (0, 1)
BUDGET_S = 15 * 60


def _load(spec: str, size: int):
    from densify.data import load_data

    return load_data(spec, train_size=TRAIN, heldout_size=HELDOUT, seed=0, image_size=size)


def measure(args) -> dict:
    from densify._io import write_text_atomic
    from densify.audit import DEFAULT_RECIPES
    from densify.estimate import estimate_coverage
    from densify.train import TrainConfig, train_recipes

    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {"train": {}, "coverage": {}}
    for size in args.sizes:
        for name, spec in SETS.items():
            key = f"{name}@{size}"
            if key in results["train"]:
                continue
            data = _load(spec.format(photos=args.photos), size)
            start = time.perf_counter()
            summaries = train_recipes(
                data,
                ["none", "flip"],
                SEEDS,
                TrainConfig(steps=STEPS, batch=BATCH),
                out=args.out / "runs" / key,
            )
            results["train"][key] = {
                "wall_s": time.perf_counter() - start,
                "recipes": {
                    s.recipe: {
                        "accuracy": [r.heldout_accuracy for r in s.runs],
                        "seconds": [r.seconds for r in s.runs],
                        "images_per_second": [r.images_per_second for r in s.runs],
                    }
                    for s in summaries
                },
            }
            write_text_atomic(path, json.dumps(results, indent=1) + "\n")
            print(key, json.dumps(results["train"][key]["recipes"]), flush=True)
        key = f"intel@{size}"
        if key not in results["coverage"]:
            data = _load(SETS["intel"].format(photos=args.photos), size)
            start = time.perf_counter()
            estimate_coverage(data, list(DEFAULT_RECIPES), encoder="reference", cache_dir=False)
            results["coverage"][key] = time.perf_counter() - start
            write_text_atomic(path, json.dumps(results, indent=1) + "\n")
            print(key, f"coverage {results['coverage'][key]:.0f} s", flush=True)
    return results


def stored_cost(args, results: dict) -> None:
    """What a photo audit took before the working-size rule: the trainer at the stored 150x150 (intel-scenes),
    timed over 30 steps and projected to the default audit's 21 runs of 600 steps."""
    from densify._io import write_text_atomic
    from densify.train import TrainConfig, train_run

    if "stored" in results:
        return
    data = _load(SETS["intel"].format(photos=args.photos), "stored")
    run = train_run(data, "none", 0, TrainConfig(steps=30, batch=BATCH))
    per_step = run.seconds / 30
    results["stored"] = {"shape": list(data.train.shape), "seconds_per_step": per_step,
                         "projected_training_s": 21 * STEPS * per_step}  # fmt: skip
    write_text_atomic(args.out / "results.json", json.dumps(results, indent=1) + "\n")
    print(f"stored {data.train.shape}: {per_step:.2f} s/step; 21 runs x {STEPS} steps = "
          f"{21 * STEPS * per_step / 3600:.1f} h", flush=True)  # fmt: skip


def table(results: dict, sizes: list[int]) -> int | None:
    rows, fits = [], {}
    print("| size | none acc. intel | none acc. flowers | flip gain intel | flip gain flowers | s/run | "
          "coverage s | projected audit |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in sizes:
        got = {n: results["train"].get(f"{n}@{size}") for n in SETS}
        if not all(got.values()) or f"intel@{size}" not in results["coverage"]:
            continue
        acc = {n: statistics.mean(g["recipes"]["none"]["accuracy"]) for n, g in got.items()}
        gain = {
            n: statistics.mean(
                f - c
                for f, c in zip(
                    g["recipes"]["flip"]["accuracy"], g["recipes"]["none"]["accuracy"], strict=True
                )
            )
            for n, g in got.items()
        }
        per_run = statistics.mean(
            s for g in got.values() for r in g["recipes"].values() for s in r["seconds"]
        )
        projected = 7 * 3 * per_run + results["coverage"][f"intel@{size}"]
        fits[size] = (projected <= BUDGET_S, statistics.mean(acc.values()))
        rows.append(size)
        print(
            f"| {size} | {100 * acc['intel']:.2f} | {100 * acc['flowers']:.2f} | {100 * gain['intel']:+.2f} | "
            f"{100 * gain['flowers']:+.2f} | {per_run:.0f} | {results['coverage'][f'intel@{size}']:.0f} | "
            f"{projected / 60:.1f} min |"
        )
    if not fits:
        return None
    within = [s for s in fits if fits[s][0]]
    chosen = max(within, key=lambda s: fits[s][1]) if within else min(fits)
    print(f"\nchosen by the rule: {chosen} px ({'fits' if within else 'nothing fits; the smallest'})")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--photos", type=Path, required=True, help="folder holding intel-scenes/ and flowers/"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-working-size"))
    parser.add_argument("--sizes", default="32,64,48", help="working sizes, in the order to measure them")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    results = measure(args)
    stored_cost(args, results)
    table(results, sorted(args.sizes))


if __name__ == "__main__":
    main()

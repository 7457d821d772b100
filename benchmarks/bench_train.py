"""Trained confirmation: held-out accuracy of recipes vs `none` over seeds, at one or more step budgets.

    python benchmarks/bench_train.py --data fashion-mini --steps 1500 [--train-size N] [--seeds 3]
        [--recipes none,flip,affine-light,crop-pad,cutout,randaugment] [--out bench-train] [--threads]

Runs are stored under --out (one folder per data/size/budget) and reused, so an interrupted study resumes.
Prints a table per budget (accuracy mean and 95% t-interval over seeds; gain over `none` paired by seed) and, with
several budgets, the Spearman rank correlation of the recipes' gains between consecutive budgets (does a larger
budget change the ranking?). --threads measures training images/s with 1 and 2 torch threads. --layout measures
the demo audit's two trainings (a 600-step x 64 trainer run, and fitting the reference+views encoder) in torch's
NCHW layout and in channels_last (DENSIFY_MEMORY_FORMAT), alternating, with 1 and 2 threads; ratios in one run.
(Since the encoders went back to NCHW, DENSIFY_MEMORY_FORMAT no longer changes the encoder's fit: its column is
then a same-settings control; the 0.72x measured on 2026-11-28 was with the encoder in channels_last.)
"""

from __future__ import annotations

import argparse
import os
import time

from densify.audit import spearman
from densify.data import load_data
from densify.train import TrainConfig, train_recipes

RECIPES = "none,flip,affine-light,crop-pad,cutout,randaugment"


def fmt(t, signed=False):
    if t is None:
        return "-"
    f = "+.2f" if signed else ".2f"
    return f"{100 * t[0]:{f}} [{100 * t[1]:{f}}, {100 * t[2]:{f}}]"


def threads_benchmark() -> None:
    from densify.train import train_run

    data = load_data("fashion-mini")
    print("| torch threads | images/s (100 steps x 128, recipe affine-light) |")
    print("| ---: | ---: |")
    rates = {}
    for threads in (1, 2, 1, 2):
        os.environ["DENSIFY_TORCH_THREADS"] = str(threads)
        r = train_run(data, "affine-light", 0, TrainConfig(steps=100))
        rates[threads] = max(rates.get(threads, 0), r.images_per_second)
    for threads, rate in sorted(rates.items()):
        print(f"| {threads} | {rate:,.0f} |")
    print(f"ratio 2 threads / 1 thread: {rates[2] / rates[1]:.2f}")
    os.environ.pop("DENSIFY_TORCH_THREADS")


def layout_benchmark(repeats: int = 2) -> None:
    """Seconds of a 600 x 64 trainer run (affine-light) and of fitting the reference+views encoder (the demo's
    default audit: fashion-mini, 2,000 training images, its seven recipes) per memory format and thread count;
    best of ``repeats``, formats alternated so that drift hits both alike."""
    from densify.audit import DEFAULT_RECIPES
    from densify.embed._cnn import ReferenceEncoder
    from densify.loader import load_recipe
    from densify.train import train_run

    data = load_data("fashion-mini", train_size=2000, seed=0)
    views = [load_recipe(r, seed=0) for r in DEFAULT_RECIPES if r != "none"]
    best: dict = {}
    for _ in range(repeats):
        for threads in (2, 1):
            for layout in ("contiguous", "channels_last"):
                os.environ["DENSIFY_TORCH_THREADS"] = str(threads)
                os.environ["DENSIFY_MEMORY_FORMAT"] = layout
                start = time.perf_counter()
                train_run(data, "affine-light", 0, TrainConfig(steps=600, batch=64))
                run = time.perf_counter() - start
                encoder = ReferenceEncoder(seed=0).see_views(views, ",".join(DEFAULT_RECIPES))
                encoder.fit(data.train)
                key = (threads, layout)
                old = best.get(key, (float("inf"), float("inf")))
                best[key] = (min(old[0], run), min(old[1], encoder.train_seconds))
                print(
                    f"  {threads} threads, {layout}: run {run:.1f} s, encoder {encoder.train_seconds:.1f} s",
                    flush=True,
                )
    os.environ.pop("DENSIFY_TORCH_THREADS")
    os.environ.pop("DENSIFY_MEMORY_FORMAT")
    print("| threads | layout | trainer run (s) | reference+views fit (s) |")
    print("| ---: | --- | ---: | ---: |")
    for (threads, layout), (run, enc) in sorted(best.items()):
        print(f"| {threads} | {layout} | {run:.1f} | {enc:.1f} |")
    for threads in (1, 2):
        c, cl = best[(threads, "contiguous")], best[(threads, "channels_last")]
        print(
            f"{threads} threads: channels_last / contiguous time: run {cl[0] / c[0]:.2f}, encoder {cl[1] / c[1]:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mini")
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--steps", default="1500", help="comma-separated step budgets")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--recipes", default=RECIPES)
    parser.add_argument("--out", default="bench-train")
    parser.add_argument("--threads", action="store_true", help="only measure training throughput vs threads")
    parser.add_argument(
        "--layout", action="store_true", help="only measure NCHW vs channels_last training time"
    )
    args = parser.parse_args()
    if args.layout:
        layout_benchmark()
        return
    if args.threads:
        threads_benchmark()
        return
    data = load_data(args.data, train_size=args.train_size, seed=0)
    recipes = args.recipes.split(",")
    gains = []
    for steps in [int(s) for s in args.steps.split(",")]:
        start = time.perf_counter()
        tag = f"{args.data.replace('/', '_').replace(':', '_')}-n{len(data.train)}-steps{steps}"
        summaries = train_recipes(
            data,
            recipes,
            range(args.seeds),
            TrainConfig(steps=steps, batch=args.batch),
            out=os.path.join(args.out, tag),
        )
        print(
            f"\n### {data.name}, {len(data.train)} train / {len(data.heldout)} held-out, {steps} steps x "
            f"{args.batch}, {args.seeds} seeds ({time.perf_counter() - start:.0f} s)\n"
        )
        print("| recipe | held-out accuracy % [95% CI] | gain over none, points [95% CI] | loss ratio |")
        print("| --- | ---: | ---: | ---: |")
        for s in summaries:
            ratio = "-" if s.loss_ratio is None else f"{s.loss_ratio:.2f}"
            print(f"| {s.recipe} | {fmt(s.accuracy)} | {fmt(s.gain, True)} | {ratio} |", flush=True)
        gains.append([s.gain[0] if s.gain else 0.0 for s in summaries])
    for i in range(1, len(gains)):
        print(
            f"\nSpearman rank correlation of gains, budget {i} vs {i + 1}: {spearman(gains[i - 1], gains[i]):.2f}"
        )


if __name__ == "__main__":
    main()

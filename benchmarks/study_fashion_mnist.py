"""Does coverage predict accuracy? The Fashion-MNIST predictor study (docs/study-fashion-mnist.md).

    python benchmarks/study_fashion_mnist.py all [--out study-fashion] [--docs docs]
    python benchmarks/study_fashion_mnist.py train|coverage|analyse ...

Phases (each resumable: finished runs and embeddings under --out are reused):
  train     every recipe variant x seed x training size, equal step budget, paired against `none`
  coverage  every training-free predictor for the same variants, both encoders, plus the sensitivity grid
  analyse   Spearman rho of every predictor against the measured gain with bootstrap CIs, the default-predictor
            evidence, the sensitivity table, the effective data multiplier and the costs -> --docs

Data: Debian's dataset-fashion-mnist (``idx:/usr/share/datasets/fashion-mnist``); stratified training subsets of
1,000, 2,000 and 5,000 images (seed 0) and one fixed stratified held-out set of 2,000 test images.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DATA = "idx:/usr/share/datasets/fashion-mnist"
SIZES = (1000, 2000, 5000)
HELDOUT = 2000
#: every recipe with magnitudes at strength 0.5 and 1; flips (no magnitude) once; `none` is the baseline.
SCALED = (
    "affine-light",
    "affine-heavy",
    "crop-pad",
    "cutout",
    "elastic",
    "blur-noise",
    "photometric",
    "randaugment",
    "trivialaugment",
)
VARIANTS = (("none", 1.0), ("flip", 1.0), ("vflip", 1.0), *((r, s) for s in (1.0, 0.5) for r in SCALED))
ENCODERS = ("reference", "random-cnn")


def variant_name(recipe: str, strength: float) -> str:
    return recipe if strength == 1.0 else f"{recipe}@{strength:g}"


def load(n: int, heldout: int = HELDOUT):
    from densify.data import load_data

    return load_data(DATA, train_size=n, heldout_size=heldout, seed=0)


def train_phase(args) -> None:
    from densify.train import TrainConfig, train_recipes

    config = TrainConfig(steps=args.steps, batch=args.batch)
    timings = _read(args.out / "timings.json") or {}
    for n in args.sizes:
        data = load(n)
        for strength in sorted({s for _, s in VARIANTS}, reverse=True):
            recipes = [r for r, s in VARIANTS if s == strength]
            start = time.perf_counter()
            summaries = train_recipes(
                data,
                recipes,
                range(args.seeds),
                config,
                strength=strength,
                out=args.out / "train" / f"n{n}" / f"s{strength:g}",
            )
            took = time.perf_counter() - start
            for summary in summaries:
                for run in summary.runs:
                    print(
                        f"n={n} {variant_name(summary.recipe, strength):22s} seed {run.seed}: "
                        f"{100 * run.heldout_accuracy:.2f}%  ({run.seconds:.0f} s)",
                        flush=True,
                    )
            key = f"train n={n} strength={strength:g}"
            # Seconds of training actually run (reused runs cost ~0): keep the first full measurement.
            runs_seconds = sum(r.seconds for s in summaries for r in s.runs)
            timings[key] = {"wall": max(took, timings.get(key, {}).get("wall", 0.0)), "runs": runs_seconds}
            _write(args.out / "timings.json", timings)


def _read(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _write(path: Path, obj) -> None:
    from densify._io import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["train", "coverage", "analyse", "all"])
    parser.add_argument("--out", type=Path, default=Path("study-fashion"))
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if args.phase in ("train", "all"):
        train_phase(args)


if __name__ == "__main__":
    main()

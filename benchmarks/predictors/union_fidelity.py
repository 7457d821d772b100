"""The union-fidelity candidate of the predictor study (its module docstring, "Fidelity against the clean images of
both splits"): for each condition, the share of every variant's views inside some k-NN ball (k = 5) of the clean
embeddings of the training and held-out images, with the ``reference+views`` encoder, added to the exported values.

    python benchmarks/predictors/union_fidelity.py --conditions digits-200,intel-500 [--out predictor-study]

The embeddings are the coverage phase's (``estimate_coverage`` with the same encoder, views, k and seed; its cache
under ``--out``), every view kept. Writes ``union_fidelity`` into ``results/coverage-CONDITION-reference-views.json``;
``study.py analyse`` then scores ``union_fidelity_x_coverage_gain @ reference+views`` as one more candidate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import study

ENCODER = "reference+views"


def union_fidelity(train: np.ndarray, heldout: np.ndarray, views: np.ndarray, k: int = 5) -> float:
    """Share of ``views`` inside some k-NN ball of the union of ``train`` and ``heldout`` (radii within it)."""
    from densify.coverage import ball_counts, kth_neighbour_distance

    union = np.concatenate([train, heldout]).astype(np.float32)
    radii = kth_neighbour_distance(union, k, squared=True)
    return float((ball_counts(union, views, k, real_radii_sq=radii) > 0).mean())


def condition(name: str, args) -> None:
    from densify.embed import get_encoder
    from densify.estimate import estimate_coverage
    from densify.loader import load_recipe

    path = study.coverage_path(name, ENCODER)
    exported = study._read(path)
    if exported is None:
        print(f"{name}: no exported coverage values; run the coverage phase first", flush=True)
        return
    if all("union_fidelity" in m for m in exported["metrics"].values()):
        print(f"{name}: union fidelity exported already", flush=True)
        return
    start = time.perf_counter()
    data = study.load(study.CONDITIONS[name], args)
    augmenters = [
        load_recipe(r, strength=s, seed=0, output="numpy") for r, s in study.VARIANTS if r != "none"
    ]
    enc = get_encoder(ENCODER, seed=0).see_views(augmenters, json.dumps([list(v) for v in study.VARIANTS]))
    for strength in (1.0, 0.5):
        run = estimate_coverage(
            data, [r for r, s in study.VARIANTS if s == strength], encoder=enc, views=2, k=5, seed=0,
            strength=strength, cache_dir=args.out / "cache", n_boot=200, samples=1 << 62,
        )  # fmt: skip
        for result in run.results:
            value = union_fidelity(
                run.samples["train"], run.samples["heldout"], run.samples[f"views:{result.recipe}"]
            )
            exported["metrics"][study.variant_name(result.recipe, strength)]["union_fidelity"] = {
                "value": value
            }
    study._write(path, exported)
    print(f"{name}: union fidelity in {time.perf_counter() - start:.0f} s", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conditions", required=True)
    parser.add_argument("--out", type=Path, default=Path("predictor-study"))
    parser.add_argument("--photos", type=Path, default=study.ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    for var in ("DENSIFY_TORCH_THREADS", "DENSIFY_FAISS_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ.setdefault("DENSIFY_MEMORY_FORMAT", "contiguous")  # as study.py's phases
    for name in args.conditions.split(","):
        condition(name, args)


if __name__ == "__main__":
    main()

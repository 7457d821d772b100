"""Affinity and diversity measured with a model trained on clean data (Gontijo-Lopes et al., ICLR 2021, "Tradeoffs
in Data Augmentation: An Empirical Study"), as candidates of the predictor study (docs/predictor-study.md).

    python benchmarks/predictors/affinity.py compute [--conditions a,b] [--out predictor-study]
    python benchmarks/predictors/affinity.py score

The study's earlier "affinity x diversity" candidates stood in for the paper's quantities with frozen encoders
(label consistency, the views' displacement, a ridge probe's prediction variance). This uses the paper's own
model: the fine-tune proxy's clean base model (small-cnn, 600 steps x 64 images, seed 0, recipe ``none``; torch's
NCHW layout, one thread), trained here per condition (or reused from ``--out``), then, for each of the study's 21
variants, two views of every image (seed 0):

- **affinity** = the base model's accuracy on the variant's views of the held-out images minus its accuracy on the
  clean held-out images (the paper's affinity is their ratio; the difference ranks alike within a condition);
- **diversity** = the base model's mean cross-entropy on the variant's views of the training images minus on the
  clean training images. (The paper's diversity is the final training loss of a model trained *with* the
  augmentation, one training per variant; the clean model's loss on the views is what one model affords.)

Rule, written before any value was computed (the study's other results were known): three candidates, scored as
the study scores candidates (a dataset's score is the mean Spearman rho over its conditions against the measured
gains of all variants; worst case over the four selection datasets; top-pick regret per condition):
  (a) ``model affinity`` alone;
  (b) ``model affinity + diversity``: the mean of the two within-condition ranks (the paper's finding: the helpful
      augmentations are high in both);
  (c) ``model affinity + pick``: affinity and the study's select-best training-free pick on the other datasets,
      by the mean of their within-condition ranks, as the fine-tune proxy was combined.
Cost: one clean training run, 600 steps, 1/63 (0.016) of the confirmation's 37,800 steps (the 3-seed fine-tune proxy:
0.19), plus inference. One of them replaces the fine-tunes in ``densify evaluate --proxy`` only if its worst case
reaches the 3-seed proxy combination's (+0.52) at that twelfth of the cost; it earns a cheap mode of its own if its
worst case beats the training-free pick's (+0.39) by 0.10 or more (+0.49). Otherwise it is reported only. The
conditions outside the choice whose ``none`` stays below 95% are scored too, after the choice, as evidence only.
Writes ``results/affinity-<condition>.json`` and ``results/affinity-rule.json``.
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
sys.path.insert(0, str(HERE))
import study  # noqa: E402

VIEWS = 2
BASE_SEED = 0
#: the worst cases the rule compares with (docs/predictor-study.md: the 3-seed proxy + pick, the pick alone)
PROXY_BAR = 0.52
MODE_BAR = 0.39 + 0.10
#: outside conditions whose ``none`` reaches this held-out accuracy cannot rank recipes (the study's CEILING)
CEILING = 0.95
CANDIDATES = ("model affinity", "model affinity + diversity", "model affinity + pick")


def result_path(name: str) -> Path:
    return study.RESULTS / f"affinity-{name}.json"


def _views(augmenter, images, n: int) -> np.ndarray:
    return augmenter.views_of(images, np.repeat(np.arange(n), VIEWS), np.tile(np.arange(VIEWS), n))


def compute(name: str, args) -> None:
    """The base model of ``name`` (trained unless its weights are under --out), then every variant's affinity
    and diversity, exported to results/affinity-NAME.json."""
    import torch

    from densify.loader import load_recipe
    from densify.train import TrainConfig
    from densify.train._loop import evaluate, train_run
    from densify.train.models import build_model

    if study._read(result_path(name)) is not None:
        print(f"{name}: exported already", flush=True)
        return
    cond = study.CONDITIONS[name]
    data = study.load(cond, args)
    config = TrainConfig(steps=study.STEPS, batch=study.BATCH)
    weights = args.out / "affinity" / name / f"base-{config.steps}-seed{BASE_SEED}.pt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if not weights.is_file():
        train_run(data, "none", BASE_SEED, config, save_weights=weights)
    base_seconds = time.perf_counter() - start
    n_classes = len(data.classes)
    model = build_model(config.model, data.train.channels, n_classes)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    train_idx = np.repeat(np.arange(len(data.train)), VIEWS)
    held_idx = np.repeat(np.arange(len(data.heldout)), VIEWS)
    clean_acc, _, _ = evaluate(model, data.heldout.images, data.heldout.labels, n_classes)
    _, _, clean_loss = evaluate(model, data.train.images, data.train.labels, n_classes)
    start = time.perf_counter()
    values = {}
    for recipe, strength in study.VARIANTS:
        augmenter = load_recipe(recipe, strength=strength, seed=0, output="numpy")
        held = _views(augmenter, data.heldout, len(data.heldout))
        train = _views(augmenter, data.train, len(data.train))
        acc, _, _ = evaluate(model, held, data.heldout.labels[held_idx], n_classes)
        _, _, loss = evaluate(model, train, data.train.labels[train_idx], n_classes)
        values[study.variant_name(recipe, strength)] = {
            "affinity": acc - clean_acc,
            "diversity": loss - clean_loss,
        }
    record = {
        "condition": name,
        "base_steps": config.steps,
        "base_seconds": round(base_seconds, 1),
        "views_seconds": round(time.perf_counter() - start, 1),
        "clean_heldout_accuracy": clean_acc,
        "clean_train_loss": clean_loss,
        "views": VIEWS,
        "values": values,
    }
    study._write(result_path(name), record)
    print(f"{name}: base {base_seconds:.0f} s, views {record['views_seconds']:.0f} s, clean {clean_acc:.3f}",
          flush=True)  # fmt: skip


def _ranked(values: dict[str, float]) -> dict[str, float]:
    from densify.audit import ranks

    names = list(values)
    return dict(zip(names, ranks([values[v] for v in names]).tolist(), strict=True))


def candidate_values(name: str, pick_values: dict[str, float] | None) -> dict[str, dict[str, float]]:
    """{candidate: {variant: value}} for condition ``name`` (``pick_values``: the training-free pick's values)."""
    record = study._read(result_path(name))
    aff = {v: x["affinity"] for v, x in record["values"].items()}
    div = {v: x["diversity"] for v, x in record["values"].items()}
    ra, rd = _ranked(aff), _ranked(div)
    out = {"model affinity": aff, "model affinity + diversity": {v: (ra[v] + rd[v]) / 2 for v in aff}}
    if pick_values is not None:
        rp = _ranked({v: pick_values[v] for v in aff if v in pick_values})
        out["model affinity + pick"] = {v: (ra[v] + rp[v]) / 2 for v in rp}
    return out


def _with_signal(name: str) -> bool:
    """Whether ``name`` has a ground truth whose ``none`` stays below ``CEILING`` held-out accuracy."""
    truth = study._read(study.truth_path(name, study.STEPS))
    if truth is None or "accuracy" not in truth:
        return False
    none = truth["accuracy"]["none"]
    return sum(none.values()) / len(none) < CEILING


def score(args) -> None:
    analysis = study._read(study.RESULTS / "analysis.json")
    datasets = analysis["datasets"]
    picks = {
        d: p
        for d, p in next(r for r in analysis["ranking"] if r["candidate"] == "select-best")["picks"].items()
    }
    chosen = analysis["chosen"]
    conditions = [n for cs in datasets.values() for n in cs]
    missing = [n for n in conditions if study._read(result_path(n)) is None]
    if missing:
        raise SystemExit(f"not computed yet: {', '.join(missing)} (affinity.py compute)")
    values = study._candidates(conditions)
    rho: dict[str, dict[str, float]] = {c: {} for c in CANDIDATES}
    regret: dict[str, dict[str, float]] = {c: {} for c in CANDIDATES}
    for dataset, conds in datasets.items():
        for n in conds:
            gains = study.measured_gains(n)
            cands = candidate_values(n, values[picks[dataset]][n])
            for c, v in cands.items():
                rho[c][n] = study._rho(v, gains)
                regret[c][n] = 100 * study._regret(v, gains)
    per_dataset = {
        c: {d: float(np.mean([rho[c][n] for n in cs])) for d, cs in datasets.items()} for c in CANDIDATES
    }
    rows = {
        c: {
            "per_dataset": per_dataset[c],
            "worst": min(per_dataset[c].values()),
            "mean": float(np.mean(list(per_dataset[c].values()))),
            "rho": rho[c],
            "regret_points": regret[c],
        }
        for c in CANDIDATES
    }
    # after the choice: conditions outside it with signal (the chosen training-free candidate joins the pick)
    outside = {}
    for n, cond in study.CONDITIONS.items():
        if cond.select or study._read(result_path(n)) is None or not _with_signal(n):
            continue
        gains = study.measured_gains(n)
        pick = study._candidates([n]).get(chosen, {}).get(n)
        outside[n] = {c: study._rho(v, gains) for c, v in candidate_values(n, pick).items()}
    costs = [study._read(result_path(n)) for n in conditions]
    proxy_seconds = [study.proxy_cost(n, study.PROXY_SEEDS + study.PROXY_EXTRA_SEEDS)[1] for n in conditions]
    best = max(CANDIDATES, key=lambda c: (rows[c]["worst"], rows[c]["mean"]))
    out = {
        "candidates": rows,
        "outside": outside,
        "step_ratio": study.STEPS / (len(study.VARIANTS) * study.SEEDS * study.STEPS),
        "seconds": {
            n: r["base_seconds"] + r["views_seconds"] for n, r in zip(conditions, costs, strict=True)
        },
        "proxy_seconds_ratio": [min(s for s in proxy_seconds if s), max(s for s in proxy_seconds if s)],
        "bars": {"replaces_proxy": PROXY_BAR, "own_mode": MODE_BAR},
        "best": best,
        "replaces_proxy": rows[best]["worst"] >= PROXY_BAR,
        "own_mode": rows[best]["worst"] >= MODE_BAR,
    }
    study._write(study.RESULTS / "affinity-rule.json", out)
    for c in CANDIDATES:
        r = rows[c]
        cells = "  ".join(f"{d} {v:+.2f}" for d, v in r["per_dataset"].items())
        print(f"{c:28s} {cells}  worst {r['worst']:+.2f}  mean {r['mean']:+.2f}  "
              f"regret {min(r['regret_points'].values()):.2f}-{max(r['regret_points'].values()):.2f} points")  # fmt: skip
    for n, per in outside.items():
        print(f"outside {n}: " + "  ".join(f"{c} {v:+.2f}" for c, v in per.items()))
    print(json.dumps({k: out[k] for k in ("best", "replaces_proxy", "own_mode")}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=["compute", "score"])
    parser.add_argument("--out", type=Path, default=Path("predictor-study"))
    parser.add_argument("--photos", type=Path, default=study.ROOT.parent / "shared" / "data")
    parser.add_argument("--conditions", default="")
    args = parser.parse_args(argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    for var in ("DENSIFY_TORCH_THREADS", "DENSIFY_FAISS_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ.setdefault("DENSIFY_MEMORY_FORMAT", "contiguous")  # as the study's base models
    import torch

    torch.set_num_threads(1)
    if args.phase == "score":
        score(args)
        return 0
    names = [n for n in args.conditions.split(",") if n] or [
        n for n, c in study.CONDITIONS.items() if c.select or _with_signal(n)
    ]
    for name in names:
        compute(name, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

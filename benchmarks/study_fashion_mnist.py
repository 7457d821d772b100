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
ENCODERS = ("reference", "random-cnn", "reference+views")


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


def _variants_by_strength():
    out: dict[float, list[str]] = {}
    for recipe, strength in VARIANTS:
        out.setdefault(strength, []).append(recipe)
    return out


def _coverage(
    data, encoder: str, args, *, k: int = 5, views: int = 2, n_boot: int = 1000
) -> tuple[dict, float]:
    """{variant: {metric: value dict}} and the reference scores, for every variant; plus wall seconds."""
    from densify.estimate import estimate_coverage

    metrics: dict[str, dict] = {}
    reference = None
    start = time.perf_counter()
    enc = encoder
    if encoder == "reference+views":  # one encoder that has seen views of every variant, at both strengths
        from densify.embed import get_encoder
        from densify.loader import load_recipe

        augmenters = [load_recipe(r, strength=s, seed=0, output="numpy") for r, s in VARIANTS if r != "none"]
        enc = get_encoder(encoder, seed=0).see_views(augmenters, json.dumps([list(v) for v in VARIANTS]))
    for strength, recipes in _variants_by_strength().items():
        run = estimate_coverage(
            data,
            recipes,
            encoder=enc,
            views=views,
            k=k,
            seed=0,
            strength=strength,
            cache_dir=args.out / "cache",
            n_boot=n_boot,
        )
        reference = reference or {n: m.to_dict() for n, m in run.reference.items()}
        for result in run.results:
            metrics[variant_name(result.recipe, strength)] = {
                n: m.to_dict() for n, m in result.metrics.items()
            }
    return {"metrics": metrics, "reference": reference}, time.perf_counter() - start


def coverage_phase(args) -> None:
    """Every predictor for every variant: both encoders at every size (k=5, 2 views, 2,000 held-out), and the
    sensitivity grid (reference encoder, n=2,000): k, views and held-out size varied one at a time."""
    timings = _read(args.out / "timings-coverage.json") or {}
    for n in args.sizes:
        data = load(n)
        for encoder in ENCODERS:
            path = args.out / "coverage" / f"n{n}-{encoder}.json"
            if path.is_file():
                continue
            result, took = _coverage(data, encoder, args)
            timings[f"coverage n={n} encoder={encoder}"] = {"wall": took}
            _write(path, result)
            _write(args.out / "timings-coverage.json", timings)
            print(f"coverage n={n} {encoder}: {took:.0f} s", flush=True)
    n = 2000 if 2000 in args.sizes else args.sizes[0]
    grid = [("k", k, dict(k=k)) for k in (1, 3, 10, 20)]
    grid += [("views", v, dict(views=v)) for v in (1, 4)]
    grid += [("heldout", h, dict(heldout=h)) for h in (250, 500, 1000)]
    for name, value, change in grid:
        path = args.out / "sensitivity" / f"n{n}-{name}{value}.json"
        if path.is_file():
            continue
        data = load(n, heldout=change.pop("heldout", HELDOUT))
        result, took = _coverage(data, "reference", args, n_boot=200, **change)
        _write(path, result)
        print(f"sensitivity n={n} {name}={value}: {took:.0f} s", flush=True)


def _read(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _write(path: Path, obj) -> None:
    from densify._io import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def _accuracies(args, n: int) -> dict[str, dict[int, float]]:
    """{variant: {seed: held-out accuracy}} of the finished training runs at size n."""
    out: dict[str, dict[int, float]] = {}
    for strength, recipes in _variants_by_strength().items():
        folder = args.out / "train" / f"n{n}" / f"s{strength:g}" / "runs"
        for recipe in recipes:
            for seed in range(args.seeds):
                path = folder / f"{recipe}-seed{seed}.json"
                if path.is_file():
                    r = json.loads(path.read_text())["result"]
                    out.setdefault(variant_name(recipe, strength), {})[seed] = r["heldout_accuracy"]
    return out


#: the verdict's training-free rule: rank by a predictor, recipes flagged as leaving the manifold or changing
#: labels (against the held-out images' own scores) ranked below every unflagged one
GUARDED = ("densification", "label_coverage_gain", "coverage_gain")


def _all_predictors():
    from densify.audit import PREDICTORS

    return (*PREDICTORS, *(f"{p}|guarded" for p in GUARDED))


def _label(p: str) -> str:
    from densify.audit._verdict import LABELS

    return LABELS[p] if p in LABELS else f"{LABELS[p.split('|')[0]]}, flagged last"


SUPERVISED = {"reference": True, "reference+views": True, "random-cnn": False}


def _predictor(metrics: dict, reference: dict | None, p: str):
    from densify.audit import flags, predictor_value

    base, _, guard = p.partition("|")
    value = predictor_value(metrics, base)
    if value is None or not guard:
        return value
    flagged = set(flags(metrics, reference)) - {"adds_nothing"}
    return value - 1e6 if flagged else value


def _rho_row(x, y, seed: int = 0) -> dict:
    from densify.audit import bootstrap_rho, permutation_p, spearman

    rho = spearman(x, y)
    lo, hi = bootstrap_rho(x, y, n_boot=2000, seed=seed)
    return {"rho": rho, "low": lo, "high": hi, "p": permutation_p(x, y, seed=seed)}


def analyse(args) -> None:
    import math

    import numpy as np

    from densify.train import mean_t_ci
    from densify.train._scaling import effective_multiplier

    ALL_PREDICTORS = _all_predictors()
    results: dict = {"sizes": args.sizes, "variants": [variant_name(r, s) for r, s in VARIANTS], "cells": {}}
    acc = {n: _accuracies(args, n) for n in args.sizes}
    gains: dict[int, dict[str, tuple[float, float, float]]] = {}
    for n in args.sizes:
        base = acc[n].get("none", {})
        gains[n] = {
            v: mean_t_ci([seeds[s] - base[s] for s in sorted(seeds) if s in base])
            for v, seeds in acc[n].items()
            if base and any(s in base for s in seeds)
        }
    results["gains"] = {n: {v: list(g) for v, g in gains[n].items()} for n in args.sizes}
    results["accuracy"] = {
        n: {v: mean_t_ci(list(seeds.values())) for v, seeds in acc[n].items()} for n in args.sizes
    }

    lines = ["<!-- generated by benchmarks/study_fashion_mnist.py analyse; do not edit by hand -->", ""]
    # 1. measured gains
    lines += [
        "### Measured held-out accuracy gain over `none` (points, mean over 3 seeds, paired 95% t-interval)",
        "",
    ]
    lines += ["| variant | " + " | ".join(f"n = {n:,}" for n in args.sizes) + " |"]
    lines += ["| --- | " + " | ".join("---:" for _ in args.sizes) + " |"]
    for v in results["variants"]:
        cells = []
        for n in args.sizes:
            if v == "none":
                a = results["accuracy"][n].get("none")
                cells.append(f"{100 * a[0]:.2f}% (accuracy)" if a else "-")
                continue
            g = gains[n].get(v)
            cells.append("-" if g is None else f"{100 * g[0]:+.2f} [{100 * g[1]:+.2f}, {100 * g[2]:+.2f}]")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")

    # 2. rho per predictor per cell
    cells_done = []
    for n in args.sizes:
        for encoder in ENCODERS:
            path = args.out / "coverage" / f"n{n}-{encoder}.json"
            if not path.is_file() or not gains[n]:
                continue
            loaded = json.loads(path.read_text())
            cov, reference = loaded["metrics"], loaded["reference"]
            names = [v for v in results["variants"] if v in gains[n] and v in cov]
            y = [gains[n][v][0] for v in names]
            best = max(names, key=lambda v: gains[n][v][0])
            cell = {}
            for p in ALL_PREDICTORS:
                x = [_predictor(cov[v], reference if SUPERVISED[encoder] else None, p) for v in names]
                if any(val is None for val in x):
                    continue
                row = _rho_row(x, y)
                top = names[int(np.argmax(x))]
                diffs = [acc[n][best][s] - acc[n][top][s] for s in sorted(acc[n][best]) if s in acc[n][top]]
                d = mean_t_ci(diffs)
                row.update(
                    top=top, best=best, gap=d[0], within_noise=bool(top == best or d[1] <= 0), n=len(names)
                )
                cell[p] = row
            results["cells"][f"n{n}-{encoder}"] = cell
            cells_done.append((n, encoder))
    lines += [
        "",
        "### Spearman rho between each predictor and the measured gain, over all variants "
        "(95% bootstrap CI over variants; permutation p)",
        "",
    ]
    lines += [
        "| predictor | " + " | ".join(f"n={n:,}, {e}" for n, e in cells_done) + " | min rho | mean rho |"
    ]
    lines += ["| --- | " + " | ".join("---:" for _ in cells_done) + " | ---: | ---: |"]
    summary = {}
    for p in ALL_PREDICTORS:
        rows = [results["cells"][f"n{n}-{e}"].get(p) for n, e in cells_done]
        if not rows or any(r is None for r in rows):
            continue
        rhos = [r["rho"] for r in rows]
        summary[p] = {"min": min(rhos), "mean": float(np.mean(rhos))}
        cells = [
            f"{r['rho']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]{'*' if r['p'] < 0.05 else ''}" for r in rows
        ]
        lines.append(
            f"| {_label(p)} | " + " | ".join(cells) + f" | {min(rhos):+.2f} | {np.mean(rhos):+.2f} |"
        )
    lines += ["", "\\* permutation p < 0.05.", ""]
    if summary:
        chosen = max(summary, key=lambda p: (summary[p]["min"], summary[p]["mean"]))
        results["chosen"] = chosen
        lines += [
            f"Highest worst-case rho (maximin over the {len(cells_done)} conditions): **{_label(chosen)}** "
            f"(min {summary[chosen]['min']:+.2f}, mean {summary[chosen]['mean']:+.2f}).",
            "",
        ]
    results["summary"] = summary

    # 2b. do the verdict's flags pick out the variants that hurt?
    lines += [
        "### The flags (views scored against the held-out images' own fidelity and label consistency)",
        "",
        "| condition | flagged variants: mean gain; hurt (CI < 0) / helped (CI > 0) | unflagged: mean gain; "
        "hurt / helped | flagged |",
        "| --- | ---: | ---: | --- |",
    ]
    from densify.audit import flags as flag_fn

    results["flags"] = {}
    for n, e in cells_done:
        loaded = json.loads((args.out / "coverage" / f"n{n}-{e}.json").read_text())
        cov, reference = loaded["metrics"], loaded["reference"]
        if not SUPERVISED[e]:
            lines.append(f"| n={n:,}, {e} | n/a: no flags for an encoder not fitted to the labels | | |")
            continue
        groups = {True: [], False: []}
        for v in results["variants"]:
            if v == "none" or v not in gains[n] or v not in cov:
                continue
            flagged = bool(set(flag_fn(cov[v], reference)) - {"adds_nothing"})
            groups[flagged].append(v)
        results["flags"][f"n{n}-{e}"] = groups[True]

        def describe(vs, n=n):
            if not vs:
                return "-"
            g = [gains[n][v] for v in vs]
            hurt = sum(x[2] < 0 for x in g)
            helped = sum(x[1] > 0 for x in g)
            return f"{100 * np.mean([x[0] for x in g]):+.2f} ({len(vs)}); {hurt} / {helped}"

        lines.append(
            f"| n={n:,}, {e} | {describe(groups[True])} | {describe(groups[False])} | "
            f"{', '.join(groups[True]) or '-'} |"
        )
    lines.append("")

    # 3. top-1 by predictor vs best trained
    lines += ["### Is the top variant by each predictor within seed noise of the best trained variant?", ""]
    lines += ["| predictor | " + " | ".join(f"n={n:,}, {e}" for n, e in cells_done) + " |"]
    lines += ["| --- | " + " | ".join("---" for _ in cells_done) + " |"]
    for p in summary:
        cells = []
        for n, e in cells_done:
            r = results["cells"][f"n{n}-{e}"][p]
            mark = "yes" if r["within_noise"] else "**no**"
            cells.append(f"{r['top']} ({mark}, {100 * -r['gap']:+.2f})")
        lines.append(f"| {_label(p)} | " + " | ".join(cells) + " |")
    best_row = (
        [results["cells"][f"n{n}-{e}"][next(iter(summary))]["best"] for n, e in cells_done] if summary else []
    )
    lines += [
        "",
        "Best trained variant per condition: "
        + ", ".join(f"n={n:,}: {b}" for (n, _), b in zip(cells_done, best_row, strict=True))
        + ". In brackets: the top "
        "variant's gain minus the best's (points); *no* when the paired 95% t-interval of that difference "
        "excludes 0.",
        "",
    ]

    # 4. sensitivity
    n_s = 2000 if 2000 in args.sizes else args.sizes[0]
    sens_rows = [
        ("k = 5, 2 views, 2,000 held-out (the default)", args.out / "coverage" / f"n{n_s}-reference.json")
    ]
    for name, values in (("k", (1, 3, 10, 20)), ("views", (1, 4)), ("heldout", (250, 500, 1000))):
        for value in values:
            label = {
                "k": f"k = {value}",
                "views": f"{value} view{'s' if value > 1 else ''}",
                "heldout": f"{value:,} held-out",
            }[name]
            sens_rows.append((label, args.out / "sensitivity" / f"n{n_s}-{name}{value}.json"))
    shown = [
        p
        for p in (
            "fidelity_x_coverage_gain",
            "densification|guarded",
            "densification",
            "knn_accuracy_gain",
            "label_coverage_gain",
            "coverage_gain",
            "label_consistency",
            "fidelity",
            "consistency_x_densification",
        )
        if p in summary
    ]
    if gains.get(n_s):
        lines += [f"### Sensitivity (n = {n_s:,}, reference encoder): rho against the measured gain", ""]
        lines += ["| setting | " + " | ".join(_label(p) for p in shown) + " |"]
        lines += ["| --- | " + " | ".join("---:" for _ in shown) + " |"]
        results["sensitivity"] = {}
        for label, path in sens_rows:
            if not path.is_file():
                continue
            loaded = json.loads(path.read_text())
            cov, reference = loaded["metrics"], loaded["reference"]
            names = [v for v in results["variants"] if v in gains[n_s] and v in cov]
            y = [gains[n_s][v][0] for v in names]
            row = {}
            for p in shown:
                from densify.audit import spearman

                row[p] = spearman([_predictor(cov[v], reference, p) for v in names], y)
            results["sensitivity"][label] = row
            lines.append(f"| {label} | " + " | ".join(f"{row[p]:+.2f}" for p in shown) + " |")
        lines.append("")

    # 5. effective data multiplier
    if all(acc[n].get("none") for n in args.sizes) and len(args.sizes) > 1:
        base = {n: acc[n]["none"] for n in args.sizes}
        top = sorted(
            (v for v in gains[args.sizes[0]] if v != "none"), key=lambda v: -gains[args.sizes[0]][v][0]
        )[:4]
        lines += [
            "### Effective data multiplier of the best variants (training-set size `none` needs to match, "
            "over the variant's; 95% t-interval over seeds)",
            "",
        ]
        lines += ["| variant | " + " | ".join(f"n = {n:,}" for n in args.sizes) + " |"]
        lines += ["| --- | " + " | ".join("---:" for _ in args.sizes) + " |"]
        results["multiplier"] = {}
        for v in top:
            if not all(v in acc[n] for n in args.sizes):
                continue
            ms = [
                effective_multiplier(args.sizes, base, {n: acc[n][v] for n in args.sizes}, n)
                for n in args.sizes
            ]
            results["multiplier"][v] = [m.to_dict() for m in ms]
            lines.append(
                f"| {v} | "
                + " | ".join(
                    f"{m.bound}{m.value:.2f} [{m.low:.2f}, {'inf' if not math.isfinite(m.high) else f'{m.high:.2f}'}]"
                    for m in ms
                )
                + " |"
            )
        lines += [
            "",
            "`>=`: the variant beats `none` even at the largest size, so the multiplier is a lower bound.",
            "",
        ]

    # 6. cost
    timings = {
        **(_read(args.out / "timings.json") or {}),
        **(_read(args.out / "timings-coverage.json") or {}),
    }
    lines += ["### Cost on this 2-vCPU machine (wall seconds)", ""]
    lines += [
        "| n | training (21 variants x 3 seeds) | coverage, reference encoder | coverage, random-cnn | "
        "speed-up (reference) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    results["cost"] = {}
    for n in args.sizes:
        train_s = sum(t["runs"] for k, t in timings.items() if k.startswith(f"train n={n} "))
        cov = {e: (timings.get(f"coverage n={n} encoder={e}") or {}).get("wall") for e in ENCODERS}
        results["cost"][n] = {"train": train_s, **cov}
        ref = cov["reference"]
        lines.append(
            f"| {n:,} | {train_s:,.0f} | {ref or 0:,.0f} | {cov['random-cnn'] or 0:,.0f} | "
            f"{(train_s / ref) if ref else float('nan'):.0f}x |"
        )
    lines.append("")
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.docs / "study").mkdir(exist_ok=True)
    _write(args.docs / "study" / "results.json", json.loads(json.dumps(results, default=str)))
    from densify._io import write_text_atomic

    write_text_atomic(args.docs / "study" / "tables.md", "\n".join(lines) + "\n")
    _plots(args, results, gains, cells_done)
    print("\n".join(lines))


def _plots(args, results, gains, cells_done) -> None:
    import numpy as np

    from densify._io import write_bytes_atomic
    from densify.plots import OKABE_ITO, _plt, _png

    plt = _plt()
    summary = results["summary"]
    if not summary:
        return
    preds = list(summary)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / max(len(cells_done), 1)
    for j, (n, e) in enumerate(cells_done):
        cell = results["cells"][f"n{n}-{e}"]
        rho = np.array([cell[p]["rho"] for p in preds])
        lo = np.array([cell[p]["low"] for p in preds])
        hi = np.array([cell[p]["high"] for p in preds])
        x = np.arange(len(preds)) + (j - (len(cells_done) - 1) / 2) * width
        ax.bar(
            x,
            rho,
            width,
            color=OKABE_ITO[j % 8],
            label=f"n={n:,}, {e}",
            hatch="//" if e == "random-cnn" else None,
            edgecolor="white",
        )
        ax.errorbar(x, rho, yerr=[rho - lo, hi - rho], fmt="none", ecolor="black", lw=0.7, capsize=1.5)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(preds)), [_label(p) for p in preds], rotation=30, ha="right")
    ax.set_ylabel("Spearman rho vs measured gain")
    ax.set_ylim(-1, 1)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title(
        "Does each training-free predictor rank recipe variants like training does? (95% bootstrap CI)"
    )
    write_bytes_atomic(args.docs / "study" / "rho.png", _png(fig))

    chosen = results.get("chosen")
    fig, axes = plt.subplots(1, len(args.sizes), figsize=(4.2 * len(args.sizes), 3.8), squeeze=False)
    for ax, n in zip(axes[0], args.sizes, strict=True):
        path = args.out / "coverage" / f"n{n}-reference.json"
        if not path.is_file() or not gains[n]:
            continue
        loaded = json.loads(path.read_text())
        cov, reference = loaded["metrics"], loaded["reference"]
        names = [v for v in results["variants"] if v in gains[n] and v in cov]
        x = [_predictor(cov[v], reference, chosen) for v in names]
        y = [100 * gains[n][v][0] for v in names]
        ax.scatter(x, y, color=OKABE_ITO[0], edgecolor="black", lw=0.5)
        for xi, yi, v in zip(x, y, names, strict=True):
            ax.annotate(v, (xi, yi), fontsize=6, textcoords="offset points", xytext=(3, 2))
        r = results["cells"][f"n{n}-reference"][chosen]["rho"]
        ax.set_title(f"n = {n:,}: rho = {r:+.2f}")
        ax.set_xlabel(f"{_label(chosen)} (reference encoder)")
        ax.axhline(0, color="grey", lw=0.7)
    axes[0][0].set_ylabel("measured gain over none (points)")
    write_bytes_atomic(args.docs / "study" / "scatter.png", _png(fig))


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
    if args.phase in ("coverage", "all"):
        coverage_phase(args)
    if args.phase in ("analyse", "all"):
        analyse(args)


if __name__ == "__main__":
    main()

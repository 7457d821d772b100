"""The audit's figures, drawn from a report's numbers (``report.json``) with matplotlib's Agg backend.

Every function returns PNG bytes. Colours are the Okabe-Ito palette (distinguishable with every common colour
vision deficiency), every axis is labelled with its unit, and intervals are 95%.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from densify._catalogue import GAIN_LABELS, GAIN_SECTIONS, LABELS, PLOTTED, PREDICTORS

#: Okabe & Ito (2008), colour-blind-safe
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, YELLOW, BLACK = OKABE_ITO
GREY = "#999999"
DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 10,
            "svg.hashsalt": "densify",
        }
    )
    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return buffer.getvalue()


def _interval(metric: dict | None) -> tuple[float, float, float]:
    if not metric or metric.get("value") is None:
        return np.nan, np.nan, np.nan
    v = metric["value"]
    lo = metric["low"] if metric.get("low") is not None else v
    hi = metric["high"] if metric.get("high") is not None else v
    return v, lo, hi


def recipe_colours(report: dict[str, Any]) -> dict[str, str]:
    """Green for recommended, vermillion for flagged/avoided, grey for none, blue otherwise."""
    v = report["verdict"]
    use = {u["recipe"] for u in v["use"]}
    avoid = {a["recipe"] for a in v["avoid"]}
    out = {}
    for r in report["coverage"]:
        out[r] = GREEN if r in use else VERMILLION if r in avoid else GREY if r == "none" else BLUE
    return out


def _legend(fig) -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(color=GREEN, label="recommended"),
        Patch(color=VERMILLION, label="avoid"),
        Patch(color=BLUE, label="other"),
        Patch(color=GREY, label="none (baseline)"),
    ]
    fig.legend(
        handles=handles, loc="upper center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 0.97), fontsize=8
    )


def coverage_gain(report: dict[str, Any], title: str | None = None) -> bytes:
    """Per recipe: densification and label-aware coverage gain with 95% bootstrap intervals."""
    plt = _plt()
    names = list(report["coverage"])
    colours = recipe_colours(report)
    panels = PLOTTED
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.6 * len(panels), 0.45 * len(names) + 1.6), sharey=True
    )
    y = np.arange(len(names))[::-1]
    for ax, (metric, label) in zip(axes, panels, strict=True):
        vals = np.array([_interval(report["coverage"][r]["metrics"].get(metric)) for r in names])
        ax.barh(y, vals[:, 0], color=[colours[r] for r in names], height=0.6)
        ax.errorbar(
            vals[:, 0],
            y,
            xerr=[vals[:, 0] - vals[:, 1], vals[:, 2] - vals[:, 0]],
            fmt="none",
            ecolor=BLACK,
            capsize=3,
            lw=1,
        )
        ax.axvline(0, color=BLACK, lw=0.8)
        ax.set_xlabel(label)
    axes[0].set_yticks(y, names)
    _legend(fig)
    fig.suptitle(
        title or "How much each recipe densifies the training set where held-out data lies (95% CI)", y=1.03
    )
    return _png(fig)


def gain_axis(means, lows, highs) -> tuple[float, float]:
    """x-limits (points) that keep helpful recipes apart when one recipe is a disaster: the span of every
    interval, except recipes whose mean lies more than 3 interquartile ranges (at least 2 points) below or above
    the others' quartiles, which are drawn at the axis edge with their value written beside."""
    m = np.asarray(means, dtype=float)
    q1, q3 = np.percentile(m, [25, 75]) if len(m) else (0.0, 0.0)
    fence = 3 * max(q3 - q1, 2.0)
    core = (m >= q1 - fence) & (m <= q3 + fence)
    lo = np.nanmin(np.concatenate([np.asarray(lows, float)[core], m[core], [0.0]]))
    hi = np.nanmax(np.concatenate([np.asarray(highs, float)[core], m[core], [0.0]]))
    pad = 0.08 * max(hi - lo, 0.5)
    return lo - pad, hi + pad


def _clipped(ax, x: float, y: float, lim: tuple[float, float], colour: str, horizontal: bool = True) -> bool:
    """Draw a point outside ``lim`` at the nearest edge with an arrow and its value; True if it was outside."""
    if lim[0] <= x <= lim[1]:
        return False
    edge = lim[0] if x < lim[0] else lim[1]
    mark, ha = ("<", "left") if x < lim[0] else (">", "right")
    if horizontal:
        ax.scatter(
            [edge], [y], marker=mark, s=60, color=colour, edgecolor=BLACK, lw=0.5, zorder=4, clip_on=False
        )
        ax.annotate(f"{x:+.1f}", (edge, y), textcoords="offset points", xytext=(8 if ha == "left" else -8, 6),
                    ha=ha, fontsize=7)  # fmt: skip
    else:
        mark = "v" if x < lim[0] else "^"
        ax.scatter(
            [y], [edge], marker=mark, s=60, color=colour, edgecolor=BLACK, lw=0.5, zorder=4, clip_on=False
        )
        ax.annotate(f"{x:+.1f}", (y, edge), textcoords="offset points", xytext=(4, 4 if mark == "v" else -10),
                    fontsize=7)  # fmt: skip
    return True


def _gains(report: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """Recipes with a measured gain and their (mean, low, high) in points (infinite bounds: the mean)."""
    recipes = (report.get("training") or {}).get("recipes") or {}
    names = [r for r in report["coverage"] if r != "none" and (recipes.get(r) or {}).get("gain_over_none")]
    rows = []
    for r in names:
        g = recipes[r]["gain_over_none"]
        rows.append([100 * g["mean"], 100 * (g["low"] if g["low"] is not None else g["mean"]),
                     100 * (g["high"] if g["high"] is not None else g["mean"])])  # fmt: skip
    return names, np.array(rows, dtype=float).reshape(-1, 3)


def measured_gain(report: dict[str, Any]) -> bytes | None:
    """A dot plot of every recipe's measured gain over none (points, 95% t-interval over paired seeds), best first;
    a disastrous recipe is drawn at the axis edge so the helpful ones stay apart."""
    names, g = _gains(report)
    if not names:
        return None
    plt = _plt()
    order = np.argsort(-g[:, 0], kind="stable")
    names, g = [names[i] for i in order], g[order]
    colours = recipe_colours(report)
    lim = gain_axis(g[:, 0], g[:, 1], g[:, 2])
    fig, ax = plt.subplots(figsize=(6.4, 0.38 * len(names) + 1.4))
    y = np.arange(len(names))[::-1]
    for yi, r, (m, lo, hi) in zip(y, names, g, strict=True):
        if _clipped(ax, m, yi, lim, colours[r]):
            continue
        ax.errorbar([m], [yi], xerr=[[m - max(lo, lim[0])], [min(hi, lim[1]) - m]], fmt="o", color=colours[r],
                    ecolor=BLACK, elinewidth=1, capsize=3, markeredgecolor=BLACK, markersize=7)  # fmt: skip
    ax.axvline(0, color=GREY, lw=0.8)
    ax.set_xlim(*lim)
    ax.set_yticks(y, names)
    ax.set_xlabel("held-out accuracy gain over none (points; 95% CI over paired seeds)")
    ax.set_title("Measured gain of each recipe, best first")
    return _png(fig)


def fidelity_plane(report: dict[str, Any]) -> bytes:
    """Each recipe's place: densification (x) against fidelity (y), with the held-out images' fidelity as the
    on-manifold line; marker size grows with label consistency."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    colours = recipe_colours(report)
    ref = (report.get("reference") or {}).get("fidelity") or {}
    xs = []
    key = []
    for i, (r, rec) in enumerate(report["coverage"].items()):
        m = rec["metrics"]
        x, xl, xh = _interval(m.get("densification"))
        y, yl, yh = _interval(m.get("fidelity"))
        lc = (m.get("label_consistency") or {}).get("value") or 1.0
        xs.append(x)
        ax.errorbar(x, y, xerr=[[x - xl], [xh - x]], yerr=[[y - yl], [yh - y]], fmt="none", ecolor=GREY, lw=1)
        ax.scatter([x], [y], s=60 + 140 * max(lc, 0), color=colours[r], edgecolor=BLACK, lw=0.6, zorder=3)
        ax.text(x, y, str(i + 1), ha="center", va="center", fontsize=7, color="white", zorder=4)
        flagged = "leaves_manifold" in report["verdict"]["flags"].get(r, {})
        key.append(f"{i + 1}  {r}" + (" (off-manifold)" if flagged else ""))
    fig.text(0.99, 0.5, "\n".join(key), va="center", ha="left", fontsize=8, family="monospace")
    if ref.get("value") is not None:
        ax.axhline(ref["value"], color=BLUE, ls="--", lw=1)
        ax.text(
            max(xs) if xs else 0,
            ref["value"],
            " held-out images' fidelity",
            color=BLUE,
            va="bottom",
            ha="right",
            fontsize=8,
        )
    ax.set_xlabel("densification (mean log-distance reduction): useful ->")
    ax.set_ylabel("fidelity (share of views on the clean manifold)")
    ax.set_title(
        "Where each recipe's views land: densification (useful ->) against fidelity\n"
        "off-manifold = whole interval below the held-out images' line; marker size: label consistency"
    )
    ax.set_ylim(0, 1.05)
    return _png(fig)


def predictors_vs_gain(report: dict[str, Any]) -> bytes | None:
    """Every training-free predictor against the measured accuracy gain (95% interval over seeds), with Spearman's
    rho. Recipes are numbered (key on the right) so labels never overlap; a disastrous recipe is drawn at the
    edge of the gain axis."""
    names, g = _gains(report)
    if len(names) < 2:
        return None
    plt = _plt()
    v = report["verdict"]
    colours = recipe_colours(report)
    lim = gain_axis(g[:, 0], g[:, 1], g[:, 2])
    shown = [p for p in PREDICTORS if all(v["predictor_values"][p].get(r) is not None for r in names)]
    cols = 4
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.7 * rows), sharey=True, squeeze=False)
    for ax, p in zip(axes.ravel(), shown, strict=False):
        x = np.array([v["predictor_values"][p][r] for r in names])
        for i, r in enumerate(names):
            m, lo, hi = g[i]
            if _clipped(ax, m, x[i], lim, colours[r], horizontal=False):
                continue
            ax.errorbar([x[i]], [m], yerr=[[m - max(lo, lim[0])], [min(hi, lim[1]) - m]], fmt="o", markersize=11,
                        color=colours[r], ecolor=GREY, elinewidth=0.8, markeredgecolor=BLACK, zorder=3)  # fmt: skip
            ax.text(x[i], m, str(i + 1), ha="center", va="center", fontsize=6, color="white", zorder=4)
        a = v["agreement"].get(p) or {}
        rho = a.get("rho")
        star = " (default)" if p == v["default_predictor"] else ""
        ax.set_title(
            f"{LABELS[p]}{star}\nrho = {rho:+.2f} (p = {a['p_value']:.2f})"
            if rho is not None
            else LABELS[p] + star,
            fontsize=8,
        )
        ax.axhline(0, color=GREY, lw=0.7)
        ax.set_ylim(*lim)
        ax.tick_params(labelsize=7)
        ax.locator_params(axis="x", nbins=4)
    for ax in axes.ravel()[len(shown) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("measured gain\n(accuracy points)")
    key = "\n".join(f"{i + 1}  {r}" for i, r in enumerate(names))
    fig.text(1.0, 0.5, key, va="center", ha="left", fontsize=8, family="monospace")
    fig.suptitle("Training-free predictors (x) vs measured held-out accuracy gain (y, 95% CI over seeds)")
    fig.tight_layout()
    return _png(fig)


def _ink(image, value: float) -> str:
    """Black or white text, whichever reads on the colour ``image`` gives ``value`` (WCAG relative luminance)."""
    r, g, b, _ = image.cmap(image.norm(value))
    lum = 0.2126 * r**2.2 + 0.7152 * g**2.2 + 0.0722 * b**2.2
    return "black" if lum > 0.18 else "white"


def class_accuracy(report: dict[str, Any]) -> bytes | None:
    """Per class and recipe: the held-out accuracy gain over none (points, mean over paired seeds)."""
    recipes = (report.get("training") or {}).get("recipes") or {}
    base = {r["seed"]: r["per_class_accuracy"] for r in (recipes.get("none") or {}).get("runs", [])}
    names = [r for r in report["coverage"] if r != "none" and r in recipes]
    if not base or not names:
        return None
    classes = [c["name"] if isinstance(c, dict) else c for c in report["data"]["classes"]]
    grid = np.full((len(classes), len(names)), np.nan)
    for j, r in enumerate(names):
        diffs = [
            np.array(run["per_class_accuracy"], dtype=float) - np.array(base[run["seed"]], dtype=float)
            for run in recipes[r]["runs"]
            if run["seed"] in base and run.get("per_class_accuracy")
        ]
        if diffs:  # a class without held-out images has no accuracy (null): its cell stays empty
            stacked = np.stack(diffs)
            seen = np.isfinite(stacked).any(axis=0)
            grid[seen, j] = 100 * np.nanmean(stacked[:, seen], axis=0)
    plt = _plt()
    span = max(float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0, 1.0)
    fig, ax = plt.subplots(figsize=(2.4 + 0.8 * len(names), 0.32 * len(classes) + 1.8))
    im = ax.imshow(grid, cmap="PuOr", aspect="auto", vmin=-span, vmax=span)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    if len(classes) <= 40:
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=6,
                            color=_ink(im, grid[i, j]))  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.05, label="accuracy gain over none (points)")
    ax.set_title("Which classes each recipe helps (held-out accuracy gain per class, mean over seeds)")
    return _png(fig)


def loss_curves(report: dict[str, Any]) -> bytes | None:
    """Mean training loss per recipe over steps (mean over seeds): how much harder each recipe makes the task."""
    training = report.get("training") or {}
    recipes = training.get("recipes") or {}
    every = (training.get("config") or {}).get("log_every", 50)
    curves = {}
    for r in report["coverage"]:
        runs = [run["loss_curve"] for run in (recipes.get(r) or {}).get("runs", []) if run.get("loss_curve")]
        if runs:
            n = min(len(c) for c in runs)
            curves[r] = np.mean([c[:n] for c in runs], axis=0)
    if not curves:
        return None
    plt = _plt()
    colours = recipe_colours(report)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    styles = ["-", "--", "-.", ":"]
    for i, (r, c) in enumerate(curves.items()):
        steps = every * np.arange(1, len(c) + 1)
        ax.plot(steps, c, styles[i % len(styles)], color=colours[r], lw=1.4, label=r)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.set_yscale("log")
    ax.set_title("Training loss per recipe (harder views keep it higher)")
    ax.legend(fontsize=7, ncol=2, frameon=False)
    return _png(fig)


def class_gap_heatmap(report: dict[str, Any]) -> bytes:
    """Per class: the clean set's label-aware coverage gap (1 - coverage) and each recipe's densification."""
    plt = _plt()
    classes = report["data"]["classes"]
    class_names = [c["name"] if isinstance(c, dict) else c for c in classes]
    names = [r for r in report["coverage"] if r != "none"] or list(report["coverage"])
    first = next(iter(report["coverage"].values()))["metrics"]
    gap = np.array([1 - (v if v is not None else np.nan) for v in first["label_coverage_clean"]["per_class"]])
    dens = np.array(
        [
            [
                np.nan if v is None else v
                for v in report["coverage"][r]["metrics"]["densification"]["per_class"]
            ]
            for r in names
        ]
    ).T
    longest = max((len(c) for c in class_names), default=0)  # class names take width from the heatmaps
    fig, (ax0, ax1) = plt.subplots(
        1,
        2,
        figsize=(3.4 + 0.75 * len(names) + 0.07 * longest, max(4.4, 0.35 * len(class_names) + 1.8)),
        gridspec_kw={"width_ratios": [1, max(len(names), 1)]},
        layout="constrained",  # tight_layout gave up on 50 long class names and drew a colorbar over a label
    )
    gap_max = max(float(np.nanmax(gap)) if np.isfinite(gap).any() else 0.0, 0.05)
    im0 = ax0.imshow(gap[:, None], cmap="cividis", aspect="auto", vmin=0, vmax=gap_max)
    ax0.set_yticks(range(len(class_names)), class_names)
    ax0.set_xticks([0], ["clean gap"])
    for i, g in enumerate(gap):
        ax0.text(
            0,
            i,
            f"{g:.2f}",
            ha="center",
            va="center",
            fontsize=7,
            color=_ink(im0, g),
        )
    fig.colorbar(im0, ax=ax0, fraction=0.3).set_label("1 - label-aware coverage", size=8)
    im1 = ax1.imshow(dens, cmap="viridis", aspect="auto")
    ax1.set_xticks(range(len(names)), names, rotation=40, ha="right")
    ax1.set_yticks(range(len(class_names)), [])
    for i in range(dens.shape[0]):
        for j in range(dens.shape[1]):
            if np.isfinite(dens[i, j]):
                ax1.text(
                    j,
                    i,
                    f"{dens[i, j]:.3f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color=_ink(im1, dens[i, j]),
                )
    fig.colorbar(im1, ax=ax1, fraction=0.05).set_label("densification (mean log-distance reduction)", size=8)
    fig.suptitle(
        "Where the clean training set leaves held-out data uncovered, and which recipe fills it, per class"
    )
    return _png(fig)


def projection(samples: dict[str, np.ndarray], recipe: str, seed: int = 0) -> bytes | None:
    """PCA of the clean, augmented (``recipe``) and held-out embedding samples, fitted on the clean ones."""
    key = f"views:{recipe}"
    if "train" not in samples or key not in samples:
        return None
    plt = _plt()
    train, held, views = samples["train"], samples["heldout"], samples[key]
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:2].T
    # a deterministic sign: the largest-magnitude loading of each axis is positive
    basis = basis * np.sign(basis[np.abs(basis).argmax(axis=0), range(basis.shape[1])])
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    for pts, colour, label, marker in (
        (train, GREY, "clean training", "o"),
        (views, ORANGE, f"views of {recipe}", "o"),
        (held, BLUE, "held-out", "x"),
    ):
        xy = (pts - mean) @ basis
        ax.scatter(
            xy[:, 0],
            xy[:, 1],
            s=6,
            color=colour,
            label=f"{label} ({len(pts)})",
            alpha=0.55,
            marker=marker,
            lw=0.6,
        )
    ax.set_xlabel("PC 1 of clean training embeddings")
    ax.set_ylabel("PC 2")
    ax.set_title(f"Embeddings (PCA, fitted on clean training points): {recipe}")
    ax.legend(markerscale=2.5, fontsize=7, loc="best")
    return _png(fig)


def projection_recipe(report: dict[str, Any]) -> str:
    """The recipe the projection shows: the one asked for, else the recommended one, else the first."""
    settings = report.get("settings") or {}
    if settings.get("projection"):
        return settings["projection"]
    use = report["verdict"]["use"]
    if use:
        return use[0]["recipe"]
    names = [r for r in report["coverage"] if r != "none"]
    return names[0] if names else next(iter(report["coverage"]))


def manifold_curve(report: dict[str, Any]) -> bytes | None:
    """Held-out coverage versus training size with its fitted power law (left; each recipe placed at its
    coverage-equivalent size) and, per class, the multiple of its images the fit says reaching the target needs
    (right)."""
    manifold = report.get("manifold")
    if not manifold:
        return None
    curve = manifold["curve"]
    sizes = np.asarray(curve["sizes"], dtype=float)
    cov = np.asarray([np.nan if v is None else v for v in curve["coverage"]], dtype=float)
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 3.6), gridspec_kw={"width_ratios": [1.25, 1]})
    ax.plot(sizes, cov, "o", color=BLACK, label="clean subsets (measured)", zorder=3)
    fit = curve["fit"]
    colours = recipe_colours(report)
    multipliers = manifold.get("multipliers", {})
    top = max([1.0] + [m["coverage"] for m in multipliers.values() if m.get("coverage") is not None])
    if fit.get("a") is not None and fit.get("b") is not None:
        grid = np.geomspace(sizes.min(), sizes.max() * max(2.0, top * 1.2), 200)
        ax.plot(grid, 1 - fit["a"] * grid ** (-fit["b"]), "-", color=GREY, label="power-law fit")
    for name, m in multipliers.items():
        value = (
            (report["coverage"].get(name) or {}).get("metrics", {}).get("coverage_augmented", {}).get("value")
        )
        if m.get("coverage") is None or value is None or name == "none":
            continue
        x = sizes[-1] * m["coverage"]
        ax.plot([x], [value], "D", color=colours.get(name, BLUE), ms=6, zorder=4)
        ax.annotate(name, (x, value), xytext=(4, -3), textcoords="offset points", fontsize=7)
    ax.axhline(curve["target"], color=GREY, ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel("held-out coverage")
    ax.set_title("coverage grows with data; recipes at their equivalent size")
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    needs = curve["class_needs"]
    names = [n["class"] for n in needs]
    mult = np.asarray([np.nan if n["multiple"] is None else n["multiple"] for n in needs], dtype=float)
    y = np.arange(len(names))[::-1]
    shown = np.nan_to_num(mult, nan=1.0)
    bx.barh(y, shown - 1.0, left=1.0, color=[VERMILLION if v > 1.5 else BLUE for v in shown])
    for yi, n, v in zip(y, needs, mult, strict=True):
        label = "n/a" if not np.isfinite(v) else (f">{v:g}x" if n["beyond"] else f"{v:.1f}x")
        bx.text(np.nan_to_num(v, nan=1.0) * 1.08, yi, label, va="center", fontsize=7)
    bx.set_xscale("log")
    bx.set_xlim(0.9, 300)
    bx.set_yticks(y, names)
    bx.axvline(1.0, color=GREY, lw=1)
    bx.set_xlabel(f"images needed for {curve['target']:.0%} held-out coverage (x now, log scale)")
    bx.set_title("per class: how much more real data")
    fig.tight_layout()
    return _png(fig)


def data_issue_examples(report: dict[str, Any], data, per_kind: int = 6) -> bytes | None:
    """The report's most severe flagged samples as images: a row per issue kind (label errors with their given
    and suggested labels, leaks and duplicates beside their copy, outliers), at most ``per_kind`` each; None when
    nothing was flagged."""
    section = report.get("data_quality") or {}
    examples = section.get("examples") or []
    kinds = [k for k in ("label", "leak", "duplicate", "outlier") if any(e["kind"] == k for e in examples)]
    if not kinds:
        return None
    splits = {"train": data.train, "heldout": data.heldout}

    def image(split: str, index: int) -> np.ndarray:
        img = splits[split].images[index]
        return img[..., 0] if img.shape[-1] == 1 else img

    plt = _plt()
    cols = per_kind
    fig, axes = plt.subplots(len(kinds), cols, figsize=(1.45 * cols, 1.75 * len(kinds)), squeeze=False)
    titles = {"label": "likely label error", "leak": "held-out | train copy", "duplicate": "duplicate pair",
              "outlier": "outlier"}  # fmt: skip
    for r, kind in enumerate(kinds):
        rows = [e for e in examples if e["kind"] == kind][:cols]
        for c in range(cols):
            ax = axes[r][c]
            ax.set_axis_off()
            if c >= len(rows):
                continue
            e = rows[c]
            img = image(e["split"], e["index"])
            if kind in ("leak", "duplicate") and e.get("duplicate_of"):
                other_split, other = e["duplicate_of"].split(":")
                pair = image(other_split, int(other))
                gap = np.full((img.shape[0], max(1, img.shape[1] // 10), *img.shape[2:]), 255, img.dtype)
                img = np.concatenate([img, gap, pair], axis=1)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
            where = f"{e['split']} #{e['index']}"
            if kind == "label":
                text = f"{where}\ngiven {e['given_label']}\n-> {e['suggested_label']}"
            elif kind in ("leak", "duplicate"):
                text = f"{where} = {e['duplicate_of']}\n{e['duplicate_kind']}: {e['given_label']}"
                if e.get("duplicate_label") and e["duplicate_label"] != e["given_label"]:
                    text += f" / {e['duplicate_label']}"
            else:
                text = f"{where}\n{e['given_label']}, x{e['outlier_score']:.1f}"
            ax.set_title(text, fontsize=6.5)
        axes[r][0].text(-0.08, 0.5, titles[kind], transform=axes[r][0].transAxes, rotation=90, ha="right",
                        va="center", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return _png(fig)


def audit_figures(report: dict[str, Any], samples: dict[str, np.ndarray]) -> dict[str, bytes]:
    """{name: PNG} of every figure of an audit report."""
    figures = {
        "coverage-gain": coverage_gain(report),
        "fidelity-plane": fidelity_plane(report),
        "class-gaps": class_gap_heatmap(report),
    }
    for name, draw in (
        ("measured-gain", measured_gain),
        ("predictors-vs-gain", predictors_vs_gain),
        ("class-accuracy", class_accuracy),
        ("loss-curves", loss_curves),
        ("manifold", manifold_curve),
    ):
        png = draw(report)
        if png is not None:
            figures[name] = png
    proj = projection(samples, projection_recipe(report), seed=report["settings"].get("seed", 0))
    if proj is not None:
        figures["projection"] = proj
    return figures


def _compare_interval(report: dict[str, Any], recipe: str, metric: str) -> tuple[float, float, float]:
    """(value, low, high) of a coverage metric, or of an accuracy gain over none in points (NaN when absent)."""
    if metric not in GAIN_SECTIONS:
        return _interval((report["coverage"].get(recipe) or {}).get("metrics", {}).get(metric))
    recipes = (report.get(GAIN_SECTIONS[metric]) or {}).get("recipes") or {}
    g = (recipes.get(recipe) or {}).get("gain_over_none")
    if not g or g.get("mean") is None:
        return np.nan, np.nan, np.nan
    m = 100 * g["mean"]
    return (
        m,
        (100 * g["low"] if g.get("low") is not None else m),
        (100 * g["high"] if g.get("high") is not None else m),
    )


def compare_figure(reports: list[tuple[str, dict[str, Any]]], metric: str = "densification") -> bytes:
    """``metric`` per recipe, one panel per report, side by side with a shared recipe axis. ``metric`` is a
    coverage metric or an accuracy gain over none: ``measured_gain`` (full training) or ``proxy_gain`` (the
    fine-tune proxy), in points, without ``none``; a run without that section shows an empty panel."""
    plt = _plt()
    gain = metric in GAIN_SECTIONS
    names: list[str] = []
    for _, r in reports:
        names += [n for n in r["coverage"] if n not in names and not (gain and n == "none")]
    y = np.arange(len(names))[::-1]
    fig, axes = plt.subplots(
        1, len(reports), figsize=(3.4 * len(reports), 0.42 * len(names) + 1.6), sharey=True, squeeze=False
    )
    label = GAIN_LABELS[metric] if gain else LABELS.get(metric, metric)
    for ax, (title, r) in zip(axes[0], reports, strict=True):
        vals = np.array([_compare_interval(r, n, metric) for n in names], dtype=float).reshape(-1, 3)
        colours = recipe_colours(r)
        ax.barh(y, np.nan_to_num(vals[:, 0]), color=[colours.get(n, GREY) for n in names], height=0.6)
        ok = np.isfinite(vals[:, 0])
        ax.errorbar(
            vals[ok, 0],
            y[ok],
            xerr=[vals[ok, 0] - vals[ok, 1], vals[ok, 2] - vals[ok, 0]],
            fmt="none",
            ecolor=BLACK,
            capsize=3,
            lw=1,
        )
        if not ok.any():
            ax.text(0.5, 0.5, "not measured in this run", transform=ax.transAxes, ha="center", color=GREY)
        ax.axvline(0, color=BLACK, lw=0.8)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel(label)
    axes[0][0].set_yticks(y, names)
    fig.suptitle(f"{label} per recipe, run by run (95% CI)")
    fig.tight_layout()
    return _png(fig)

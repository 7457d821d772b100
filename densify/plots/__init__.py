"""The audit's figures, drawn from a report's numbers (``report.json``) with matplotlib's Agg backend.

Every function returns PNG bytes. Colours are the Okabe-Ito palette (distinguishable with every common colour
vision deficiency), every axis is labelled with its unit, and intervals are 95%.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from densify._catalogue import LABELS, PLOTTED, PREDICTORS

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


def fidelity_plane(report: dict[str, Any]) -> bytes:
    """Each recipe's place: densification (x) against fidelity (y), with the held-out images' fidelity as the
    on-manifold line; marker size grows with label consistency."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    colours = recipe_colours(report)
    ref = (report.get("reference") or {}).get("fidelity") or {}
    xs = []
    for r, rec in report["coverage"].items():
        m = rec["metrics"]
        x, xl, xh = _interval(m.get("densification"))
        y, yl, yh = _interval(m.get("fidelity"))
        lc = (m.get("label_consistency") or {}).get("value") or 1.0
        xs.append(x)
        ax.errorbar(x, y, xerr=[[x - xl], [xh - x]], yerr=[[y - yl], [yh - y]], fmt="none", ecolor=GREY, lw=1)
        ax.scatter([x], [y], s=40 + 120 * max(lc, 0), color=colours[r], edgecolor=BLACK, lw=0.6, zorder=3)
        ax.annotate(r, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
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
        "On-manifold and useful (top right), off-manifold (low), no-op (left)\nmarker size: label consistency"
    )
    ax.set_ylim(0, 1.05)
    return _png(fig)


def predictors_vs_gain(report: dict[str, Any]) -> bytes | None:
    """Every training-free predictor against the measured accuracy gain, with Spearman's rho."""
    training = report.get("training")
    if not training:
        return None
    plt = _plt()
    v = report["verdict"]
    names = [r for r in report["coverage"] if (training["recipes"].get(r) or {}).get("gain_over_none")]
    gains = np.array([100 * training["recipes"][r]["gain_over_none"]["mean"] for r in names])
    colours = recipe_colours(report)
    cols = 5
    rows = -(-len(PREDICTORS) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.7 * rows), sharey=True)
    for ax, p in zip(axes.ravel(), PREDICTORS, strict=False):
        x = [v["predictor_values"][p][r] for r in names]
        if any(val is None for val in x):
            ax.set_visible(False)
            continue
        ax.scatter(x, gains, color=[colours[r] for r in names], edgecolor=BLACK, lw=0.5, zorder=3)
        for xi, yi, r in zip(x, gains, names, strict=True):
            ax.annotate(r, (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=6)
        a = v["agreement"].get(p) or {}
        rho = a.get("rho")
        star = " *" if p == v["default_predictor"] else ""
        ax.set_title(
            f"{LABELS[p]}{star}\nrho = {rho:+.2f} (p = {a['p_value']:.2f})" if rho is not None else LABELS[p],
            fontsize=8,
        )
        ax.axhline(0, color=GREY, lw=0.7)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(PREDICTORS) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("measured gain\n(accuracy points)")
    fig.suptitle("Training-free predictors vs measured held-out accuracy gain (* = default predictor)")
    fig.tight_layout()
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
    fig, (ax0, ax1) = plt.subplots(
        1,
        2,
        figsize=(2.2 + 0.75 * len(names), 0.35 * len(class_names) + 1.8),
        gridspec_kw={"width_ratios": [1, max(len(names), 1)]},
    )
    im0 = ax0.imshow(gap[:, None], cmap="cividis", aspect="auto", vmin=0, vmax=max(np.nanmax(gap), 1e-6))
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
            color="white" if g < np.nanmax(gap) / 2 else "black",
        )
    fig.colorbar(im0, ax=ax0, fraction=0.3, label="1 - label-aware coverage")
    im1 = ax1.imshow(dens, cmap="viridis", aspect="auto")
    ax1.set_xticks(range(len(names)), names, rotation=40, ha="right")
    ax1.set_yticks(range(len(class_names)), [])
    for i in range(dens.shape[0]):
        for j in range(dens.shape[1]):
            if np.isfinite(dens[i, j]):
                ax1.text(j, i, f"{dens[i, j]:.3f}", ha="center", va="center", fontsize=6, color="white")
    fig.colorbar(im1, ax=ax1, fraction=0.05, label="densification (mean log-distance reduction)")
    fig.suptitle(
        "Where the clean training set leaves held-out data uncovered, and which recipe fills it, per class"
    )
    fig.tight_layout()
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


def audit_figures(report: dict[str, Any], samples: dict[str, np.ndarray]) -> dict[str, bytes]:
    """{name: PNG} of every figure of an audit report."""
    figures = {
        "coverage-gain": coverage_gain(report),
        "fidelity-plane": fidelity_plane(report),
        "class-gaps": class_gap_heatmap(report),
    }
    pv = predictors_vs_gain(report)
    if pv is not None:
        figures["predictors-vs-gain"] = pv
    proj = projection(samples, projection_recipe(report), seed=report["settings"].get("seed", 0))
    if proj is not None:
        figures["projection"] = proj
    return figures


def compare_figure(reports: list[tuple[str, dict[str, Any]]], metric: str = "densification") -> bytes:
    """``metric`` per recipe, one panel per report, side by side with a shared recipe axis."""
    plt = _plt()
    names: list[str] = []
    for _, r in reports:
        names += [n for n in r["coverage"] if n not in names]
    y = np.arange(len(names))[::-1]
    fig, axes = plt.subplots(
        1, len(reports), figsize=(3.4 * len(reports), 0.42 * len(names) + 1.6), sharey=True, squeeze=False
    )
    for ax, (label, r) in zip(axes[0], reports, strict=True):
        vals = np.array(
            [_interval((r["coverage"].get(n) or {}).get("metrics", {}).get(metric)) for n in names]
        )
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
        ax.axvline(0, color=BLACK, lw=0.8)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel(LABELS.get(metric, metric))
    axes[0][0].set_yticks(y, names)
    fig.suptitle(f"{LABELS.get(metric, metric)} per recipe, run by run (95% CI)")
    fig.tight_layout()
    return _png(fig)

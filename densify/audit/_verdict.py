"""The verdict of an audit: recipes ranked by measured gain and by every training-free predictor, how far each
predictor agrees with training (Spearman rho, permutation p, bootstrap CI), flags, and a plain-language summary.

Pure functions of the report's numbers (plain dicts, as in ``report.json``), so ``densify compare`` and the study
reuse them. Flags compare a recipe's views with what real unseen images score (``reference``), never with
constants fitted to one dataset:
- *leaves the manifold*: its fidelity's 95% upper bound is below the held-out images' fidelity;
- *changes labels*: its label consistency's upper bound is below the held-out / training accuracy ratio;
- *adds nothing*: its densification's lower bound is 0 (no held-out point got measurably closer).
The first two need an encoder fitted to the training labels (``reference``, ``reference+views``): for an unfitted
one (``random-cnn``, ``pixels``) held-out images are no more "unseen" than training images, the yardstick is
degenerate, and those flags are not raised.

With training, a recipe is to be avoided when its measured gain is below 0 (95% interval); flags explain why.
Without training, recipes are ranked by ``DEFAULT_PREDICTOR``; a recipe flagged both ways is "likely to hurt",
one flagged once gets a caution. (Flags are evidence, not proof: in the Fashion-MNIST study flagged variants
lost 1.7 to 2.6 points on average, but a few of them helped; docs/study-fashion-mnist.md.)
"""

from __future__ import annotations

import math
from typing import Any

from densify import _catalogue
from densify.audit._stats import bootstrap_rho, permutation_p, rank_order, spearman

PREDICTORS = _catalogue.PREDICTORS
BASE_PREDICTORS = _catalogue.BASE_PREDICTORS
COMBINED = _catalogue.COMBINED
#: what `densify evaluate` ranks by when it does not train: the predictor with the best worst-case Spearman rho
#: against trained gains over 3 training sizes x 3 encoders in docs/study-fashion-mnist.md (a maximin rule fixed
#: before the results were seen)
DEFAULT_PREDICTOR = "fidelity_x_coverage_gain"
#: held-out coverage of the clean set above which coverage gains cannot separate recipes
SATURATED = 0.98

LABELS = _catalogue.LABELS


def predictor_value(metrics: dict[str, dict], name: str) -> float | None:
    """A recipe's value of predictor ``name`` from its metrics dict (``{"value": ...}`` per metric)."""
    factors = COMBINED.get(name, (name,))
    value = 1.0
    for f in factors:
        v = (metrics.get(f) or {}).get("value")
        if v is None:
            return None
        value *= v
    return value


def flags(metrics: dict[str, dict], reference: dict[str, dict] | None) -> dict[str, str]:
    """{flag: reason} of one recipe (see the module docstring); ``reference`` None: only *adds nothing*."""
    out = {}
    reference = reference or {}
    fid, ref_fid = metrics.get("fidelity"), reference.get("fidelity")
    if fid and ref_fid and fid.get("high") is not None and ref_fid.get("value") is not None:  # noqa: SIM102
        if fid["high"] < ref_fid["value"]:
            out["leaves_manifold"] = f"fidelity {fid['value']:.2f} (held-out images: {ref_fid['value']:.2f})"
    lc, ref_lc = metrics.get("label_consistency"), reference.get("label_consistency")
    if lc and ref_lc and lc.get("high") is not None and ref_lc.get("value") is not None:  # noqa: SIM102
        if lc["high"] < ref_lc["value"]:
            out["changes_labels"] = (
                f"label consistency {lc['value']:.2f} (held-out images: {ref_lc['value']:.2f})"
            )
    dens = metrics.get("densification")
    if dens and dens.get("low") is not None and dens["low"] <= 0:
        out["adds_nothing"] = f"densification {dens['value']:.3f}"
    return out


def _points(x: float) -> str:
    return f"{100 * x:+.2f}"


def verdict(
    recipes: dict[str, dict[str, Any]],
    reference: dict[str, dict],
    trained: dict[str, dict] | None,
    *,
    seed: int = 0,
    default_predictor: str = DEFAULT_PREDICTOR,
    supervised: bool = True,
) -> dict[str, Any]:
    """The audit's verdict.

    Args:
        recipes: {recipe: {"metrics": {metric: {"value", "low", "high", ...}}}} (``report.json["coverage"]``).
        reference: the held-out images' fidelity and label consistency.
        trained: {recipe: {"gain_over_none": {"mean", "low", "high"} | None, ...}} or None without training.
        supervised: whether the encoder was fitted to the training labels (else no manifold / label flags).
    """
    names = list(recipes)
    values = {p: {r: predictor_value(recipes[r]["metrics"], p) for r in names} for p in PREDICTORS}
    ranking = {
        p: rank_order([v[r] for r in names], names)
        for p, v in values.items()
        if all(v[r] is not None for r in names)
    }
    recipe_flags = {r: flags(recipes[r]["metrics"], reference if supervised else None) for r in names}
    out: dict[str, Any] = {
        "default_predictor": default_predictor,
        "trained": trained is not None,
        "predictor_values": values,
        "ranking": ranking,
        "flags": recipe_flags,
        "agreement": {},
    }
    gains = None
    if trained is not None:
        gains = {
            r: trained[r]["gain_over_none"]["mean"]
            for r in names
            if r in trained and trained[r].get("gain_over_none")
        }
        ranked = [r for r in names if r in gains]
        out["ranking"]["measured_gain"] = rank_order([gains[r] for r in ranked], ranked)
        for p in PREDICTORS:
            common = [r for r in ranked if values[p][r] is not None]
            if len(common) < 3:
                continue
            x, y = [values[p][r] for r in common], [gains[r] for r in common]
            rho = spearman(x, y)
            low, high = bootstrap_rho(x, y, seed=seed)
            out["agreement"][p] = {
                "rho": None if math.isnan(rho) else rho,
                "p_value": None if math.isnan(rho) else permutation_p(x, y, seed=seed),
                "ci": [None if math.isnan(low) else low, None if math.isnan(high) else high],
                "n": len(common),
            }
    out.update(_advice(recipes, reference, trained, values, recipe_flags, default_predictor))
    return out


def _why_flagged(recipe_flags: dict[str, str]) -> str:
    return "; ".join(
        {"leaves_manifold": "its views leave the manifold: ", "changes_labels": "they change labels: "}[k] + v
        for k, v in recipe_flags.items()
        if k != "adds_nothing"
    )


def _describe(m: dict[str, dict]) -> str:
    """A recipe's densification, fidelity and label consistency, as a phrase."""
    parts = []
    for key, fmt in (("densification", ".3f"), ("fidelity", ".2f"), ("label_consistency", ".2f")):
        if m.get(key) and m[key].get("value") is not None:
            parts.append(f"{LABELS[key]} {m[key]['value']:{fmt}}")
    return ", ".join(parts)


def _advice(recipes, reference, trained, values, recipe_flags, default_predictor) -> dict[str, Any]:
    """use / avoid lists and the plain-language summary."""
    names = [r for r in recipes if r != "none"]
    if trained is not None:
        use, avoid, summary = _trained_advice(names, recipes, trained, recipe_flags)
    else:
        use, avoid, summary = _untrained_advice(
            names, recipes, values[default_predictor], recipe_flags, default_predictor
        )
    summary += [f"Avoid {a['recipe']}: {a['reason']}." for a in avoid]
    return {"use": use, "avoid": avoid, "summary": summary + _notes(recipes, names, recipe_flags)}


def _trained_advice(names, recipes, trained, recipe_flags) -> tuple[list, list, list]:
    """With training: use the recipe with the largest gain whose interval is above 0; avoid those below 0."""
    use, avoid, summary = [], [], []
    gains = {
        r: trained[r]["gain_over_none"] for r in names if r in trained and trained[r].get("gain_over_none")
    }
    helps = [r for r in gains if gains[r]["low"] is not None and gains[r]["low"] > 0]
    hurts = [r for r in gains if gains[r]["high"] is not None and gains[r]["high"] < 0]
    best = max(gains, key=lambda r: gains[r]["mean"]) if gains else None
    if helps:
        top = max(helps, key=lambda r: gains[r]["mean"])
        g = gains[top]
        use.append(
            {
                "recipe": top,
                "reason": f"{_points(g['mean'])} points held-out accuracy "
                f"[{_points(g['low'])}, {_points(g['high'])}] over none; {_describe(recipes[top]['metrics'])}",
            }
        )
        summary.append(f"Use {top}: {use[0]['reason']}.")
        others = sorted((r for r in helps if r != top), key=lambda r: -gains[r]["mean"])
        if others:
            summary.append(
                "Also beat none beyond seed noise: "
                + ", ".join(f"{r} ({_points(gains[r]['mean'])})" for r in others)
                + "."
            )
    elif best is not None:
        g = gains[best]
        summary.append(
            f"No recipe beat none beyond seed noise; the best was {best} at {_points(g['mean'])} points "
            f"[{_points(g['low'])}, {_points(g['high'])}]. Train more seeds (--seeds) or longer (--steps) "
            "before choosing."
        )
    for r in sorted(hurts, key=lambda r: gains[r]["mean"]):
        g = gains[r]
        reasons = [f"{_points(g['mean'])} points [{_points(g['low'])}, {_points(g['high'])}]"]
        if _why_flagged(recipe_flags[r]):
            reasons.append(_why_flagged(recipe_flags[r]))
        avoid.append({"recipe": r, "reason": "; ".join(reasons)})
    spared = [r for r in names if _why_flagged(recipe_flags[r]) and r not in hurts]
    if spared:
        summary.append(
            "Flagged by coverage but not measurably hurt by training: "
            + "; ".join(f"{r} ({_why_flagged(recipe_flags[r])})" for r in spared)
            + ". The encoder may not know these variations; trust the trained numbers."
        )
    return use, avoid, summary


def _untrained_advice(names, recipes, pv, recipe_flags, default_predictor) -> tuple[list, list, list]:
    """Without training: use the top recipe by the default predictor; flags are cautions, both flags avoid."""
    use, avoid, summary, cautions = [], [], [], []
    ranked = sorted((r for r in names if pv[r] is not None), key=lambda r: -pv[r])
    if ranked:
        top = ranked[0]
        reason = f"highest {LABELS[default_predictor]} ({pv[top]:.4f}); {_describe(recipes[top]['metrics'])}"
        use.append({"recipe": top, "reason": reason})
        summary.append(f"Use {top} (not confirmed by training): {reason}.")
    for r in ranked:
        raised = set(recipe_flags[r]) - {"adds_nothing"}
        if len(raised) == 2:
            avoid.append(
                {
                    "recipe": r,
                    "reason": f"likely to hurt (not confirmed by training): {_why_flagged(recipe_flags[r])}",
                }
            )
        elif raised:
            cautions.append(f"{r} ({_why_flagged(recipe_flags[r])})")
    if cautions:
        summary.append("Check with training before using: " + "; ".join(cautions) + ".")
    return use, avoid, summary


def _notes(recipes, names, recipe_flags) -> list[str]:
    """Warnings that hold with or without training: saturated coverage, recipes that add nothing."""
    notes = []
    clean = [(recipes[r]["metrics"].get("coverage_clean") or {}).get("value") for r in recipes]
    clean = [c for c in clean if c is not None]
    if clean and max(clean) >= SATURATED:
        notes.append(
            f"Held-out coverage is saturated (the clean training set already covers {100 * max(clean):.1f}% of "
            "held-out points), so coverage gains cannot separate recipes; read densification instead, or train."
        )
    idle = [r for r in names if "adds_nothing" in recipe_flags[r]]
    if idle:
        notes.append("Add nothing near held-out data (densification 0): " + ", ".join(idle) + ".")
    return notes


def agreement_sentence(agreement: dict[str, dict], predictor: str) -> str | None:
    """One sentence on how far ``predictor`` agreed with training, or None when it was not measured."""
    a = agreement.get(predictor)
    if not a or a.get("rho") is None:
        return None
    lo, hi = a["ci"]
    ci = f", 95% bootstrap CI [{lo:+.2f}, {hi:+.2f}]" if lo is not None else ""
    strength = "agreed with" if a["p_value"] < 0.05 and a["rho"] > 0 else "did not clearly agree with"
    return (
        f"The training-free {LABELS[predictor]} {strength} training on this data: Spearman rho "
        f"{a['rho']:+.2f} (permutation p = {a['p_value']:.3f}{ci}) over {a['n']} recipes."
    )

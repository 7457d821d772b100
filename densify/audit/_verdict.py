"""The verdict of an audit: recipes ranked by measured gain and by every training-free predictor, how far each
predictor agrees with training (Spearman rho, permutation p, bootstrap CI), flags, warnings, and a plain-language
summary that states only what the numbers support.

Pure functions of the report's numbers (plain dicts, as in ``report.json``), so ``densify compare`` and the study
reuse them. Flags compare a recipe's views with what real unseen images score (``reference``), never with
constants fitted to one dataset:
- *leaves the manifold*: its fidelity's 95% upper bound is below the held-out images' fidelity;
- *changes labels*: its label consistency's upper bound is below the held-out / training accuracy ratio;
- *adds nothing*: its densification's lower bound is 0 (no held-out point got measurably closer).
The first two need an encoder fitted to the training labels (``reference``, ``reference+views``): for an unfitted
one (``random-cnn``, ``pixels``) held-out images are no more "unseen" than training images, the yardstick is
degenerate, and those flags are not raised. Separately, a recipe whose views are degenerate (constant, collapsed,
saturated or outside the data's value range; ``densify.coverage.view_health``, checked on the pixels) is never
recommended and always listed to avoid.

The rules, each a row of the table in ``tests/test_verdict_table.py``:
- **Warnings** come first and replace advice they make meaningless: fewer held-out images than ``MIN_HELDOUT``
  (the studies' minimum), held-out accuracy at the ceiling (``CEILING``), saturated held-out coverage.
- **With training**: use the recipe with the largest gain whose 95% interval (widened by one held-out image on
  each side: paired differences of equal counts have zero variance but are not certain) is above 0; the head-to-head (the
  best against the runner-up, paired by seed) says whether it beats the runner-up or ties with it; avoid recipes
  whose gain interval is below 0. When no recipe beats ``none``, the summary asks for more seeds or steps only
  when no warning explains why nothing can be decided.
- **Without training**: rank by ``DEFAULT_PREDICTOR``; when it cannot separate the recipes (at most one distinct
  value, e.g. coverage gain 0 everywhere on saturated coverage) rank by ``FALLBACK_PREDICTOR``, and when that
  cannot either, recommend nothing. A pick whose value equals the runner-up's is a tie; one whose 95% interval
  overlaps the runner-up's is named as uncertain, and the predictor's measured reliability in the predictor study
  is stated. Flags are worded as evidence with their measured precision (``flag_evidence``): a recipe flagged both ways is listed to avoid and never recommended (the next recipe is).
- A recipe is never both recommended and avoided.
"""

from __future__ import annotations

import math
import re
from typing import Any

from densify import _catalogue
from densify.audit._stats import (
    MIN_INTERVAL_RECIPES,
    bootstrap_rho,
    permutation_p,
    rank_order,
    ranks,
    spearman,
)

PREDICTORS = _catalogue.PREDICTORS
BASE_PREDICTORS = _catalogue.BASE_PREDICTORS
COMBINED = _catalogue.COMBINED
#: what `densify evaluate` ranks by when it does not train: the predictor with the best worst-case Spearman rho
#: against trained gains over 3 training sizes x 3 encoders in docs/study-fashion-mnist.md (a maximin rule fixed
#: before the results were seen)
DEFAULT_PREDICTOR = "fidelity_x_coverage_gain"
#: what ranks when the default predictor cannot separate the recipes: the predictor with the best worst-case
#: left-out rho at the default encoder (reference+views) among those that do not saturate (label consistency x
#: densification: a mean log-distance reduction, never capped, times the share of views that keep their label;
#: worst +0.26, against densification's +0.19), in the cross-dataset predictor study (docs/predictor-study.md)
FALLBACK_PREDICTOR = "consistency_x_densification"
#: held-out coverage of the clean set above which coverage gains cannot separate recipes
SATURATED = 0.98
#: held-out images below which the verdict warns (the studies measure gains on at least 1,000)
MIN_HELDOUT = 1000
#: held-out accuracy (of ``none``, or of every recipe) at or above which gains cannot show
CEILING = 0.99
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


def flags(metrics: dict[str, dict], reference: dict[str, dict] | None, floor: float = 0.0) -> dict[str, str]:
    """{flag: reason} of one recipe (see the module docstring); ``reference`` None: only *adds nothing*.
    ``floor``: the flags *leaves the manifold* and *changes labels* need the upper bound below the held-out
    images' value by more than this (an effect size, in the metric's own units: shares of views)."""
    out = {}
    reference = reference or {}
    fid, ref_fid = metrics.get("fidelity"), reference.get("fidelity")
    if fid and ref_fid and fid.get("high") is not None and ref_fid.get("value") is not None:  # noqa: SIM102
        if fid["high"] < ref_fid["value"] - floor:
            out["leaves_manifold"] = (
                f"fidelity {fid['value']:.2f} against {ref_fid['value']:.2f} for held-out images"
            )
    lc, ref_lc = metrics.get("label_consistency"), reference.get("label_consistency")
    if lc and ref_lc and lc.get("high") is not None and ref_lc.get("value") is not None:  # noqa: SIM102
        if lc["high"] < ref_lc["value"] - floor:
            out["changes_labels"] = (
                f"label consistency {lc['value']:.2f} against {ref_lc['value']:.2f} for held-out images"
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
    n_heldout: int | None = None,
    encoder: str | None = None,
    leakage: dict[str, Any] | None = None,
    proxied: dict[str, dict] | None = None,
    shift: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit's verdict.

    Args:
        recipes: {recipe: {"metrics": {metric: {"value", "low", "high", ...}}}} (``report.json["coverage"]``).
        reference: the held-out images' fidelity and label consistency.
        trained: {recipe: {"gain_over_none": {"mean", "low", "high"} | None, "accuracy": {...},
            "runs": [{"seed", "heldout_accuracy"}, ...]}} (``report.json["training"]["recipes"]``), or None.
        supervised: whether the encoder was fitted to the training labels (else no manifold / label flags).
        n_heldout: held-out images the numbers rest on (None: not checked).
        encoder: the encoder's name, for the reliability the predictor study measured (None: not stated).
        leakage: the data-quality check's train / held-out duplicates (``densify.quality``'s summary "leakage";
            None: not checked); any leak is the first warning, since it inflates every held-out number.
        proxied: without ``trained``, the fine-tune proxy's summaries (``report.json["proxy"]["recipes"]``, same
            shape as ``trained``'s): recipes are then ranked by the mean of their ranks by the proxy's gain and by
            the default predictor, the combination the predictor study measured.
        shift: :func:`densify.quality.heldout_shift` (``report.json["data_quality"]["shift"]``; None: not
            checked); a shifted held-out set is warned about, since fidelity measures views against training images.
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
    if trained is None and proxied is not None:
        out["proxy_gains"] = {r: _proxy_gain(proxied, r) for r in names}
        scores = _proxy_scores(out["proxy_gains"], values[default_predictor], names)
        if scores:
            out["ranking"][PROXY_RANKING] = rank_order(list(scores.values()), list(scores))
    out.update(
        _advice(
            recipes,
            trained,
            values,
            recipe_flags,
            default_predictor,
            n_heldout,
            encoder,
            leakage,
            proxied,
            shift,
        )
    )
    return out


#: the verdict's name for the proxy's ranking (the proxy's gains and the default predictor, ranks averaged)
PROXY_RANKING = "proxy_and_predictor"


def ranking_label(v: dict[str, Any]) -> str:
    """What a verdict ranked by, in words: the measured gain, the fine-tune proxy's ranking or a predictor."""
    ranked = v.get("ranked_by") or v["default_predictor"]
    if ranked == "measured_gain":
        return "measured gain"
    if ranked == PROXY_RANKING:
        return f"the fine-tune proxy and {LABELS[v['default_predictor']]} together"
    return LABELS[ranked]


def _proxy_gain(proxied: dict[str, dict], recipe: str) -> float | None:
    """The proxy's mean paired gain over ``none`` of ``recipe`` (``none``: 0; None when not fine-tuned)."""
    if recipe == "none":
        return 0.0
    gain = (proxied.get(recipe) or {}).get("gain_over_none")
    return None if gain is None else gain["mean"]


def _proxy_scores(
    gains: dict[str, float | None], predictor: dict[str, float | None], names: list[str]
) -> dict:
    """{recipe: mean of its rank by proxy gain and its rank by the predictor} (higher: better) over the recipes
    that have both (``none`` included); empty when fewer than two do."""
    both = [r for r in names if gains.get(r) is not None and predictor.get(r) is not None]
    if len(both) < 2:
        return {}
    by_gain = ranks([gains[r] for r in both])
    by_predictor = ranks([predictor[r] for r in both])
    return {r: (a + b) / 2 for r, a, b in zip(both, by_gain, by_predictor, strict=True)}


#: what each flag says about a recipe's views
_FLAG_VERBS = {"leaves_manifold": "leave the manifold", "changes_labels": "change labels"}


def _why_flagged(recipe_flags: dict[str, str]) -> str:
    """ "its views leave the manifold (fidelity ...) and they change labels (label consistency ...)", for the flags
    ``recipe_flags`` raises (not *adds nothing*)."""
    raised = [(k, v) for k, v in recipe_flags.items() if k in _FLAG_VERBS]
    return " and ".join(
        f"{'its views' if i == 0 else 'they'} {_FLAG_VERBS[k]} ({v})" for i, (k, v) in enumerate(raised)
    )


#: how an avoid entry resting on both flags starts (without training, and with the fine-tune proxy only)
_FLAG_LEADS = (
    "evidence against it (not confirmed by training)",
    "evidence against it (not confirmed by full training)",
)


def _flag_reason(lead: str, recipe_flags: dict[str, str], encoder: str | None) -> str:
    """The reason of a recipe avoided on both flags alone: ``lead`` (one of ``_FLAG_LEADS``), why, and the flags'
    evidence in the predictor study."""
    return f"{lead}: {_why_flagged(recipe_flags)}; {_evidence('both', encoder)}"


def _avoid_lines(avoid: list[dict], recipe_flags: dict, encoder: str | None) -> list[str]:
    """The summary's "Avoid ..." lines: one per entry, except that recipes avoided on the flags alone share one
    line (the study's evidence said once, not once per recipe), at the place of the first of them."""
    lines: list[str] = []
    groups: dict[str, list[str]] = {}  # lead -> recipes; the lead holds the group's place in ``lines``
    for a in avoid:
        r = a["recipe"]
        lead = next(
            (x for x in _FLAG_LEADS if a["reason"] == _flag_reason(x, recipe_flags.get(r, {}), encoder)), None
        )
        if lead is None:
            lines.append(f"Avoid {r}: {a['reason']}.")
        elif lead in groups:
            groups[lead].append(r)
        else:
            groups[lead] = [r]
            lines.append(lead)
    out = []
    for line in lines:
        members = groups.get(line)
        if members is None:
            out.append(line)
        elif len(members) == 1:
            out.append(f"Avoid {members[0]}: {_flag_reason(line, recipe_flags[members[0]], encoder)}.")
        else:
            why = _compact_why([recipe_flags[r] for r in members]) or "; ".join(
                f"{r}: {_why_flagged(recipe_flags[r])}" for r in members
            )
            lead = line.replace("against it", "against them")
            out.append(f"Avoid {_and(members)}: {lead}: {why}; {_evidence('both', encoder)}.")
    return out


def display_order(v: dict[str, Any], recipes) -> list[str]:
    """The order tables show ``recipes`` in: ``none`` (the baseline) first, then best to worst by the ranking the
    verdict went by (``v["ranked_by"]``: the measured gain, the proxy or a predictor), then any it did not rank, in
    the audit's order."""
    recipes = list(recipes)
    ranked = (v.get("ranking") or {}).get(v.get("ranked_by") or "") or []
    head = ["none"] if "none" in recipes else []
    body = [r for r in ranked if r in recipes and r != "none"]
    return head + body + [r for r in recipes if r not in head and r not in body]


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


_FLAG_VALUE = re.compile(r"^(fidelity|label consistency) (\S+) against (\S+) for held-out images$")


def _compact_why(flags: list[dict[str, str]]) -> str | None:
    """Several recipes' flags in one clause ("their views leave the manifold and change labels (fidelity 0.78 and
    0.48 against 0.91 for held-out images; label consistency ...)"), when they raise the same flags against the
    same held-out values; None otherwise (the caller then lists each recipe's own reasons)."""
    kinds = [k for k in _FLAG_VERBS if k in flags[0]]
    if not kinds or any([k for k in _FLAG_VERBS if k in f] != kinds for f in flags):
        return None
    parts = []
    for kind in kinds:
        matches = [_FLAG_VALUE.match(f[kind]) for f in flags]
        if not all(matches) or len({m.group(3) for m in matches}) != 1:
            return None
        what, reference = matches[0].group(1), matches[0].group(3)
        values = _and([m.group(2) for m in matches])
        parts.append(f"{what} {values} against {reference}" + (" for held-out images" if not parts else ""))
    said = " and ".join(
        f"{'their views' if i == 0 else 'they'} {_FLAG_VERBS[k]}" for i, k in enumerate(kinds)
    )
    return f"{said} ({'; '.join(parts)})"


def _raised(recipe_flags: dict[str, str]) -> set[str]:
    return set(recipe_flags) - {"adds_nothing"}


def flag_evidence(level: str, encoder: str = "reference") -> tuple[int, int]:
    """(flagged variants that lost accuracy when trained, flagged variants) in the predictor study, for any flag
    (``level="any"``) or both; measured with ``encoder`` (the default encoder when the study did not use it)."""
    from densify.audit._reliability import study

    flags = study()["flags"]
    c = (flags.get(encoder) or flags["reference"])[level]
    return c["flagged_lost"], c["flagged"]


def _evidence(level: str, encoder: str | None = None) -> str:
    """The flags' measured precision in the predictor study, with ``encoder`` when the study measured it (else
    with ``reference``), naming the encoder it was measured with."""
    from densify.audit._reliability import study

    flags = study()["flags"]
    measured = encoder if encoder in flags else "reference"
    lost, flagged = flag_evidence(level, measured)
    c = flags[measured][level]
    which = "flagged both ways" if level == "both" else "flagged"
    return (
        f"in the predictor study, {lost} of {flagged} variants {which} lost accuracy when trained, "
        f"{c['flagged_harmed']} of them beyond seed noise ({len(study()['conditions'])} conditions, encoder "
        f"{measured})"
    )


def _describe(m: dict[str, dict]) -> str:
    """A recipe's densification, fidelity and label consistency, as a phrase."""
    parts = []
    for key, fmt in (("densification", ".3f"), ("fidelity", ".2f"), ("label_consistency", ".2f")):
        if m.get(key) and m[key].get("value") is not None:
            parts.append(f"{LABELS[key]} {m[key]['value']:{fmt}}")
    return ", ".join(parts)


def _interval(g: dict) -> str:
    lo = "-inf" if g.get("low") is None else _points(g["low"])
    hi = "+inf" if g.get("high") is None else _points(g["high"])
    return f"{_points(g['mean'])} points [{lo}, {hi}]"


def _warnings(recipes, trained, n_heldout, leakage=None, shift=None) -> tuple[list[str], set[str]]:
    """(warnings, their kinds): conditions under which the numbers cannot decide, stated before any advice."""
    out, kinds = [], set()
    if leakage and leakage.get("heldout_in_train"):
        kinds.add("leakage")
        differs = leakage.get("label_differs") or 0
        n = leakage["heldout_in_train"]
        out.append(
            f"{n:,} held-out image{'s' if n != 1 else ''} ({100 * leakage['share']:.1f}%) also occur"
            f"{'s' if n == 1 else ''} in the training set ({leakage['exact']} exact, {leakage['near']} near copies"
            + (f"; {differs} under another label" if differs else "")
            + "): every held-out number below is inflated by them. Remove them from one split "
            "(their files are in data-issues.csv, issue 'leak')."
        )
    if n_heldout is not None and n_heldout < MIN_HELDOUT:
        kinds.add("few_heldout")
        out.append(
            f"Only {n_heldout:,} held-out images: one image is {100 / n_heldout:.2f} accuracy points, so gains of a "
            f"few points are within chance; the studies behind densify's defaults use at least {MIN_HELDOUT:,} "
            "(--heldout-size, or a larger held-out split)."
        )
    if trained:
        accs = {r: (t.get("accuracy") or {}).get("mean") for r, t in trained.items()}
        accs = {r: a for r, a in accs.items() if a is not None}
        none = accs.get("none")
        if accs and ((none is not None and none >= CEILING) or min(accs.values()) >= CEILING):
            kinds.add("ceiling")
            shown = none if none is not None else min(accs.values())
            out.append(
                f"Held-out accuracy is at the ceiling ({'none' if none is not None else 'every recipe'} scores "
                f"{100 * shown:.2f}%): there is no room for a gain to show. Audit fewer training images "
                "(--train-size) or a harder held-out set."
            )
    if shift and shift.get("shifted"):
        kinds.add("shift")
        out.append(
            f"Held-out images lie where training images do not: {100 * shift['heldout_share']:.0f}% of them fall "
            f"inside the k-NN balls of half the training images, against {100 * shift['train_share']:.0f}% of the "
            f"other half, in grayscale thumbnails (a deficit of {100 * shift['deficit']:.0f} points, 95% interval "
            f"{100 * shift['low']:.0f} to {100 * shift['high']:.0f}). Fidelity measures views against the training "
            "images, so recipes whose views reach the held-out images score low on it: "
            + (
                "the training-free rankings below can disagree with training here; the measured gains decide."
                if trained
                else "rankings without training can mislead here (the predictor study's shifted condition), and "
                "training (or --proxy) decides."
            )
        )
    clean = [(recipes[r]["metrics"].get("coverage_clean") or {}).get("value") for r in recipes]
    clean = [c for c in clean if c is not None]
    if clean and max(clean) >= SATURATED:
        kinds.add("saturated")
        out.append(
            f"Held-out coverage is saturated (the clean training set already covers {100 * max(clean):.1f}% of "
            "held-out points), so coverage gains cannot separate recipes; densification still can."
        )
    return out, kinds


def _degenerate_views(recipes, names) -> dict[str, str]:
    from densify.coverage._health import describe, is_degenerate

    return {r: describe(recipes[r]["views"]) for r in names if is_degenerate(recipes[r].get("views"))}


def _advice(
    recipes,
    trained,
    values,
    recipe_flags,
    default_predictor,
    n_heldout,
    encoder,
    leakage=None,
    proxied=None,
    shift=None,
) -> dict[str, Any]:
    """warnings, use / avoid lists, the head-to-head, and the plain-language summary."""
    names = [r for r in recipes if r != "none"]
    warnings, kinds = _warnings(recipes, trained, n_heldout, leakage, shift)
    degenerate = _degenerate_views(recipes, names)
    avoid = [
        {"recipe": r, "reason": f"{why}; such views are not images of your data"}
        for r, why in degenerate.items()
    ]
    if trained is not None:
        use, more_avoid, summary, h2h = _trained_advice(
            names, recipes, trained, recipe_flags, degenerate, kinds, n_heldout
        )
        ranked_by = "measured_gain"
    elif proxied is not None:
        use, more_avoid, summary, ranked_by = _proxy_advice(
            names, recipes, values, proxied, recipe_flags, default_predictor, degenerate, encoder
        )
        h2h = None
    else:
        use, more_avoid, summary, ranked_by = _untrained_advice(
            names, recipes, values, recipe_flags, default_predictor, degenerate, encoder
        )
        h2h = None
        if ranked_by is not None and encoder is not None:
            from densify.audit._reliability import reliability_sentence

            summary.append(reliability_sentence(ranked_by, encoder))
    avoid += more_avoid
    summary += _avoid_lines(avoid, recipe_flags, encoder)
    idle = [r for r in names if "adds_nothing" in recipe_flags[r]]
    if idle:
        summary.append("Add nothing near held-out data (densification 0): " + ", ".join(idle) + ".")
    chosen = {u["recipe"] for u in use}
    assert not chosen & {a["recipe"] for a in avoid}, "a recipe is never both recommended and avoided"
    return {
        "warnings": warnings,
        "use": use,
        "avoid": avoid,
        "ranked_by": ranked_by,
        "head_to_head": h2h,
        "summary": summary,
    }


def head_to_head(trained: dict[str, dict], best: str, other: str) -> dict[str, Any] | None:
    """``best`` minus ``other`` in held-out accuracy, paired by seed: {best, other, mean, low, high, seeds}, or None
    with fewer than 2 shared seeds."""
    from densify.train._stats import mean_t_ci

    a = {r["seed"]: r["heldout_accuracy"] for r in trained[best].get("runs", [])}
    b = {r["seed"]: r["heldout_accuracy"] for r in trained[other].get("runs", [])}
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    mean, low, high = mean_t_ci([a[s] - b[s] for s in seeds], (-1.0, 1.0))
    return {"best": best, "other": other, "mean": mean, "low": low, "high": high, "seeds": len(seeds)}


def _trained_advice(names, recipes, trained, recipe_flags, degenerate, kinds, n_heldout):
    """With training: use the recipe with the largest gain whose interval is above 0 (never one with degenerate
    views); say whether it beats the runner-up; avoid those whose gain is below 0."""
    use, avoid, summary = [], [], []
    gains = {
        r: trained[r]["gain_over_none"] for r in names if r in trained and trained[r].get("gain_over_none")
    }
    eligible = [r for r in gains if r not in degenerate]
    # one held-out image either way: paired differences of equal counts have zero variance but are not certain
    step = 1 / n_heldout if n_heldout else 0.0
    helps = [r for r in eligible if gains[r]["low"] is not None and gains[r]["low"] - step > 0]
    hurts = [
        r
        for r in gains
        if r not in degenerate and gains[r]["high"] is not None and gains[r]["high"] + step < 0
    ]
    order = sorted(eligible, key=lambda r: -gains[r]["mean"])
    h2h = None
    if helps:
        top = max(helps, key=lambda r: gains[r]["mean"])
        reason = f"{_interval(gains[top])} held-out accuracy over none; {_describe(recipes[top]['metrics'])}"
        entry = {"recipe": top, "reason": reason}
        runner = next((r for r in order if r != top), None)
        h2h = head_to_head(trained, top, runner) if runner else None
        summary.append(f"Use {top}: {reason}.")
        if h2h is not None:
            diff = f"{top} - {runner} = {_interval(h2h)} over {h2h['seeds']} paired seeds"
            if h2h["low"] is not None and h2h["low"] - step > 0:
                summary.append(f"{top} beats the runner-up, {runner}, beyond seed noise: {diff}.")
            else:
                entry["tied_with"] = runner
                summary.append(
                    f"{top} and the runner-up, {runner}, are tied within seed noise ({diff}); either will do, "
                    "or train more seeds to separate them."
                )
        use.append(entry)
        others = [r for r in order if r in helps and r != top]
        if others:
            summary.append(
                "Also beat none beyond seed noise: "
                + ", ".join(f"{r} ({_points(gains[r]['mean'])})" for r in others)
                + "."
            )
    elif order:
        best = order[0]
        g = gains[best]
        ties = [r for r in order if gains[r]["mean"] == g["mean"]]
        lead = f"the best was {best}" if len(ties) == 1 else f"{', '.join(ties)} tied for best"
        sentence = f"No recipe beat none beyond seed noise; {lead} at {_interval(g)}."
        if kinds & {"few_heldout", "ceiling"}:
            sentence += " With the warning above, this audit cannot separate the recipes; fix that first."
        else:
            sentence += " Train more seeds (--seeds) or longer (--steps) before choosing."
        summary.append(sentence)
    for r in sorted(hurts, key=lambda r: gains[r]["mean"]):
        reasons = [_interval(gains[r])]
        if _raised(recipe_flags[r]):
            reasons.append(_why_flagged(recipe_flags[r]))
        avoid.append({"recipe": r, "reason": "; ".join(reasons)})
    spared = [r for r in names if _raised(recipe_flags[r]) and r not in hurts and r not in degenerate]
    if spared:
        summary.append(
            "Flagged by coverage but not measurably hurt by training: "
            + "; ".join(f"{r}: {_why_flagged(recipe_flags[r])}" for r in spared)
            + ". The encoder may not know these variations; trust the trained numbers."
        )
    return use, avoid, summary, h2h


def _separates(pv: dict[str, float | None], names: list[str]) -> bool:
    """Whether a predictor's values separate the recipes ``names`` and ``none`` (no value missing, at least two
    distinct values)."""
    vals = [pv[r] for r in [*names, "none"] if r in pv]
    if not names or any(v is None for v in vals):
        return False
    return len({round(v, 12) for v in vals}) >= 2


def predictor_interval(metrics: dict[str, dict], name: str) -> tuple[float, float] | None:
    """The 95% interval of a predictor: its own for a single metric; for a product of non-negative factors, the
    product of their bounds (conservative); None when unknown."""
    factors = COMBINED.get(name, (name,))
    low = high = 1.0
    for f in factors:
        m = metrics.get(f) or {}
        if m.get("low") is None or m.get("high") is None:
            return None
        if len(factors) > 1 and m["low"] < 0:
            return None
        low, high = low * m["low"], high * m["high"]
    return low, high


def _untrained_advice(names, recipes, values, recipe_flags, default_predictor, degenerate, encoder=None):
    """Without training: rank by the default predictor (or the fallback); flags are evidence, both flags avoid."""
    use, avoid, summary = [], [], []
    candidates = [r for r in names if r not in degenerate]
    ranked_by = None
    for p in dict.fromkeys((default_predictor, FALLBACK_PREDICTOR)):
        if _separates(values[p], candidates):
            ranked_by = p
            break
    if ranked_by is None:
        summary.append(
            f"Neither {LABELS[default_predictor]} nor {LABELS[FALLBACK_PREDICTOR]} separates these recipes (every "
            "recipe scores the same), so no recipe is recommended without training; train (--train) to choose."
        )
    else:
        if ranked_by != default_predictor:
            summary.append(
                f"The default predictor, {LABELS[default_predictor]}, is the same for every recipe, so recipes are "
                f"ranked by {LABELS[ranked_by]} instead (the fallback rule)."
            )
        pv = values[ranked_by]
        ranked = sorted(candidates, key=lambda r: -pv[r])
        doubly = [r for r in ranked if len(_raised(recipe_flags[r])) == 2]
        pickable = [r for r in ranked if r not in doubly]
        base = pv.get("none")
        if pickable and base is not None and round(pv[pickable[0]], 12) <= round(base, 12):
            summary.append(
                f"No recipe scores above none on {LABELS[ranked_by]} ({base:.4f}), so none is recommended without "
                "training."
            )
        elif pickable:
            top = pickable[0]
            reason = f"highest {LABELS[ranked_by]} ({pv[top]:.4f}); {_describe(recipes[top]['metrics'])}"
            entry = {"recipe": top, "reason": reason}
            sentence = f"Use {top} (not confirmed by training): {reason}."
            runner = next((r for r in pickable if r != top), None)
            if runner is not None:
                a = predictor_interval(recipes[top]["metrics"], ranked_by)
                b = predictor_interval(recipes[runner]["metrics"], ranked_by)
                if round(pv[top], 12) == round(pv[runner], 12):
                    entry["tied_with"] = runner
                    sentence = (
                        f"{top} and {runner} tie on {LABELS[ranked_by]} ({pv[top]:.4f}); without training, either "
                        "(not confirmed by training)."
                    )
                elif a is not None and b is not None and a[0] <= b[1]:
                    entry["tied_with"] = runner
                    sentence += (
                        f" Its lead over {runner} ({pv[runner]:.4f}) is within their 95% intervals "
                        f"([{a[0]:.4f}, {a[1]:.4f}] and [{b[0]:.4f}, {b[1]:.4f}]): an uncertain pick."
                    )
            if _raised(recipe_flags[top]):
                sentence += f" Caution: {_why_flagged(recipe_flags[top])}; {_evidence('any', encoder)}."
            other = FALLBACK_PREDICTOR if ranked_by != FALLBACK_PREDICTOR else None
            rival = None
            if other and _separates(values[other], pickable):
                rival = max(pickable, key=lambda r: values[other][r])
                if rival != top:
                    sentence += (
                        f" {LABELS[other].capitalize()} would pick {rival} instead: the predictors disagree."
                    )
            contest = [r for r in (top, entry.get("tied_with"), rival) if r and r != "none"]
            if len(set(contest)) > 1:
                sentence += (
                    " Training decides between them: densify evaluate --recipes "
                    + ",".join(dict.fromkeys(contest))
                    + "."
                )
            summary.append(sentence)
            use.append(entry)
        for r in doubly:
            avoid.append(
                {
                    "recipe": r,
                    "reason": _flag_reason(_FLAG_LEADS[0], recipe_flags[r], encoder),
                }
            )
        summary += _cautions(ranked, recipe_flags, {u["recipe"] for u in use}, encoder, "training")
    return use, avoid, summary, ranked_by


def _cautions(ranked, recipe_flags, chosen: set, encoder, confirm: str) -> list[str]:
    """The sentence naming the recipes raised by one flag only (not the recommended one), with the flags' evidence
    in the predictor study; none when there are none."""
    raised = [r for r in ranked if len(_raised(recipe_flags[r])) == 1 and r not in chosen]
    if not raised:
        return []
    by_flag: dict[str, list[str]] = {}  # recipes raised by the same flag share a clause, in ranked order
    for r in raised:
        by_flag.setdefault(next(iter(_raised(recipe_flags[r]))), []).append(r)
    cautions = []
    for members in by_flag.values():
        compact = _compact_why([recipe_flags[r] for r in members]) if len(members) > 1 else None
        if compact:
            cautions.append(f"{_and(members)}: {compact}")
        else:
            cautions += [f"{r}: {_why_flagged(recipe_flags[r])}" for r in members]
    return [f"Check with {confirm} before using: {'; '.join(cautions)}; {_evidence('any', encoder)}."]


def _proxy_advice(names, recipes, values, proxied, recipe_flags, default_predictor, degenerate, encoder=None):
    """With the fine-tune proxy: rank by the mean of the proxy's and the default predictor's ranks (what the
    predictor study measured); both flags still avoid; a recipe whose fine-tunes lost accuracy with every seed is
    named, and disagreement between the two rankings at the top is said, with the training that would decide."""
    use, avoid, summary = [], [], []
    gains = {r: _proxy_gain(proxied, r) for r in ["none", *names]}
    pv = values[default_predictor]
    scores = _proxy_scores(gains, pv, ["none", *names])
    label = f"the fine-tune proxy and {LABELS[default_predictor]} together"
    candidates = [r for r in names if r not in degenerate and r in scores]
    doubly = [r for r in candidates if len(_raised(recipe_flags[r])) == 2]
    pickable = sorted((r for r in candidates if r not in doubly), key=lambda r: -scores[r])
    if not scores:
        summary.append("The fine-tune proxy gave no gains to rank; train (--train) to choose.")
        return use, avoid, summary, None
    if not pickable or scores[pickable[0]] <= scores.get("none", -math.inf):
        summary.append(
            f"No recipe ranks above none by {label}, so none is recommended (a fine-tune proxy, not full training)."
        )
    else:
        top = pickable[0]
        g = gains[top]
        reason = (
            f"ranks first by {label}: proxy gain {_points(g)} points over none ({_proxy_seeds(proxied, top)}), "
            f"{LABELS[default_predictor]} {pv[top]:.4f}"
        )
        entry = {"recipe": top, "reason": reason}
        sentence = f"Use {top} (by a fine-tune proxy, not confirmed by full training): {reason}."
        runner = next((r for r in pickable if r != top), None)
        contest = [top]
        if runner is not None and scores[runner] == scores[top]:
            entry["tied_with"] = runner
            sentence += f" {runner} ranks the same: an uncertain pick."
            contest.append(runner)
        h2h = head_to_head(proxied, top, runner) if runner and top in proxied and runner in proxied else None
        if h2h is not None:
            sentence += (
                f" Its fine-tunes against the runner-up's: {top} - {runner} = {_interval(h2h)} over {h2h['seeds']} "
                "paired seeds."
            )
        by_gain = max(pickable, key=lambda r: gains[r])
        by_predictor = max(pickable, key=lambda r: pv[r])
        if len({top, by_gain, by_predictor}) > 1:
            sentence += (
                f" The two disagree: the proxy alone would pick {by_gain}, {LABELS[default_predictor]} alone "
                f"{by_predictor}."
            )
            lead = (
                head_to_head(proxied, by_gain, top)
                if by_gain not in (top, runner) and by_gain in proxied and top in proxied
                else None
            )
            if (
                lead is not None
            ):  # how far apart the fine-tunes put them: the size the rank mean does not show
                entry["proxy_pick"] = lead
                sentence += (
                    f" The proxy's pick against this one: {by_gain} - {top} = {_interval(lead)} over "
                    f"{lead['seeds']} paired seeds."
                )
            contest += [by_gain, by_predictor]
        contest = list(dict.fromkeys(c for c in contest if c != "none"))
        if len(contest) > 1:
            sentence += (
                " Full training decides between them: densify evaluate --recipes " + ",".join(contest) + "."
            )
        summary.append(sentence)
        use.append(entry)
    chosen = {u["recipe"] for u in use}
    for r in doubly:
        avoid.append(
            {
                "recipe": r,
                "reason": _flag_reason(_FLAG_LEADS[1], recipe_flags[r], encoder),
            }
        )
    summary += _cautions(pickable, recipe_flags, chosen, encoder, "full training")
    lost = [
        r
        for r in names
        if r not in chosen and r not in doubly and (runs := _proxy_run_gains(proxied, r)) and max(runs) < 0
    ]
    if lost:
        summary.append(
            "Lost accuracy in every fine-tune of the proxy (each seed, paired against none): "
            + ", ".join(f"{r} ({_points(gains[r])} points)" for r in lost)
            + f"; check with full training before using{_proxy_harm_evidence()}."
        )
    summary.append(_proxy_reliability(encoder, default_predictor))
    return use, avoid, summary, PROXY_RANKING


def _proxy_harm_evidence() -> str:
    """How often such a loss held under full training in the predictor study (empty when not measured)."""
    from densify.audit._reliability import study

    harm = (study().get("proxy") or {}).get("harm")
    if not harm:
        return ""
    return (
        f" (in the predictor study, {harm['named_lost']} of {harm['named']} variants whose fine-tunes all lost "
        f"accuracy also lost it when fully trained, {harm['named_harmed']} of them beyond seed noise)"
    )


def _proxy_seeds(proxied: dict[str, dict], recipe: str) -> str:
    n = len((proxied.get(recipe) or {}).get("runs", []))
    return f"{n} seed{'s' if n != 1 else ''}"


def _proxy_run_gains(proxied: dict[str, dict], recipe: str) -> list[float]:
    """Per seed, the recipe's fine-tuned held-out accuracy minus ``none``'s (paired by seed)."""
    base = {r["seed"]: r["heldout_accuracy"] for r in (proxied.get("none") or {}).get("runs", [])}
    return [
        r["heldout_accuracy"] - base[r["seed"]]
        for r in (proxied.get(recipe) or {}).get("runs", [])
        if r["seed"] in base
    ]


def _proxy_reliability(encoder: str | None, predictor: str) -> str:
    """How far the proxy's ranking held in the predictor study (packaged with densify)."""
    from densify.audit._reliability import study

    p = study().get("proxy")
    if not p:
        return "How far to trust this ranking: the fine-tune proxy was not measured in the predictor study."
    chosen_predictor, _, chosen_encoder = study()["chosen"].partition(" @ ")
    per = ", ".join(f"{d} {rho:+.2f}" for d, rho in p["per_dataset"].items())
    sentence = (
        f"How far to trust this ranking: in the predictor study, the fine-tune proxy ({len(p['seeds'])} seeds) ranked "
        f"with {LABELS[chosen_predictor]} (encoder {chosen_encoder}) agreed with full training at Spearman rho "
        f"{per} (worst {p['worst']:+.2f}, mean {p['mean']:+.2f}), at {p['step_ratio']:.2f} of its optimiser steps; "
        "moderate evidence: confirm with full training (--train) before relying on it."
    )
    if encoder is not None and (encoder != chosen_encoder or predictor != chosen_predictor):
        sentence += (
            f" This audit ranked with {LABELS[predictor]} and encoder {encoder}; the study measured the proxy with "
            f"{LABELS[chosen_predictor]} and encoder {chosen_encoder} only."
        )
    return sentence


def agreement_sentence(agreement: dict[str, dict], predictor: str) -> str | None:
    """One sentence on how far ``predictor`` agreed with training, or None when it was not measured."""
    a = agreement.get(predictor)
    if not a or a.get("rho") is None:
        return None
    lo, hi = a["ci"]
    ci = (
        f", 95% bootstrap CI [{lo:+.2f}, {hi:+.2f}]"
        if lo is not None
        else f"; too few recipes for a bootstrap interval, which needs {MIN_INTERVAL_RECIPES}"
    )
    strength = "agreed with" if a["p_value"] < 0.05 and a["rho"] > 0 else "did not clearly agree with"
    return (
        f"The training-free {LABELS[predictor]} {strength} training on this data: Spearman rho "
        f"{a['rho']:+.2f} (permutation p = {a['p_value']:.3f}{ci}) over {a['n']} recipes."
    )

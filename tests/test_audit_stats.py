"""Rank statistics of the verdict against scipy and closed-form cases, and the verdict's rules."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from densify.audit import bootstrap_rho, flags, permutation_p, predictor_value, ranks, spearman, verdict

scipy_stats = pytest.importorskip("scipy.stats")


@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=3, max_size=12))
@settings(max_examples=200, deadline=None)
def test_spearman_matches_scipy_with_ties(pairs):
    x, y = (np.array(v, dtype=float) for v in zip(*pairs, strict=True))
    ours = spearman(x, y)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert math.isnan(ours)
        return
    assert ours == pytest.approx(scipy_stats.spearmanr(x, y).statistic, abs=1e-12)


def test_ranks_average_ties():
    assert ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]


def test_permutation_p_closed_forms():
    # n = 3, perfect order: 2 of the 6 orders reach |rho| = 1
    assert permutation_p([1, 2, 3], [1, 2, 3]) == pytest.approx(2 / 6)
    # n = 5, perfect: 2 of 120
    assert permutation_p([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(2 / 120)
    # brute force on a tied example
    x, y = [1, 2, 2, 4, 5, 7], [3, 1, 2, 2, 6, 5]
    observed = abs(spearman(x, y))
    perms = list(itertools.permutations(y))
    expected = np.mean([abs(spearman(x, p)) >= observed - 1e-12 for p in perms])
    assert permutation_p(x, y) == pytest.approx(expected)


def test_permutation_p_monte_carlo_matches_scipy_for_larger_n():
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    y = x + rng.normal(scale=1.5, size=20)
    ours = permutation_p(x, y, n_perm=20_000, seed=1)
    exact = scipy_stats.spearmanr(x, y).pvalue  # t approximation, close for n = 20
    assert ours == pytest.approx(exact, abs=0.03)
    assert permutation_p(x, x, n_perm=1000) == pytest.approx(1 / 1001)  # never 0


def test_bootstrap_interval_brackets_rho_and_is_seeded():
    rng = np.random.default_rng(3)
    x = rng.normal(size=15)
    y = x + rng.normal(scale=0.5, size=15)
    lo, hi = bootstrap_rho(x, y, seed=2)
    assert lo < spearman(x, y) < hi <= 1
    assert bootstrap_rho(x, y, seed=2) == (lo, hi)


def test_no_bootstrap_interval_from_too_few_recipes():
    """With three recipes every resample has rho = +1 or -1: an audit of two recipes and none printed
    "95% bootstrap CI [-1.00, -1.00]". Below MIN_INTERVAL_RECIPES no interval, and the sentence says why."""
    from densify.audit._stats import MIN_INTERVAL_RECIPES
    from densify.audit._verdict import agreement_sentence

    x, y = [0.1, 0.2, 0.3], [3.0, 2.0, 1.0]
    assert all(math.isnan(v) for v in bootstrap_rho(x, y))
    rng = np.random.default_rng(0)
    lo, hi = bootstrap_rho(rng.normal(size=MIN_INTERVAL_RECIPES), rng.normal(size=MIN_INTERVAL_RECIPES))
    assert -1 <= lo < hi <= 1
    agreement = {"coverage_gain": {"rho": -1.0, "p_value": 0.333, "ci": [None, None], "n": 3}}
    sentence = agreement_sentence(agreement, "coverage_gain")
    assert (
        "CI" not in sentence
        and f"too few recipes for a bootstrap interval, which needs {MIN_INTERVAL_RECIPES}" in sentence
    )


def _m(value, low=None, high=None):
    return {"value": value, "low": value if low is None else low, "high": value if high is None else high}


REFERENCE = {"fidelity": _m(0.8, 0.78, 0.82), "label_consistency": _m(0.9, 0.88, 0.92)}


def _recipe(dens, fid, lc, knn=0.0, cov=0.0, div=1.0, dens_low=None):
    return {
        "metrics": {
            "densification": _m(dens, dens if dens_low is None else dens_low, dens + 0.01),
            "fidelity": _m(fid, fid - 0.02, fid + 0.02),
            "label_consistency": _m(lc, lc - 0.02, lc + 0.02),
            "knn_accuracy_gain": _m(knn),
            "coverage_gain": _m(cov),
            "label_coverage_gain": _m(cov),
            "diversity": _m(div),
        }
    }


def test_flags_compare_views_with_heldout_images():
    assert flags(_recipe(0.1, 0.9, 0.95)["metrics"], REFERENCE) == {}
    off = flags(_recipe(0.1, 0.4, 0.95)["metrics"], REFERENCE)
    assert (
        set(off) == {"leaves_manifold"}
        and "0.40" in off["leaves_manifold"]
        and "0.80" in off["leaves_manifold"]
    )
    assert set(flags(_recipe(0.1, 0.9, 0.5)["metrics"], REFERENCE)) == {"changes_labels"}
    assert set(flags(_recipe(0.0, 1.0, 1.0, dens_low=0.0)["metrics"], REFERENCE)) == {"adds_nothing"}
    # within the interval of the reference: not flagged
    assert flags(_recipe(0.1, 0.79, 0.95)["metrics"], REFERENCE) == {}


def test_predictor_value_of_combinations():
    m = _recipe(0.2, 0.5, 0.9, cov=0.1, div=2.0)["metrics"]
    assert predictor_value(m, "fidelity_x_coverage_gain") == pytest.approx(0.05)
    assert predictor_value(m, "consistency_x_diversity") == pytest.approx(1.8)
    assert predictor_value({}, "densification") is None


def test_verdict_trained_uses_measured_gain_and_explains_avoid():
    recipes = {
        "none": _recipe(0.0, 1.0, 1.0, dens_low=0.0),
        "good": _recipe(0.2, 0.9, 0.95, knn=0.02),
        "meh": _recipe(0.1, 0.85, 0.95, knn=0.01),
        "bad": _recipe(0.15, 0.3, 0.5, knn=-0.03),
    }
    trained = {
        "none": {"gain_over_none": {"mean": 0.0, "low": 0.0, "high": 0.0}},
        "good": {"gain_over_none": {"mean": 0.02, "low": 0.01, "high": 0.03}},
        "meh": {"gain_over_none": {"mean": 0.003, "low": -0.01, "high": 0.016}},
        "bad": {"gain_over_none": {"mean": -0.05, "low": -0.07, "high": -0.03}},
    }
    v = verdict(recipes, REFERENCE, trained)
    assert v["use"][0]["recipe"] == "good" and "+2.00 points" in v["use"][0]["reason"]
    assert [a["recipe"] for a in v["avoid"]] == ["bad"]
    assert "fidelity 0.30" in v["avoid"][0]["reason"] and "label consistency 0.50" in v["avoid"][0]["reason"]
    assert v["ranking"]["measured_gain"] == ["good", "meh", "none", "bad"]
    a = v["agreement"]["knn_accuracy_gain"]
    assert a["rho"] == pytest.approx(1.0) and a["n"] == 4 and a["p_value"] == pytest.approx(2 / 24)
    assert any(s.startswith("Use good") for s in v["summary"])


def test_verdict_without_training_ranks_by_the_default_predictor_and_flags_cautions():
    recipes = {
        "none": _recipe(0.0, 1.0, 1.0, dens_low=0.0),
        "safe": _recipe(0.2, 0.9, 0.95),
        "doubtful": _recipe(0.25, 0.3, 0.95),  # leaves the manifold only
        "harmful": _recipe(0.1, 0.2, 0.4),  # both flags
    }
    v = verdict(recipes, REFERENCE, None, default_predictor="densification")
    assert not v["trained"] and v["agreement"] == {}
    assert v["use"][0]["recipe"] == "doubtful"  # the predictor decides; flags do not veto
    assert [a["recipe"] for a in v["avoid"]] == ["harmful"] and "evidence against it" in v["avoid"][0][
        "reason"
    ]
    assert any(
        s.startswith("Use doubtful") and "Caution: its views leave the manifold" in s for s in v["summary"]
    )
    assert v["ranking"]["densification"] == ["doubtful", "safe", "harmful", "none"]
    unsupervised = verdict(recipes, REFERENCE, None, default_predictor="densification", supervised=False)
    assert unsupervised["avoid"] == [] and unsupervised["flags"]["harmful"] == {}
    assert unsupervised["flags"]["none"] == {"adds_nothing": "densification 0.000"}


def test_verdict_warns_when_heldout_coverage_is_saturated():
    recipes = {"none": _recipe(0.0, 1.0, 1.0, dens_low=0.0), "flip": _recipe(0.1, 0.9, 0.95)}
    for r in recipes.values():
        r["metrics"]["coverage_clean"] = _m(0.995)
    v = verdict(recipes, REFERENCE, None)
    assert any("saturated" in s and "99.5%" in s for s in v["warnings"])
    recipes["flip"]["metrics"]["coverage_clean"] = recipes["none"]["metrics"]["coverage_clean"] = _m(0.6)
    assert not any("saturated" in s for s in verdict(recipes, REFERENCE, None)["warnings"])


def _proxied(gains: dict[str, tuple[float, ...]]) -> dict:
    """Proxy summaries: each recipe's per-seed fine-tuned accuracy (none at 0.80), paired by seed."""
    out = {}
    for name, per_seed in {"none": (0.0, 0.0), **gains}.items():
        runs = [{"seed": s, "heldout_accuracy": 0.80 + g} for s, g in enumerate(per_seed)]
        out[name] = {"gain_over_none": {"mean": sum(per_seed) / len(per_seed)}, "runs": runs}
    return out


def test_verdict_with_the_proxy_ranks_by_the_mean_of_both_ranks():
    from densify.audit._verdict import PROXY_RANKING

    recipes = {
        "none": _recipe(0.0, 1.0, 1.0, dens_low=0.0),
        "a": _recipe(0.30, 0.9, 0.95),  # the predictor's first, the proxy's last
        "b": _recipe(0.20, 0.9, 0.95),  # second by both: the best mean rank of the pickable ones
        "c": _recipe(0.04, 0.9, 0.95),  # the proxy's first (harmful aside), low by the predictor
        "harmful": _recipe(0.05, 0.2, 0.4),  # both flags: avoided whatever the proxy says
        "loser": _recipe(0.01, 0.9, 0.95),
        "doubtful": _recipe(0.005, 0.3, 0.95),  # leaves the manifold only: a caution
    }
    proxied = _proxied(
        {
            "a": (-0.02, -0.02),
            "b": (0.02, 0.02),
            "c": (0.03, 0.03),
            "harmful": (0.05, 0.05),
            "loser": (-0.01, -0.02),
            "doubtful": (0.0, 0.0),
        }
    )
    v = verdict(recipes, REFERENCE, None, default_predictor="densification", proxied=proxied)
    assert v["ranked_by"] == PROXY_RANKING and not v["trained"]
    assert v["use"][0]["recipe"] == "b" and "+2.00 points over none (2 seeds)" in v["use"][0]["reason"]
    assert [a["recipe"] for a in v["avoid"]] == ["harmful"]
    use = next(s for s in v["summary"] if s.startswith("Use b"))
    assert "the proxy alone would pick c" in use and "densification alone a" in use
    assert "densify evaluate --recipes b,c,a" in use
    assert "b - c = -1.00 points" in use and "over 2 paired seeds" in use  # the proxy's own paired difference
    assert any(
        s.startswith("Lost accuracy in every fine-tune")
        and "loser (-1.50 points)" in s
        and "predictor study" in s
        for s in v["summary"]
    )
    assert any(s.startswith("How far to trust this ranking") for s in v["summary"])
    assert any(
        s.startswith("Check with full training before using: doubtful: its views leave") for s in v["summary"]
    )
    assert v["proxy_gains"]["none"] == 0.0 and v["ranking"][PROXY_RANKING][:3] == ["harmful", "b", "c"]
    assert "The proxy's pick against" not in use  # c is the runner-up: its difference is given once
    # the proxy's own pick far ahead of the rank mean's (the rank mean cannot show by how much): its difference
    spread = {
        "none": _recipe(0.0, 1.0, 1.0, dens_low=0.0),
        **{r: _recipe(d, 0.9, 0.95) for r, d in (("x", 0.30), ("y", 0.20), ("w", 0.10), ("z", 0.05))},
    }
    ahead = _proxied({"x": (0.02, 0.02), "y": (0.01, 0.01), "w": (0.0, 0.0), "z": (0.14, 0.16)})
    v = verdict(spread, REFERENCE, None, default_predictor="densification", proxied=ahead)
    use = next(s for s in v["summary"] if s.startswith("Use x"))
    assert (
        "the proxy alone would pick z" in use
        and "The proxy's pick against this one: z - x = +13.00 points" in use
    )
    assert v["use"][0]["proxy_pick"]["best"] == "z" and v["use"][0]["proxy_pick"]["mean"] == pytest.approx(
        0.13
    )
    # nothing above none by both rankings: none is recommended, nothing is both used and avoided
    flat = _proxied({r: (-0.01, -0.01) for r in recipes if r != "none"})
    worse = {**recipes, **{r: _recipe(0.0, 0.9, 0.95, dens_low=0.0) for r in ("a", "b", "c", "loser")}}
    v = verdict(worse, REFERENCE, None, default_predictor="densification", proxied=flat)
    assert v["use"] == [] and any(s.startswith("No recipe ranks above none") for s in v["summary"])

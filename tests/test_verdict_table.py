"""The verdict's logic as a table: (trained or not) x flags x interval overlap x degenerate views x warnings ->
what it recommends, what it avoids and how it says so (densify/audit/_verdict.py's docstring states the rules).

Each row is a small synthetic audit; the expected wording is checked by substrings, the picks exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from densify.audit._reliability import STUDY, reliability_sentence
from densify.audit._verdict import MIN_HELDOUT, flag_evidence, verdict
from densify.train._stats import mean_t_ci

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = {"fidelity": {"value": 0.8, "low": 0.78, "high": 0.82}, "label_consistency": {"value": 0.9, "low": 0.88, "high": 0.92}}  # fmt: skip
HEALTHY = {
    "n": 64,
    "constant": 0.0,
    "collapsed": 0.0,
    "saturated": 0.0,
    "out_of_range": 0.0,
    "degenerate": 0.0,
}
BROKEN = {**HEALTHY, "collapsed": 0.9, "degenerate": 0.9}


def _m(value, half=0.0):
    return {"value": value, "low": value - half, "high": value + half}


def recipe(dens=0.1, fid=0.9, lc=0.95, cov=0.1, half=0.01, views=HEALTHY, clean=0.6):
    """A recipe's coverage entry; ``half`` is the half-width of every interval. fid < 0.78 flags *leaves the
    manifold*, lc < 0.88 *changes labels* (against REFERENCE)."""
    return {
        "metrics": {
            "densification": _m(dens, half),
            "fidelity": _m(fid, 0.01),
            "label_consistency": _m(lc, 0.01),
            "coverage_gain": _m(cov, half),
            "coverage_clean": _m(clean),
            "knn_accuracy_gain": _m(0.0),
            "label_coverage_gain": _m(cov, half),
            "diversity": _m(1.0),
        },
        "views": views,
    }


NONE = recipe(dens=0.0, fid=1.0, lc=1.0, cov=0.0, half=0.0)


def trained(accuracy: dict[str, list[float]]) -> dict[str, dict]:
    """report.json's training recipes from per-seed held-out accuracies (``none`` must be among them)."""
    base = accuracy["none"]
    out = {}
    for r, accs in accuracy.items():
        m, lo, hi = mean_t_ci(accs, (0.0, 1.0))
        g = mean_t_ci([a - b for a, b in zip(accs, base, strict=True)], (-1.0, 1.0))
        out[r] = {
            "accuracy": {"mean": m, "low": lo, "high": hi},
            "gain_over_none": {"mean": g[0], "low": g[1], "high": g[2]},
            "runs": [{"seed": s, "heldout_accuracy": a} for s, a in enumerate(accs)],
        }
    return out


N = MIN_HELDOUT  # enough held-out images for no warning
TABLE = [
    # id, recipes, training, n_heldout, use, avoid, phrases expected (summary + warnings), phrases not expected
    ("untrained-clear-lead",
     {"none": NONE, "a": recipe(cov=0.3), "b": recipe(cov=0.1)}, None, N,
     ["a"], [], ["Use a (not confirmed by training)"], ["tie", "uncertain", "Caution", "disagree"]),
    ("untrained-exact-tie",
     {"none": NONE, "a": recipe(cov=0.2), "b": recipe(cov=0.2), "c": recipe(cov=0.1)}, None, N,
     ["a"], [], ["a and b tie on fidelity x coverage gain"], ["uncertain"]),
    ("untrained-nothing-above-none",
     {"none": NONE, "a": recipe(cov=-0.1, half=0.0), "b": recipe(cov=-0.2, half=0.0)}, None, N,
     [], [], ["No recipe scores above none on fidelity x coverage gain"], ["Use "]),
    ("untrained-overlapping-intervals",
     {"none": NONE, "a": recipe(cov=0.21, half=0.05), "b": recipe(cov=0.2, half=0.05)}, None, N,
     ["a"], [], ["Use a", "within their 95% intervals", "an uncertain pick",
                 "Training decides between them: densify evaluate --recipes a,b"], []),
    ("untrained-predictors-disagree",
     {"none": NONE, "a": recipe(cov=0.3, dens=0.1), "b": recipe(cov=0.1, dens=0.4), "c": recipe(cov=0.05, dens=0.05)},
     None, N,
     ["a"], [], ["Use a", "Label consistency x densification would pick b instead: the predictors disagree",
                 "Training decides between them: densify evaluate --recipes a,b"], []),
    ("untrained-default-saturated-falls-back",
     {"none": NONE, "a": recipe(dens=0.05, cov=0.0, clean=0.99), "b": recipe(dens=0.2, cov=0.0, clean=0.99)},
     None, N,
     ["b"], [], ["ranked by label consistency x densification instead", "Held-out coverage is saturated"], []),
    ("untrained-nothing-separates-abstains",
     {"none": NONE, "a": recipe(dens=0.0, cov=0.0), "b": recipe(dens=0.0, cov=0.0)}, None, N,
     [], [], ["no recipe is recommended without training"], ["Use "]),
    ("untrained-doubly-flagged-top-is-avoided-not-used",
     {"none": NONE, "bad": recipe(cov=0.5, fid=0.3, lc=0.5), "ok": recipe(cov=0.1)}, None, N,
     ["ok"], ["bad"], ["Avoid bad: evidence against it", "{} of {}".format(*flag_evidence("both"))],
     []),
    ("untrained-several-doubly-flagged-share-one-line",
     {"none": NONE, "ok": recipe(cov=0.4), "bad": recipe(cov=0.5, fid=0.3, lc=0.5),
      "worse": recipe(cov=0.3, fid=0.2, lc=0.4)}, None, N,
     ["ok"], ["bad", "worse"],
     ["Avoid bad and worse: evidence against them (not confirmed by training): their views leave the manifold and "
      "they change labels (fidelity 0.30 and 0.20 against 0.80 for held-out images; label consistency 0.50 and "
      "0.40 against 0.90); in the predictor study, {} of {}".format(*flag_evidence("both"))],
     ["Avoid bad:", "Avoid worse:"]),
    ("untrained-singly-flagged-share-a-clause-per-flag",
     {"none": NONE, "ok": recipe(cov=0.5), "a": recipe(cov=0.4, fid=0.3), "b": recipe(cov=0.3, fid=0.2),
      "c": recipe(cov=0.2, lc=0.5)}, None, N,
     ["ok"], [],
     ["Check with training before using: c: its views change labels (label consistency 0.50 against 0.90 for "
      "held-out images); a and b: their views leave the manifold (fidelity 0.30 and 0.20 against 0.80 for "
      "held-out images); in the predictor study"], []),
    ("untrained-singly-flagged-top-gets-a-caution",
     {"none": NONE, "odd": recipe(cov=0.5, fid=0.3), "ok": recipe(cov=0.1)}, None, N,
     ["odd"], [], ["Use odd", "Caution: its views leave the manifold", "variants flagged lost accuracy"], []),
    ("untrained-degenerate-views-never-used",
     {"none": NONE, "black": recipe(cov=0.9, views=BROKEN), "ok": recipe(cov=0.1)}, None, N,
     ["ok"], ["black"], ["Avoid black: 90% of its views are degenerate", "collapsed contrast"], []),
    ("untrained-few-heldout-warns",
     {"none": NONE, "a": recipe(cov=0.3), "b": recipe(cov=0.1)}, None, 36,
     ["a"], [], ["Only 36 held-out images", "2.78 accuracy points"], []),
    ("trained-winner-beats-runner-up",
     {"none": NONE, "a": recipe(), "b": recipe()},
     trained({"none": [0.80, 0.81, 0.79], "a": [0.85, 0.86, 0.84], "b": [0.82, 0.83, 0.81]}), N,
     ["a"], [], ["Use a: +5.00 points", "a beats the runner-up, b, beyond seed noise", "a - b = +3.00 points"],
     ["tied", "Train more"]),
    ("trained-winner-tied-with-runner-up",
     {"none": NONE, "a": recipe(), "b": recipe()},
     trained({"none": [0.80, 0.81, 0.79], "a": [0.85, 0.85, 0.84], "b": [0.84, 0.85, 0.84]}), N,
     ["a"], [], ["Use a", "a and the runner-up, b, are tied within seed noise"], ["beats the runner-up"]),
    ("trained-nothing-helps-asks-for-more-seeds",
     {"none": NONE, "a": recipe(), "b": recipe()},
     trained({"none": [0.80, 0.81, 0.79], "a": [0.81, 0.80, 0.80], "b": [0.79, 0.82, 0.78]}), N,
     [], [], ["No recipe beat none beyond seed noise; the best was a", "Train more seeds"], ["Use "]),
    ("trained-nothing-helps-with-few-heldout-warns-instead",
     {"none": NONE, "a": recipe(), "b": recipe()},
     trained({"none": [0.80, 0.81, 0.79], "a": [0.81, 0.80, 0.80], "b": [0.79, 0.82, 0.78]}), 100,
     [], [], ["Only 100 held-out images", "this audit cannot separate the recipes"], ["Train more seeds"]),
    ("trained-at-the-ceiling-warns",
     {"none": NONE, "a": recipe(), "b": recipe()},
     trained({"none": [1.0, 1.0, 1.0], "a": [1.0, 1.0, 1.0], "b": [1.0, 1.0, 1.0]}), N,
     [], [], ["at the ceiling (none scores 100.00%)", "a, b tied for best", "cannot separate"], ["Train more"]),
    ("trained-hurting-recipe-avoided-with-its-flags",
     {"none": NONE, "a": recipe(), "bad": recipe(fid=0.3, lc=0.5)},
     trained({"none": [0.80, 0.81, 0.79], "a": [0.85, 0.86, 0.84], "bad": [0.70, 0.72, 0.69]}), N,
     ["a"], ["bad"], ["Avoid bad: -9.67 points", "its views leave the manifold", "they change labels"], []),
    ("trained-flagged-but-helped-is-trusted-to-training",
     {"none": NONE, "odd": recipe(fid=0.3), "b": recipe()},
     trained({"none": [0.80, 0.81, 0.79], "odd": [0.85, 0.86, 0.84], "b": [0.80, 0.81, 0.80]}), N,
     ["odd"], [], ["Use odd", "Flagged by coverage but not measurably hurt by training: odd"], []),
    ("trained-degenerate-winner-never-used",
     {"none": NONE, "black": recipe(views=BROKEN), "b": recipe()},
     trained({"none": [0.80, 0.81, 0.79], "black": [0.90, 0.91, 0.89], "b": [0.85, 0.86, 0.84]}), N,
     ["b"], ["black"], ["Use b", "Avoid black: 90% of its views are degenerate"], []),
]  # fmt: skip


@pytest.mark.parametrize(
    "recipes, training, n_heldout, use, avoid, present, absent",
    [row[1:] for row in TABLE],
    ids=[r[0] for r in TABLE],
)
def test_verdict_table(recipes, training, n_heldout, use, avoid, present, absent):
    v = verdict(recipes, REFERENCE, training, n_heldout=n_heldout)
    text = " ".join(v["warnings"] + v["summary"])
    assert [u["recipe"] for u in v["use"]] == use
    assert [a["recipe"] for a in v["avoid"]] == avoid
    for phrase in present:
        assert phrase in text, phrase
    for phrase in absent:
        assert phrase not in text, phrase


def test_warnings_come_before_advice_and_head_to_head_is_paired_by_seed():
    t = trained({"none": [0.80, 0.70, 0.90], "a": [0.83, 0.73, 0.93], "b": [0.82, 0.72, 0.92]})
    v = verdict({"none": NONE, "a": recipe(), "b": recipe()}, REFERENCE, t, n_heldout=200)
    assert v["warnings"][0].startswith("Only 200 held-out images")
    h = v["head_to_head"]
    # seeds differ by 10 points from each other; pairing removes that: a - b is exactly +1 point on every seed
    assert (h["best"], h["other"], h["seeds"]) == ("a", "b", 3)
    assert (
        h["mean"] == pytest.approx(0.01)
        and h["low"] == pytest.approx(0.01)
        and h["high"] == pytest.approx(0.01)
    )
    assert v["ranked_by"] == "measured_gain"


def test_the_packaged_study_summary_is_the_predictor_studys_measurement():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks" / "predictors"))
    from study import packaged_summary

    analysis = json.loads((ROOT / "benchmarks" / "predictors" / "results" / "analysis.json").read_text())
    assert json.loads(STUDY.read_text()) == json.loads(json.dumps(packaged_summary(analysis)))
    measured = analysis["flags"]["reference"]["both"]["all"]
    assert flag_evidence("both") == (measured["flagged_lost"], measured["flagged"])


def test_without_training_the_verdict_states_the_measured_reliability():
    recipes = {"none": NONE, "a": recipe(cov=0.3), "b": recipe(cov=0.1)}
    v = verdict(recipes, REFERENCE, None, n_heldout=N, encoder="reference")
    assert reliability_sentence("fidelity_x_coverage_gain", "reference") in v["summary"]
    assert "Spearman rho fashion" in v["summary"][-1] and "worst" in v["summary"][-1]
    chosen_predictor, _, chosen_encoder = json.loads(STUDY.read_text())["chosen"].partition(" @ ")
    if chosen_predictor == "fidelity_x_coverage_gain" and chosen_encoder != "reference":
        assert f"The study's choice is this predictor with --encoder {chosen_encoder}" in v["summary"][-1]
    unknown = verdict(recipes, REFERENCE, None, n_heldout=N, encoder="torchvision:resnet18")
    assert "was not measured in the predictor study" in unknown["summary"][-1]


_value = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(_value, _value, _value, _value, st.booleans()), min_size=1, max_size=6),
    st.one_of(st.none(), st.lists(st.lists(_value, min_size=3, max_size=3), min_size=7, max_size=7)),
    st.integers(10, 5000),
)
def test_never_recommended_and_avoided_and_never_degenerate(rows, accs, n_heldout):
    recipes = {"none": NONE}
    for i, (dens, fid, lc, cov, broken) in enumerate(rows):
        recipes[f"r{i}"] = recipe(dens=dens, fid=fid, lc=lc, cov=cov, views=BROKEN if broken else HEALTHY)
    training = None
    if accs is not None:
        training = trained({r: accs[i] for i, r in enumerate(recipes)})
    v = verdict(recipes, REFERENCE, training, n_heldout=n_heldout)
    used = {u["recipe"] for u in v["use"]}
    assert not used & {a["recipe"] for a in v["avoid"]}
    assert not used & {f"r{i}" for i, row in enumerate(rows) if row[4]}
    assert all(isinstance(s, str) and s for s in v["summary"] + v["warnings"])


def test_the_studys_noise_ceiling_is_spearman_brown_of_the_seed_to_seed_rho():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks" / "predictors"))
    from study import seed_reliability

    # gains per seed over (none, a, b, c): seed 0 and 1 rank a < b < c, seed 2 ranks a < c < b; none (gain 0)
    # is below all of them in every seed, so the pairwise rhos over 4 variants are 1, 0.8 and 0.8
    gains = {"0": (0, 1, 2, 3), "1": (0, 1, 2, 3), "2": (0, 1, 3, 2)}
    accuracy = {
        v: {s: 0.5 + 0.01 * g[i] for s, g in gains.items()} for i, v in enumerate(("none", "a", "b", "c"))
    }
    r = seed_reliability(accuracy)
    single = (1 + 0.8 + 0.8) / 3
    assert r["seeds"] == 3 and r["single"] == pytest.approx(single)
    assert r["reliability"] == pytest.approx(3 * single / (1 + 2 * single))
    assert r["ceiling"] == pytest.approx(r["reliability"] ** 0.5)
    # seed 2 against the mean of seeds 0 and 1 (a < b < c): 0.8; seeds 0 and 1 against the mean of the others
    # (a < b = c, a tie): 0.9486832980505138 (Spearman of (0,1,2,3) with (0,1,2.5,2.5))
    assert r["one_seed"] == pytest.approx((2 * 0.9486832980505138 + 0.8) / 3)
    identical = {v: {s: 0.5 + 0.01 * i for s in "012"} for i, v in enumerate(("none", "a", "b"))}
    assert seed_reliability(identical)["ceiling"] == pytest.approx(1.0)
    assert seed_reliability({"a": {"0": 0.5}}) is None


def test_the_recipe_prior_is_the_mean_within_condition_rank_over_the_given_conditions():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks" / "predictors"))
    from study import recipe_prior

    # c1 ranks a < b < c (ranks 1, 2, 3); c2 ranks c < a = b (c 1, a and b tie at 2.5); c3 is not asked for
    gains = {"c1": {"a": 0.0, "b": 0.1, "c": 0.2}, "c2": {"a": 0.3, "b": 0.3, "c": -0.1, "d": 1.0},
             "c3": {"a": 9.0, "b": -9.0, "c": 0.0}}  # fmt: skip
    prior = recipe_prior(gains, ["c1", "c2"])
    assert prior == pytest.approx({"a": (1 + 2.5) / 2, "b": (2 + 2.5) / 2, "c": (3 + 1) / 2})  # d: not in c1
    assert recipe_prior(gains, ["c3"]) == pytest.approx({"a": 3.0, "b": 1.0, "c": 2.0})


def test_a_shifted_heldout_set_is_warned_about_only_when_shifted():
    recipes = {"none": NONE, "a": recipe(cov=0.3), "b": recipe(cov=0.1)}
    shifted = {"train_share": 0.93, "heldout_share": 0.41, "deficit": 0.52, "low": 0.49, "high": 0.55,
               "n_reference": 1000, "n_probe": 1000, "n_heldout": 1000, "k": 5, "floor": 0.1, "shifted": True}  # fmt: skip
    v = verdict(recipes, REFERENCE, None, n_heldout=N, shift=shifted)
    (warning,) = [w for w in v["warnings"] if "lie where training images do not" in w]
    assert (
        "41%" in warning and "93%" in warning and "deficit of 52 points" in warning and "--proxy" in warning
    )
    calm = verdict(recipes, REFERENCE, None, n_heldout=N, shift={**shifted, "shifted": False})
    assert not any("lie where training images do not" in w for w in calm["warnings"])
    assert verdict(recipes, REFERENCE, None, n_heldout=N)["warnings"] == calm["warnings"]
    # with training, the measured gains decide: the warning says so instead of sending the user to train
    measured = trained({"none": [0.8, 0.81, 0.8], "a": [0.82, 0.83, 0.82], "b": [0.8, 0.8, 0.81]})
    v = verdict(recipes, REFERENCE, measured, n_heldout=N, shift=shifted)
    (warning,) = [w for w in v["warnings"] if "lie where training images do not" in w]
    assert "the measured gains decide" in warning and "--proxy" not in warning

"""The shift-aware ranking rule of the predictor study (its module docstring, "A shift-aware ranking"): on the
conditions with a train/test gap, does coverage gain alone rank recipes better than the default?

    python benchmarks/predictors/study.py train --conditions shapes-scale-gap-500,... --jobs 2
    python benchmarks/predictors/study.py coverage --conditions shapes-scale-gap-500,...
    python benchmarks/predictors/study.py analyse
    python benchmarks/predictors/shift_rule.py

Reads ``results/analysis.json`` (the conditions left out of the choice: every candidate's rho and top-pick regret)
and checks, for each gap condition, that ``densify.quality.heldout_shift`` flags it as the audit would (the same
data, the duplicate search's thumbnails). Gap conditions whose ``none`` reaches ``CEILING`` held-out accuracy
cannot rank recipes and are reported but not evidence (the rule's amendment, made before any predictor value of
them was computed). Writes ``results/shift-rule.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import study  # noqa: E402

GAPS = ("shapes-scale-gap-500", "colours-rotation-gap-500", "arrows-scale-gap-500", "shapes-position-gap-500")
#: a condition whose ``none`` reaches this held-out accuracy cannot rank recipes (the rule's amendment)
CEILING = 0.95
SUGGESTED_BY = "shapes-gap-500"  # reported, not evidence
ALTERNATIVE = "coverage_gain"
MARGIN = 0.10


def none_accuracy(name: str) -> float:
    """The mean held-out accuracy of ``none`` over the ground truth's seeds."""
    acc = json.loads(study.truth_path(name, study.STEPS).read_text())["accuracy"]["none"]
    return sum(acc.values()) / len(acc)


def flagged(name: str, photos: Path) -> dict:
    from densify.quality import heldout_shift
    from densify.quality._duplicates import thumbnails

    data = study.load(study.CONDITIONS[name], argparse.Namespace(photos=photos))
    return heldout_shift(thumbnails(data.train.images)[0], thumbnails(data.heldout.images)[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=study.ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    analysis = json.loads((study.RESULTS / "analysis.json").read_text())
    outside = analysis["outside_choice"]
    chosen = outside["chosen"]
    encoder = chosen.split(" @ ")[1]
    alternative = f"{ALTERNATIVE} @ {encoder}"
    missing = [n for n in (*GAPS, SUGGESTED_BY) if n not in outside["conditions"]]
    if missing:
        raise SystemExit(f"not analysed yet: {', '.join(missing)} (run study.py train, coverage, analyse)")
    rows = {}
    for name in (*GAPS, SUGGESTED_BY):
        shift = flagged(name, args.photos)
        none = none_accuracy(name)
        rows[name] = {
            "evidence": name in GAPS and none < CEILING,
            "none_accuracy": none,
            "shifted": bool(shift and shift["shifted"]),
            "deficit": None if shift is None else shift["deficit"],
            "default_rho": outside["rho"][chosen][name],
            "alternative_rho": outside["rho"][alternative][name],
            "default_regret_points": outside["regret_points"][chosen][name],
            "alternative_regret_points": outside["regret_points"][alternative][name],
        }
        r = rows[name]
        print(f"{name:26s} shifted {r['shifted']!s:5s} (deficit {r['deficit']:+.3f})  rho default "
              f"{r['default_rho']:+.2f} / coverage gain {r['alternative_rho']:+.2f}  regret "
              f"{r['default_regret_points']:.1f} / {r['alternative_regret_points']:.1f} points"
              f"{'' if r['evidence'] else '  (not evidence: ' + ('suggested the rule' if name == SUGGESTED_BY else 'at the ceiling') + ')'}")  # fmt: skip
    evidence = [r for r in rows.values() if r["evidence"]]
    worst_default = min(r["default_rho"] for r in evidence)
    worst_alt = min(r["alternative_rho"] for r in evidence)
    mean_regret_default = sum(r["default_regret_points"] for r in evidence) / len(evidence)
    mean_regret_alt = sum(r["alternative_regret_points"] for r in evidence) / len(evidence)
    adopt = (
        all(r["shifted"] for r in evidence)
        and worst_alt >= worst_default + MARGIN
        and mean_regret_alt <= mean_regret_default
    )
    out = {
        "default": chosen,
        "alternative": alternative,
        "conditions": rows,
        "worst_rho": {"default": worst_default, "alternative": worst_alt},
        "mean_regret_points": {"default": mean_regret_default, "alternative": mean_regret_alt},
        "margin": MARGIN,
        "adopt": adopt,
    }
    (study.RESULTS / "shift-rule.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("worst_rho", "mean_regret_points", "adopt")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

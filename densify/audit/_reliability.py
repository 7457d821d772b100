"""How far a training-free ranking can be trusted, as measured by the cross-dataset predictor study.

``predictor_study.json`` (next to this module) is written by ``benchmarks/predictors/study.py analyse``: for every
predictor x encoder, its Spearman rho against trained gains on each dataset of the study, scored on datasets it was
not chosen on (docs/predictor-study.md). A test pins it to the study's committed results.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from densify._catalogue import LABELS

STUDY = Path(__file__).with_name("predictor_study.json")


@cache
def study() -> dict[str, Any]:
    return json.loads(STUDY.read_text())


def reliability(predictor: str, encoder: str) -> dict[str, Any] | None:
    """{per_dataset, worst, mean} of ``predictor`` with ``encoder`` in the study, or None when not measured."""
    return study()["candidates"].get(f"{predictor} @ {encoder}")


def reliability_sentence(predictor: str, encoder: str) -> str:
    """One sentence for the verdict: the measured range of rho of this predictor with this encoder, or that it was
    not measured."""
    r = reliability(predictor, encoder)
    s = study()
    if r is None:
        return (
            f"How far to trust this ranking: {LABELS[predictor]} with encoder {encoder} was not measured in the "
            f"predictor study ({len(s['datasets'])} datasets); confirm with training (--train)."
        )
    per = ", ".join(f"{d} {rho:+.2f}" for d, rho in r["per_dataset"].items())
    strength = "weak" if r["worst"] < 0.3 else "moderate" if r["worst"] < 0.6 else "good"
    sentence = (
        f"How far to trust this ranking: in the predictor study, {LABELS[predictor]} with encoder {encoder} ranked "
        f"recipes like training with Spearman rho {per} (worst {r['worst']:+.2f}, mean {r['mean']:+.2f}): "
        f"{strength} evidence; confirm with training (--train) before relying on it."
    )
    best_predictor, _, best_encoder = s["chosen"].partition(" @ ")
    best = s["candidates"].get(s["chosen"])
    if best_predictor == predictor and best_encoder != encoder and best and best["worst"] > r["worst"]:
        sentence += (
            f" The study's choice is this predictor with --encoder {best_encoder} (worst {best['worst']:+.2f}, "
            f"mean {best['mean']:+.2f})."
        )
    return sentence

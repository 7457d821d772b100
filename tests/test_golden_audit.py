"""A golden audit: report.json of a tiny audit, written by densify before issue 11's restructuring, must come out
the same now (timings, versions, environment and file paths aside).

The golden file was written by commit cda4fa6 with one fix back-ported (``densify/estimate.py``: a view identical
to its source gets the source's embedding bit for bit). That fix changes numbers on purpose: before it, ``none``
scored densification 5.7e-8 and diversity 4e-7 instead of 0, and PRDC density 1.089 instead of 1.0, from BLAS
blocking noise; and exact zeros move some bootstrap intervals onto the multinomial path of ``boot_means``.
Everything else in issue 11 (plan, lock, staged bundle, recipes passed as objects) must change nothing. Floats are
compared to 1e-5 (relative): float32 embeddings and BLAS/OpenMP summation order move them by about 1e-7 between
thread counts (the golden file was written with one thread; CI runs with every core); differences of distances
(the class-margin gain) carry that noise in absolute terms, hence an absolute tolerance of 1e-6 as well.

Regenerated once, by issue 12 (the verdict states only what the numbers support): that change added each recipe's
``views`` health and the verdict's ``warnings``, ``ranked_by``, ``head_to_head`` and rewrote its wording; every other
number was checked equal to the previous golden file (same comparison, verdict and ``views`` excluded) before
replacing it. The same issue's new predictors (``probe_accuracy_gain``, ``probe_margin_gain``, ``class_margin_gain``) were then
added the same way: every other number checked unchanged first. Issue 13 (working size) added the settings
``resize``, ``channels``, ``image_size`` and the data's ``stored_shape`` and ``notes`` (so the run_id changed); every
other value was checked equal before they were added to the file. The same issue's switch of the fallback predictor
(label consistency x densification) changed one verdict sentence ("... would pick vflip instead"); every other value
was checked equal before the verdict was replaced. Issue 14 (the manifold lab) added the report's ``manifold``
section and the data's ``factors`` (empty for real data); every other value was checked equal before they were
added. Issue 15 added the predictors ``alignment_gain`` and ``prediction_variance``; every other value was checked
equal (the new metrics stripped from the new report) before they were added. Issue 16 added the setting
``search`` and the report's ``search`` section (so the run_id changed); every other value was checked equal first.
Issue 17 added the report's ``data_quality`` section (and a verdict warning when held-out images leak into train;
none here); every other value was checked equal (the section stripped from the new report) before it was added.
Issue 16 then moved the data-quality k-NN label disagreement to 64 principal components and added the setting
``near_components``; every other value (that score's values in the examples included) came out equal before the
setting was added. Issue 16 then moved the outlier search to the same 64 principal components: only the examples'
``outlier_score`` values changed (the same examples, the same counts); every other value was checked equal before
those 11 values were replaced. Issue 17 then added the examples' ``noise_score`` (a ranking of noise-like
thumbnails) and the setting ``noise_components``; every other value was checked equal before they were added.
Issue 17 then added the near-duplicate residual test and its setting ``near_residual``; every other value came out
equal (no flag changed here) before the setting was added. The same issue then added ``data_quality/shift`` (whether
the held-out set is drawn like the training set; not shifted here, so no warning); every other value came out equal
before it was added. Its other direction, ``concentrated`` (held-out images more alike than training images), was
added later the same way (false here; every other value equal).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from densify.audit import AuditSettings, run_audit

GOLDEN = Path(__file__).parent / "golden" / "audit-tiny.json"
SETTINGS = dict(
    data="fashion-mini",
    recipes=("flip", "vflip", "affine-heavy"),
    encoder="pixels:pca16",
    train_size=300,
    heldout_size=100,
    k=3,
    n_boot=100,
    train=False,
)


def _differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}/{i}")
        ]
    if isinstance(a, float) and isinstance(b, float | int):
        return [] if math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_report_json_is_unchanged_by_the_restructuring(tmp_path):
    report = run_audit(AuditSettings(**SETTINGS), tmp_path / "out")
    golden = json.loads(GOLDEN.read_text())
    for r in (report, golden):
        for key in ("timings", "versions", "environment"):
            r.pop(key, None)
        r["encoder"].pop("fingerprint")  # a hash of the fitted floats: it changes with their last bits
        for recipe in r["recipes"].values():
            recipe["source"] = Path(recipe["source"]).name if recipe["source"] else None
    report = json.loads(json.dumps(report))
    assert _differences(golden, report) == []

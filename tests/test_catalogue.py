"""The metric catalogue is the one list every table derives from; it must match what an audit computes."""

from __future__ import annotations

import json
from pathlib import Path

from densify import _catalogue as cat
from densify.audit import PREDICTORS, predictor_value
from densify.audit._verdict import LABELS

GOLDEN = Path(__file__).parent / "golden" / "audit-tiny.json"


def test_every_listed_metric_is_in_a_real_report():
    report = json.loads(GOLDEN.read_text())
    metrics = report["coverage"]["flip"]["metrics"]
    for m in cat.CATALOGUE:
        if m.factors:
            assert all(f in metrics for f in m.factors), m.name
            assert predictor_value(metrics, m.name) is not None
        elif m.name != "measured_gain":
            assert m.name in metrics, m.name
    assert set(report["verdict"]["predictor_values"]) == set(PREDICTORS)


def test_derived_lists_agree():
    assert PREDICTORS == cat.PREDICTORS and LABELS is cat.LABELS
    assert set(cat.TABLE) <= set(cat.BASE_PREDICTORS) and {n for n, _ in cat.TERMINAL} <= set(cat.TABLE)
    assert len({m.name for m in cat.CATALOGUE}) == len(cat.CATALOGUE)
    assert all(m.short for m in cat.CATALOGUE if m.table or m.terminal)


def test_the_golden_report_matches_the_typed_schema_and_a_broken_one_is_one_line(tmp_path):
    import pytest

    from densify.audit import read_report
    from densify.errors import DensifyError

    report = json.loads(GOLDEN.read_text())
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert read_report(tmp_path)["run_id"] == report["run_id"]
    del report["verdict"]["flags"]
    (tmp_path / "report.json").write_text(json.dumps(report))
    with pytest.raises(DensifyError, match=r"not a valid densify.report/1 \(verdict/flags: Field required\)"):
        read_report(tmp_path)

"""The audit as a practitioner reads it: degenerate views caught on the pixels, progress lines in a pipe, tables that
fit 80 columns without cutting names, gains in points everywhere, and a Reproduce command that reproduces."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from densify._progress import LineProgress, run_progress
from densify.audit._html import reproduce_command
from densify.cli import _print_report, cli
from densify.coverage import is_degenerate, view_health

RNG = np.random.default_rng(0)
SOURCES = RNG.integers(0, 256, size=(40, 8, 8, 1), dtype=np.uint8)


def test_view_health_of_healthy_views_is_clean():
    flipped = SOURCES[:, :, ::-1]
    h = view_health(flipped, SOURCES, (0, 255))
    assert h == {
        "n": 40,
        "constant": 0.0,
        "collapsed": 0.0,
        "saturated": 0.0,
        "out_of_range": 0.0,
        "degenerate": 0.0,
    }
    assert not is_degenerate(h)


def test_view_health_catches_constant_tofloat_saturated_and_out_of_range_views():
    constant = np.full_like(SOURCES, 7)
    assert view_health(constant, SOURCES, (0, 255))["constant"] == 1.0
    tofloat = (SOURCES / 255.0).astype(np.uint8)  # ToFloat cast back to uint8: 0/1 images
    h = view_health(tofloat, SOURCES, (0, 255))
    assert h["collapsed"] == 1.0 and is_degenerate(h)
    washed = np.where(RNG.random(SOURCES.shape) < 0.8, 255, SOURCES).astype(np.uint8)  # 80% blown out
    assert view_health(washed, SOURCES, (0, 255))["saturated"] == 1.0
    masks = RNG.integers(0, 2, size=(40, 8, 8, 1)).astype(np.uint8)
    assert view_health(masks * 200, masks, (0, 1))["out_of_range"] == 1.0
    half = np.concatenate([SOURCES[:20], constant[20:]])
    assert view_health(half, SOURCES, (0, 255))["degenerate"] == 0.5 and is_degenerate(
        view_health(half, SOURCES, (0, 255))
    )


def test_line_progress_prints_timestamped_lines_with_rate_and_eta_at_most_every_period():
    t = [0.0]
    out = io.StringIO()
    shown = LineProgress(out, every=30, clock=lambda: t[0])
    cb = run_progress(shown.update, 2)
    for seed in (0, 1):
        for step in range(0, 101, 10):
            t[0] += 6
            cb("flip", seed, step, 100)
    lines = out.getvalue().splitlines()
    assert all(line.startswith("[") and "] training (flip seed" in line for line in lines)
    assert "ETA" in lines[1] and "/s" in lines[1]
    assert lines[-1].endswith("200/200 (100.0%)")
    assert 4 <= len(lines) <= 10  # not one line per callback (22 calls), not silent


def _report(names: list[str]) -> dict:
    metric = {"value": 0.123, "low": 0.1, "high": 0.2, "per_class": []}
    return {
        "data": {"name": "tiny"},
        "encoder": {"name": "reference"},
        "coverage": {
            r: {
                "metrics": {
                    m: metric
                    for m in (
                        "densification",
                        "knn_accuracy_gain",
                        "fidelity",
                        "label_consistency",
                        "diversity",
                    )
                }
            }
            for r in names
        },
        "training": {
            "recipes": {
                r: {"gain_over_none": {"mean": -0.1234, "low": -0.2345, "high": 0.0123}} for r in names
            }
        },
        "verdict": {
            "flags": {r: {"leaves_manifold": "x"} for r in names},
            "summary": ["Use flip."],
            "warnings": [],
            "agreement": {},
            "trained": True,
            "default_predictor": "densification",
        },
    }


@pytest.mark.parametrize(
    "names", [["none", "flip", "affine-heavy", "flip-crop-cutout"], ["none", "a-recipe-with-a-long-name"]]
)
def test_terminal_table_fits_80_columns_and_never_cuts_a_name(names):
    console = Console(width=80, record=True, file=io.StringIO())
    _print_report(_report(names), console)
    text = console.export_text()
    table = text.split("Flags:")[0]
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "…" not in text
    for r in names:
        assert f" {r} " in table
    assert "-12.34" in table and "[-23.4,+1.2]" in table  # gains in points with their interval
    assert f"Flags: {names[1]} (off-manifold)" in text


def test_tables_list_none_then_recipes_best_first():
    """An audit of every recipe listed them alphabetically in both tables while the verdict ranked them: now none
    (the baseline), then best to worst by the ranking the verdict went by, then any it did not rank."""
    from densify.audit._verdict import display_order

    names = ["none", "alpha", "beta", "gamma", "delta"]
    report = _report(names)
    v = report["verdict"]
    v["ranked_by"], v["ranking"] = "measured_gain", {"measured_gain": ["gamma", "alpha", "none", "beta"]}
    assert display_order(v, names) == ["none", "gamma", "alpha", "beta", "delta"]
    assert display_order({}, names) == names  # nothing ranked (abstained): the audit's order
    console = Console(width=120, record=True, file=io.StringIO())
    _print_report(report, console)
    text = console.export_text()
    rows = [word for word in text.split("Flags:")[0].split() if word in names]
    assert rows == ["none", "gamma", "alpha", "beta", "delta"], rows
    assert "rows: none, then best to worst by measured gain" in text


def test_terminal_table_overflows_rather_than_truncates_very_long_names():
    names = ["none", "an-exceptionally-long-recipe-name-that-cannot-fit"]
    console = Console(width=80, record=True, file=io.StringIO())
    _print_report(_report(names), console)
    text = console.export_text()
    assert "…" not in text and names[1] in text and "div." in text


CLI_TINY = ["--recipes", "flip,vflip", "--encoder", "pixels:pca16", "--train-size", "300", "--heldout-size", "100",
            "-k", "3", "--seeds", "2", "--steps", "15", "--batch", "32"]  # fmt: skip


def _stable(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("timings", "environment")}


def test_the_reproduce_command_of_a_report_reproduces_it(tmp_path):
    first = tmp_path / "first"
    result = CliRunner().invoke(cli, ["evaluate", *CLI_TINY, "--out", str(first)])
    assert result.exit_code == 0, result.output
    report = json.loads((first / "report.json").read_text())
    command = reproduce_command(report["settings"], out=str(tmp_path / "again"))
    assert (
        command in (first / "report.html").read_text().replace("&#x27;", "'")
        or reproduce_command(report["settings"]) in (first / "report.html").read_text()
    )
    argv = shlex.split(command)
    assert argv[:2] == ["densify", "evaluate"]
    again = CliRunner().invoke(cli, argv[1:])
    assert again.exit_code == 0, again.output
    reproduced = json.loads((tmp_path / "again" / "report.json").read_text())
    assert _stable(reproduced) == _stable(report)
    # and densify compare shows gains in points, like everything else
    cmp = CliRunner().invoke(
        cli, ["compare", str(first), str(tmp_path / "again"), "-o", str(tmp_path / "cmp")]
    )
    assert cmp.exit_code == 0, cmp.output
    assert "gain (points)" in cmp.output
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "gain over none (points)" in page


def test_a_piped_audit_prints_progress_lines(tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", *CLI_TINY, "--no-train", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert any("fit encoder" in line for line in lines) and any("views of flip" in line for line in lines)
    assert Path(tmp_path / "r" / "report.json").is_file()


def test_coverage_summary_fits_80_columns(tmp_path):
    names = ["flip", "affine-heavy", "flip-crop-cutout"]
    args = ["coverage", "--train-size", "200", "--heldout-size", "100", "--recipes", ",".join(names),
            "--encoder", "pixels:pca16", "--no-cache"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = result.stdout.split("summary")[-1].split("\n(")[0]
    assert max(len(line) for line in summary.splitlines()) <= 80
    assert "…" not in summary and all(f" {r} " in summary for r in names)
    assert "probe: linear-probe accuracy gain" in result.stdout  # abbreviations are explained


def test_the_gain_axis_keeps_helpful_recipes_apart_when_one_is_a_disaster():
    from densify.plots import gain_axis

    means, lows, highs = (
        [2.0, 1.2, 0.4, -0.3, -13.0],
        [1.5, 0.7, -0.1, -0.8, -14.0],
        [2.5, 1.7, 0.9, 0.2, -12.0],
    )
    lo, hi = gain_axis(means, lows, highs)
    assert -13.0 < lo < -0.8 and hi > 2.5  # the disaster is outside (drawn at the edge), the rest inside
    assert hi - lo < 5  # the helpful recipes keep most of the axis
    lo, hi = gain_axis(means[:4], lows[:4], highs[:4])
    assert lo <= -0.8 and hi >= 2.5  # without a disaster every interval fits
    lo, hi = gain_axis(
        [-11.5, -1.7, 1.5], [-13.6, -10.1, -9.1], [-9.4, 6.8, 12.1]
    )  # wide seeds: nothing clipped
    assert lo <= -13.6 and hi >= 12.1


def test_run_progress_counts_interleaved_parallel_runs_and_repeated_keys():
    shown = []
    cb = run_progress(lambda stage, done, total: shown.append((stage, done, total)), 3)
    cb("flip", 0, 10, 100)
    cb("none", 0, 30, 100)
    assert shown[-1][0] == "training (flip seed 0, none seed 0)"  # both runs going on: one stage, not two
    cb("flip", 0, 40, 100)
    assert shown[-1][0] == "training (flip seed 0, none seed 0)"
    cb("flip", 0, 100, 100)  # flip ends while none is at 30
    assert shown[-1][1:] == (130, 300)
    cb("none", 0, 100, 100)
    cb("flip", 0, 50, 100)  # the same key again (a scaling study's next size): a new run
    assert shown[-1] == ("training (flip seed 0)", 250, 300)
    cb("flip", 0, 100, 100)
    cb("none", 1, 100, 100)  # more runs than announced: the total grows rather than passing 100%
    assert shown[-1][1:] == (400, 400)

"""densify evaluate / run_audit end to end: the bundle, its consistency, resuming, refusals and densify compare."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from densify.audit import AuditSettings, read_report, run_audit, write_comparison
from densify.cli import cli

SMALL = dict(
    data="fashion-mini",
    recipes=("flip", "vflip"),
    encoder="pixels:pca16",
    train_size=300,
    heldout_size=100,
    k=3,
    n_boot=100,
    seeds=2,
    steps=15,
    batch=32,
)
CLI_SMALL = [
    "--recipes", "flip,vflip", "--encoder", "pixels:pca16", "--train-size", "300", "--heldout-size", "100",
    "-k", "3", "--seeds", "2", "--steps", "15", "--batch", "32",
]  # fmt: skip


def _stable(report: dict) -> dict:
    report = dict(report)
    report.pop("timings")
    return report


def test_report_records_the_environment(bundle):
    _, report = bundle
    assert report["environment"]["device"] in ("cpu", "cuda") and report["environment"]["torch_threads"] >= 1
    assert report["environment"]["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY", "default")
    import cv2

    assert report["environment"]["opencv_threads"] == cv2.getNumThreads() >= 1
    # trained runs: one torch thread each unless DENSIFY_TORCH_THREADS says otherwise, however many run at once
    assert report["environment"]["train_threads"] == int(os.environ.get("DENSIFY_TORCH_THREADS") or 1)
    assert report["environment"]["train_jobs"] >= 1


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("audit") / "report"
    report = run_audit(AuditSettings(**SMALL), out)
    return out, report


def _resolve(report: dict, path: str):
    node = report
    for part in path.split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def test_bundle_files_and_report_schema(bundle):
    out, report = bundle
    assert (
        (out / "report.json").is_file()
        and (out / "report.html").is_file()
        and (out / "metrics.csv").is_file()
    )
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert {"coverage-gain.png", "fidelity-plane.png", "class-gaps.png", "predictors-vs-gain.png",
            "projection.png"} <= plots  # fmt: skip
    assert {f"samples-{r}.png" for r in ("none", "flip", "vflip")} <= plots
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["schema"] == "densify.report/1" and on_disk["run_id"] == report["run_id"]
    assert list(on_disk["coverage"]) == ["none", "flip", "vflip"]  # none added first as the baseline
    assert on_disk["recipes"]["vflip"]["albumentations"]["transform"]["transforms"][0]["p"] == 0.5
    assert on_disk["data"]["fingerprint"] and on_disk["versions"]["numpy"]
    assert set(on_disk["training"]["recipes"]) == {"none", "flip", "vflip"}
    assert on_disk["verdict"]["agreement"]["densification"]["n"] == 3
    assert on_disk["settings"]["seeds"] == 2 and on_disk["encoder"]["name"].startswith("pixels")
    assert oct((out / "report.json").stat().st_mode & 0o777) != "0o600"


def test_metrics_csv_has_a_row_per_recipe_matching_the_json(bundle):
    out, report = bundle
    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["recipe"] for r in rows] == ["none", "flip", "vflip"]
    for row in rows:
        name = row["recipe"]
        assert float(row["fidelity"]) == pytest.approx(
            report["coverage"][name]["metrics"]["fidelity"]["value"]
        )
        assert float(row["accuracy"]) == pytest.approx(
            report["training"]["recipes"][name]["accuracy"]["mean"]
        )


def test_html_is_self_contained_and_its_numbers_match_the_json(bundle):
    out, report = bundle
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert page.count('data-plot="') >= 5 + 3
    cells = re.findall(r'<span data-path="([^"]+)" data-scale="([^"]+)"[^>]*>([^<]+)</span>', page)
    assert len(cells) > 50
    for path, scale, text in cells:
        value = _resolve(report, path)
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert float(text) == pytest.approx(float(scale) * value, abs=0.6 * 10**-decimals), path
    for sentence in report["verdict"]["summary"]:
        assert sentence.replace("'", "&#x27;") in page
    from densify.audit._verdict import display_order

    table = page.split("<table id=recipes>")[1].split("</table>")[0]
    order = display_order(report["verdict"], report["coverage"])
    assert re.findall(r"<tr data-recipe=([\w-]+)>", table) == order and order[0] == "none"
    ranked = report["verdict"]["ranking"][report["verdict"]["ranked_by"]]
    assert order[1:] == [r for r in ranked if r != "none"]  # best to worst, as the verdict ranked them
    assert "Rows: none, then best to worst by measured gain." in page


def test_rerun_same_settings_is_identical_and_resume_reuses_everything(bundle, tmp_path):
    out, report = bundle
    again = run_audit(AuditSettings(**SMALL), tmp_path / "fresh")
    assert _stable(again) == _stable(report)
    runs = sorted((out / ".densify" / "train" / "runs").glob("*.json"))
    mtimes = [p.stat().st_mtime_ns for p in runs]
    resumed = run_audit(AuditSettings(**SMALL), out, resume=True)
    assert _stable(resumed) == _stable(report)
    assert [p.stat().st_mtime_ns for p in runs] == mtimes  # no run retrained


def test_a_changed_setting_recomputes_only_what_it_affects(tmp_path):
    out = tmp_path / "r"
    first = run_audit(AuditSettings(**SMALL), out)
    runs = sorted((out / ".densify" / "train" / "runs").glob("*.json"))
    mtimes = [p.stat().st_mtime_ns for p in runs]
    views = sorted((out / ".densify" / "cache").glob("*.npz"))
    changed = run_audit(AuditSettings(**{**SMALL, "k": 4}), out, resume=True)
    assert changed["run_id"] != first["run_id"] and changed["settings"]["k"] == 4
    assert [p.stat().st_mtime_ns for p in runs] == mtimes  # k does not touch training
    assert changed["training"] == first["training"]
    assert changed["coverage"]["flip"] != first["coverage"]["flip"]  # metrics recomputed
    # the old embeddings are all still there (and were reused); only new metric entries were added
    assert set(views) <= set((out / ".densify" / "cache").glob("*.npz"))


def test_refusals_are_one_line_and_leave_nothing_behind(tmp_path, bundle):
    runner = CliRunner()
    out = tmp_path / "new"
    cases = [
        (["--recipes", "flp"], "did you mean 'flip'"),
        (["--data", "idx:/nonexistent"], "/nonexistent"),
        (["--projection", "cutout"], "projection 'cutout'"),
    ]
    for extra, message in cases:
        result = runner.invoke(cli, ["evaluate", *CLI_SMALL, *extra, "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not out.exists()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = runner.invoke(cli, ["evaluate", *CLI_SMALL, "--out", str(a_file / "sub")])
    assert result.exit_code == 2 and "is a file" in result.output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = runner.invoke(cli, ["evaluate", *CLI_SMALL, "--out", str(foreign)])
    assert result.exit_code == 2 and "holds no densify report" in result.output
    assert os.listdir(foreign) == ["notes.txt"]
    # a bundle of a different run: refused without --resume/--force, untouched
    existing, _ = bundle
    before = (existing / "report.json").read_bytes()
    result = runner.invoke(cli, ["evaluate", *CLI_SMALL, "--views", "3", "--out", str(existing)])
    assert result.exit_code == 2, result.output
    assert (
        "different run" in result.output and "views 2 -> 3" in result.output and "--resume" in result.output
    )
    assert (existing / "report.json").read_bytes() == before


def test_force_replaces_a_different_run(tmp_path):
    out = tmp_path / "r"
    run_audit(AuditSettings(**{**SMALL, "train": False}), out)
    replaced = run_audit(AuditSettings(**{**SMALL, "train": False, "views": 1}), out, force=True)
    assert read_report(out)["run_id"] == replaced["run_id"]


def test_no_train_verdict_and_cli_output(tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", *CLI_SMALL, "--no-train", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output and "without training" in result.output
    report = read_report(tmp_path / "r")
    # the table's heading is one line of its own, however narrow the table (as its title, a long data spec wrapped)
    import io

    from rich.console import Console

    from densify.cli import _print_report

    long = {
        **report,
        "data": {**report["data"], "name": "folder:/a/rather/long/path/to/somebody's/photo/collection"},
    }
    buffer = io.StringIO()
    _print_report(long, console=Console(file=buffer, width=160))
    assert f"{long['data']['name']}: encoder {report['encoder']['name']}" in buffer.getvalue().splitlines()
    assert report["training"] is None and report["verdict"]["agreement"] == {}
    assert "predictors-vs-gain.png" not in {p.name for p in (tmp_path / "r" / "plots").iterdir()}


def test_proxy_audit_ranks_by_the_fine_tunes_and_the_predictor(tmp_path):
    """--proxy: one clean base model, short fine-tunes per recipe and seed; the verdict ranks by the mean of the
    proxy's and the default predictor's ranks and states the study's reliability; the same report when re-run."""
    from densify.audit._verdict import PROXY_RANKING

    args = ["evaluate", *CLI_SMALL, "--steps", "60", "--proxy"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "proxy" in result.output and "without full training" in result.output
    report = read_report(tmp_path / "r")
    proxy, v = report["proxy"], report["verdict"]
    assert report["training"] is None and report["settings"]["proxy"] is True
    assert report["environment"]["train_jobs"] >= 1 and report["environment"]["train_threads"] >= 1
    assert proxy["seeds"] == [0, 1] and proxy["base_steps"] == 60 and proxy["finetune_steps"] == 10
    assert proxy["steps"] == 60 + 3 * 2 * 10 and proxy["full_steps"] == 3 * 2 * 60
    assert list(proxy["recipes"]) == ["none", "flip", "vflip"]
    assert all(len(r["runs"]) == 2 for r in proxy["recipes"].values())
    assert v["ranked_by"] == PROXY_RANKING and sorted(v["ranking"][PROXY_RANKING]) == [
        "flip",
        "none",
        "vflip",
    ]
    assert v["proxy_gains"]["none"] == 0.0
    assert (
        any("fine-tune proxy" in s for s in v["summary"])
        and "fine-tune proxy" in (tmp_path / "r" / "report.html").read_text()
    )
    page = (tmp_path / "r" / "report.html").read_text()
    cells = re.findall(r'<span data-path="(proxy/[^"]+)" data-scale="([^"]+)"[^>]*>([^<]+)</span>', page)
    assert len(cells) == 2  # flip and vflip
    for path, scale, text in cells:
        assert float(text) == pytest.approx(float(scale) * _resolve(report, path), abs=0.006), path
    rows = {r["recipe"]: r for r in csv.DictReader(io.StringIO((tmp_path / "r" / "metrics.csv").read_text()))}
    assert float(rows["flip"]["proxy_gain"]) == pytest.approx(
        proxy["recipes"]["flip"]["gain_over_none"]["mean"]
    )
    again = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert _stable(read_report(tmp_path / "again"))["proxy"] == _stable(report)["proxy"]
    from densify.audit._compare import compare_reports

    flip = compare_reports([tmp_path / "r", tmp_path / "again"])["recipes"]["flip"]["proxy_gain"]
    write_comparison([tmp_path / "r", tmp_path / "again"], tmp_path / "cmp")
    assert (tmp_path / "cmp" / "plots" / "compare-proxy_gain.png").is_file()
    assert not (tmp_path / "cmp" / "plots" / "compare-measured_gain.png").exists()
    assert (
        flip["values"][0] == proxy["recipes"]["flip"]["gain_over_none"]["mean"]
        and flip["differences"][1] == 0
    )


def test_proxy_and_train_exclude_each_other_and_proxy_keeps_run_ids():
    from densify.audit import plan_audit
    from densify.audit._plan import SettingsError

    with pytest.raises(SettingsError, match="train and proxy exclude each other"):
        plan_audit(AuditSettings(**SMALL, proxy=True))
    assert "proxy" not in AuditSettings(**SMALL).identity()  # earlier audits' run ids are unchanged
    assert AuditSettings(**{**SMALL, "seeds": 1}, train=False, proxy=True).identity()["proxy"] is True


def test_killed_audit_resumes_to_the_same_report(tmp_path):
    """SIGKILL while training, then --resume: the same report as an uninterrupted run."""
    args = [sys.executable, "-m", "densify", "evaluate", *CLI_SMALL, "--steps", "80"]
    env = {**os.environ, "DENSIFY_TORCH_THREADS": "1"}
    reference = tmp_path / "reference"
    subprocess.run([*args, "--out", str(reference)], env=env, check=True, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [*args, "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    runs = out / ".densify" / "train" / "runs"
    while time.time() < deadline and not (runs.is_dir() and len(list(runs.glob("*.json"))) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "report.json").exists()
    subprocess.run([*args, "--out", str(out), "--resume"], env=env, check=True, capture_output=True)
    assert _stable(read_report(out)) == _stable(read_report(reference))


def test_compare_two_bundles(bundle, tmp_path):
    out, report = bundle
    other = tmp_path / "k4"
    run_audit(AuditSettings(**{**SMALL, "k": 4, "train": False}), other)
    result = CliRunner().invoke(cli, ["compare", str(out), str(other), "-o", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    comparison = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert len(comparison["runs"]) == 2
    d = comparison["recipes"]["flip"]["densification"]
    assert d["differences"][1] == pytest.approx(d["values"][1] - d["values"][0])
    assert comparison["recipes"]["flip"]["measured_gain"]["values"][1] is None  # the second run did not train
    for name in (
        "compare.html",
        "compare.csv",
        "plots/compare-densification.png",
        "plots/compare-measured_gain.png",
    ):
        assert (tmp_path / "cmp" / name).is_file()
    assert not (tmp_path / "cmp" / "plots" / "compare-proxy_gain.png").exists()  # neither run has the proxy
    from densify.plots import _compare_interval

    gain = report["training"]["recipes"]["flip"]["gain_over_none"]
    assert _compare_interval(report, "flip", "measured_gain") == pytest.approx(
        (100 * gain["mean"], 100 * gain["low"], 100 * gain["high"])
    )
    assert all(math.isnan(v) for v in _compare_interval(read_report(other), "flip", "measured_gain"))
    bad = CliRunner().invoke(cli, ["compare", str(out), str(tmp_path)])
    assert bad.exit_code == 2 and "no report.json" in bad.output
    assert write_comparison([out, other], tmp_path / "api")["runs"][0]["run_id"] == report["run_id"]
    assert comparison["notes"] == []  # same encoder state and images: differences compare directly


def test_compare_says_when_runs_embed_in_different_spaces():
    """Two audits of the same data whose reference+views encoders saw different recipes gave flip's densification
    0.093 and 0.050, listed as a difference without a word that the spaces differ."""
    from densify.audit._compare import comparison_notes

    def run(encoder="reference+views", fp="e1", data="d1"):
        return {"encoder": {"name": encoder, "fingerprint": fp}, "data": {"fingerprint": data}}

    assert comparison_notes([run(), run()]) == []
    (note,) = comparison_notes([run(), run(fp="e2")])
    assert note.startswith("Run 2 embeds images in another space than run 1 (encoder reference+views fitted")
    (note,) = comparison_notes([run(), run("pixels", "e3"), run("random-cnn", "e4")])
    assert note.startswith("Runs 2, 3 embed images in another space than run 1 (different encoders)")
    notes = comparison_notes([run(), run(data="d2")])
    assert len(notes) == 1 and "different images" in notes[0]


def test_train_size_is_an_upper_bound_and_all_means_every_image(tmp_path):
    from densify.cli import _parse_train_size

    assert _parse_train_size("all") is None and _parse_train_size("500") == 500
    report = run_audit(
        AuditSettings(
            **{**SMALL, "data": "digits", "train_size": 100_000, "heldout_size": None, "train": False}
        ),
        tmp_path / "r",
    )
    assert report["data"]["train"]["n"] == 1438  # every training image of digits (1,797 minus the carved 20%)
    result = CliRunner().invoke(cli, ["evaluate", "--train-size", "lots", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "'lots' is not a number of images or 'all'" in result.output


def test_resolve_recipes_all_dedupes_and_puts_none_first():
    from densify.audit import resolve_recipes
    from densify.recipes import known_names

    assert [r.name for r in resolve_recipes(["flip", "vflip", "flip"])] == ["none", "flip", "vflip"]
    everything = [r.name for r in resolve_recipes(["all"])]
    assert everything[0] == "none" and sorted(everything) == sorted(known_names()) and len(everything) >= 14


def test_every_bundle_has_the_manifold_section(bundle):
    out, report = bundle
    manifold = report["manifold"]
    assert manifold["curve"]["sizes"][-1] == 300 and len(manifold["curve"]["coverage"]) == 5
    assert list(manifold["multipliers"]) == ["none", "flip", "vflip"]
    assert manifold["multipliers"]["none"] == {"coverage": 1.0, "distance": 1.0, "beyond": False}
    for space in ("embeddings", "pixels"):
        assert manifold["intrinsic_dimension"][space]["twonn"]["overall"]["value"] > 1
    assert len(manifold["curve"]["class_needs"]) == 10
    rows = list(csv.DictReader(io.StringIO((out / "metrics.csv").read_text())))
    assert rows[0]["recipe"] == "none" and float(rows[0]["data_multiplier_coverage"]) == 1.0
    assert all(float(r["data_multiplier_coverage"]) >= 1.0 for r in rows)
    assert (out / "plots" / "manifold.png").stat().st_size > 1000
    assert "The data manifold" in (out / "report.html").read_text()
    assert manifold["factor_space"] is None  # real data: no known factors


def test_evaluate_a_known_factor_dataset_from_the_cli(tmp_path):
    spec = "synth:arrows?train=200&heldout=120&rotation=-5:5/-30:30"
    args = [
        "evaluate",
        "--data",
        spec,
        "--recipes",
        "flip",
        "--encoder",
        "pixels:pca16",
        "-k",
        "3",
        "--no-train",
    ]
    result = CliRunner().invoke(cli, [*args, "--n-boot", "100", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    report = read_report(tmp_path / "r")
    assert report["data"]["spec"] == spec and report["data"]["shape"] == [32, 32, 3]
    rotation = next(f for f in report["data"]["factors"] if f["name"] == "rotation")
    assert rotation["train"][1] <= 275 and rotation["heldout"][1] > 290  # 'right' arrows: 270 +- jitter
    assert report["manifold"]["multipliers"]["flip"]["coverage"] >= 1.0
    truth = report["manifold"]["factor_space"]  # known factors: coverage on the true manifold too
    assert truth["none"]["coverage_gain"] == 0.0 and truth["flip"]["coverage_gain"] > 0
    assert "factor space (truth)" in (tmp_path / "r" / "report.html").read_text()


def test_an_approximate_search_audit_reports_its_error_in_json_html_and_reproduce_command(tmp_path):
    from densify.audit._html import reproduce_command

    settings = AuditSettings(**{**SMALL, "train": False, "search": "approximate"})
    report = run_audit(settings, tmp_path / "r")
    searches = report["search"]["approximate"]
    assert report["settings"]["search"] == "approximate" and searches
    assert all(e["checked"] == min(256, e["queries"]) and 0 <= e["recall"] <= 1 for e in searches)
    page = (tmp_path / "r" / "report.html").read_text()
    assert "searched approximately" in page
    cells = re.findall(r'<span data-path="(search/[^"]+)" data-scale="([^"]+)"[^>]*>([^<]+)</span>', page)
    assert len(cells) == 3 and cells[2][0].endswith("/scanned")  # recall, distance excess, widest scan
    assert all(e["scanned"] >= 1 for e in searches)
    for path, scale, text in cells:
        assert float(text) == pytest.approx(float(scale) * _resolve(report, path), abs=0.06), path
    assert "--search approximate" in reproduce_command(report["settings"])
    with pytest.raises(Exception, match="search must be one of auto, exact, approximate, got 'fast'"):
        run_audit(AuditSettings(**{**SMALL, "search": "fast"}), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_class_with_one_image_audits_end_to_end_with_training(tmp_path: Path):
    """A folder class of a single image stays in train (no held-out image): training reports its per-class accuracy
    as null (NaN made the report unwritable), the verdict and the plots are written."""
    from conftest import make_images, write_png

    images = make_images(49, 16, 16, 3, seed=3)
    for i in range(48):
        write_png(tmp_path / "photos" / ("abc"[i % 3]) / f"{i}.png", images[i])
    write_png(tmp_path / "photos" / "lonely" / "one.png", images[48])
    settings = {**SMALL, "data": f"folder:{tmp_path / 'photos'}", "train_size": None, "heldout_size": None}
    report = run_audit(
        AuditSettings(**{**settings, "recipes": ("flip",), "encoder": "pixels"}), tmp_path / "out"
    )
    held = [c["heldout"] for c in report["data"]["classes"]]
    assert held[3] == 0 and min(held[:3]) >= 3 and report["data"]["classes"][3]["train"] == 1
    run = report["training"]["recipes"]["flip"]["runs"][0]
    assert run["per_class_accuracy"][3] is None and all(0 <= v <= 1 for v in run["per_class_accuracy"][:3])
    assert json.loads((tmp_path / "out" / "report.json").read_text())["verdict"]
    assert (tmp_path / "out" / "plots" / "class-accuracy.png").stat().st_size > 0


def test_class_gap_map_lays_out_many_long_class_names_without_a_warning(recwarn):
    """50 classes of long names: tight_layout gave up (a UserWarning) and drew a colorbar over the other map."""
    from densify.plots import class_gap_heatmap

    names = [f"class_with_a_rather_long_name_{c:02d}" for c in range(50)]
    per_class = [0.1 * (c % 7) for c in range(50)]
    metric = {"value": 0.1, "per_class": per_class}
    report = {
        "data": {"classes": [{"name": n} for n in names]},
        "coverage": {
            r: {"metrics": {"label_coverage_clean": metric, "densification": metric}}
            for r in ("none", "flip")
        },
    }
    png = class_gap_heatmap(report)
    assert png.startswith(b"\x89PNG") and not [w for w in recwarn if "layout" in str(w.message)]

"""Nothing is ever lost: failures injected at every write of an audit leave the previous complete report intact."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from densify.audit import AuditSettings, OutError, _bundle, _run, run_audit
from densify.cli import cli
from densify.errors import DensifyError

TINY = dict(
    data="fashion-mini",
    recipes=("flip",),
    encoder="pixels:pca16",
    train_size=200,
    heldout_size=60,
    k=3,
    train=False,
)
CLI_TINY = ["--recipes", "flip", "--encoder", "pixels:pca16", "--train-size", "200", "--heldout-size", "60",
            "-k", "3", "--no-train"]  # fmt: skip
BUNDLE = ("report.json", "metrics.csv", "report.html")


def snapshot(out: Path) -> dict[str, bytes]:
    files = {name: (out / name).read_bytes() for name in BUNDLE}
    files.update({f"plots/{p.name}": p.read_bytes() for p in sorted((out / "plots").glob("*.png"))})
    files[".densify/run.json"] = (out / ".densify" / "run.json").read_bytes()
    return files


def leftovers(out: Path) -> list[str]:
    return [str(p) for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith("staging-")]


@pytest.fixture
def complete(tmp_path) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / "report"
    run_audit(AuditSettings(**TINY), out)
    return out, snapshot(out)


def test_full_disk_at_every_write_keeps_the_previous_bundle(complete, monkeypatch):
    out, before = complete
    real = _bundle.write_bytes_atomic
    render, rendered = _run.render_bundle, {}

    def render_once(*args, **kwargs):  # the same files each time: render the plots and the page once
        if not rendered:
            rendered.update(render(*args, **kwargs))
        return dict(rendered)

    monkeypatch.setattr(_run, "render_bundle", render_once)
    writes = len([p for p in out.rglob("*") if p.is_file() and ".densify" not in p.parts])
    assert writes >= 6
    for fail_at in range(1, writes + 1):
        calls = {"n": 0}

        def full_disk(path, data, fail_at=fail_at, calls=calls):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise OutError(f"{path}: cannot write (No space left on device)")
            real(path, data)

        monkeypatch.setattr(_bundle, "write_bytes_atomic", full_disk)
        with pytest.raises(DensifyError, match="No space left"):
            run_audit(AuditSettings(**{**TINY, "k": 4}), out, resume=True)
        assert {k: v for k, v in snapshot(out).items() if k != ".densify/run.json"} == {
            k: v for k, v in before.items() if k != ".densify/run.json"
        }, f"bundle changed after a full disk at write {fail_at}"
        assert not leftovers(out)


def test_enospc_from_the_file_system_is_one_line_and_keeps_the_bundle(complete, monkeypatch):
    out, before = complete

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(DensifyError, match=r"cannot write .*No space left on device"):
        run_audit(AuditSettings(**{**TINY, "k": 4}), out, resume=True)
    monkeypatch.undo()
    assert snapshot(out)["report.json"] == before["report.json"]
    assert not leftovers(out)


def test_a_crash_while_computing_keeps_the_bundle(complete, monkeypatch):
    out, before = complete
    import densify.estimate

    def boom(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(densify.estimate, "estimate_coverage", boom)
    with pytest.raises(RuntimeError, match="injected"):
        run_audit(AuditSettings(**{**TINY, "k": 4}), out, resume=True)
    assert {k: v for k, v in snapshot(out).items() if k != ".densify/run.json"} == {
        k: v for k, v in before.items() if k != ".densify/run.json"
    }


def test_a_bad_recipe_on_resume_is_refused_before_anything_changes(complete, tmp_path):
    out, before = complete
    bad = tmp_path / "inf.yaml"
    bad.write_text(
        "schema_version: 1\nname: inf\nintent: x\npipeline:\n  - Affine: {rotate: [-.inf, .inf]}\n"
    )
    result = CliRunner().invoke(
        cli, ["evaluate", *CLI_TINY, "--recipes", f"flip,{bad}", "--out", str(out), "--resume"]
    )
    assert result.exit_code == 2 and "not a finite number" in result.output
    assert snapshot(out) == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--encoder", "foo"], "unknown encoder 'foo'"), (["--model", "foo"], "unknown model 'foo'")],
)
def test_refused_options_write_nothing_and_the_corrected_command_runs(complete, extra, message):
    out, before = complete
    runner = CliRunner()
    start = time.perf_counter()
    args = ["evaluate", *CLI_TINY, "--out", str(out)]
    if "--model" in extra:
        args.remove("--no-train")
    result = runner.invoke(cli, [*args, *extra])
    assert result.exit_code == 2 and message in result.output, result.output
    assert time.perf_counter() - start < 10  # refused before any encoder is trained
    assert snapshot(out) == before
    assert runner.invoke(cli, ["evaluate", *CLI_TINY, "--out", str(out)]).exit_code == 0


def test_a_second_audit_on_the_same_out_is_refused(complete):
    out, before = complete
    with _bundle.lock(out):
        result = CliRunner().invoke(cli, ["evaluate", *CLI_TINY, "-k", "4", "--out", str(out), "--resume"])
    assert result.exit_code == 2 and "in use by another densify audit (pid" in result.output, result.output
    assert snapshot(out) == before


_KILLER = """
import os, signal, sys
from pathlib import Path
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
from densify.audit import AuditSettings, run_audit, _bundle
target, kind, out = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
import ast
TINY = ast.literal_eval(sys.argv[4])
settings = AuditSettings(**{**TINY, "k": 4})
count = {"n": 0}
def hit():
    count["n"] += 1
    if count["n"] == target:
        os.kill(os.getpid(), signal.SIGKILL)
if kind == "write":
    real = _bundle.write_bytes_atomic
    def write(path, data):
        hit()
        real(path, data)
    _bundle.write_bytes_atomic = write
else:
    real_replace = os.replace
    def replace(src, dst):
        if "staging-" in str(src):
            hit()
        real_replace(src, dst)
    os.replace = replace
run_audit(settings, out, resume=True)
"""


@pytest.mark.parametrize("kind", ["write", "rename"])
def test_sigkill_at_every_write_leaves_a_complete_report(complete, kind):
    out, before = complete
    n_files = len([p for p in out.rglob("*") if p.is_file() and ".densify" not in p.parts])
    for target in sorted({1, 2, n_files // 2, n_files}):
        proc = subprocess.run(
            [sys.executable, "-c", _KILLER, str(target), kind, str(out), repr(TINY)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == -9, proc.stderr
        report = json.loads((out / "report.json").read_text())  # always a complete, parseable report
        assert report["run_id"] == json.loads(before["report.json"])["run_id"], f"{kind} {target}"
        assert not [p for p in leftovers(out) if "staging" not in p]
    # the next run cleans up and completes
    run_audit(AuditSettings(**{**TINY, "k": 4}), out, resume=True)
    assert json.loads((out / "report.json").read_text())["settings"]["k"] == 4
    assert not leftovers(out)

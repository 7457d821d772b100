"""The coverage estimate and the audit under ``torchrun`` with two CPU processes (gloo) give the same numbers as
one process: the ranks share the embedding work, rank 0 computes the metrics and writes the bundle.

Both sides run as subprocesses with one BLAS and one torch thread (torchrun sets ``OMP_NUM_THREADS=1``; float
reductions split across a different number of threads would differ in the last bits, not because of sharding).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

JOBS = Path(__file__).parent / "jobs"
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "DENSIFY_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout)


def test_coverage_estimate_is_the_same_with_one_and_two_processes(tmp_path: Path):
    """A stateful encoder fitted on rank 0 and broadcast; clean images and views encoded in shards (2,100 of
    each: two batches, one per rank); every metric, sample and embedding-derived number identical."""
    job = str(JOBS / "coverage_job.py")
    two = _run([*TORCHRUN, job, str(tmp_path / "two.json")])
    assert two.returncode == 0, two.stderr[-3000:]
    one = _run([sys.executable, job, str(tmp_path / "one.json")])
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert a["data"]["n_train"] == 2100
    assert a == b


def _numbers(report: dict) -> dict:
    """The report without what may differ: timings, and the environment (processes, thread counts)."""
    return {k: v for k, v in report.items() if k not in ("timings", "environment")}


def test_audit_under_torchrun_writes_one_bundle_equal_to_one_process(tmp_path: Path):
    args = ["-m", "densify", "evaluate", "--no-train", "--encoder", "random-cnn", "--train-size", "600",
            "--heldout-size", "200", "--recipes", "none,flip,affine-light", "--n-boot", "200"]  # fmt: skip
    two = _run([*TORCHRUN, *args, "--out", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("report: ") == 1  # rank 0 reports
    one = _run([sys.executable, *args, "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = (json.loads((tmp_path / n / "report.json").read_text()) for n in ("one", "two"))
    assert (a["environment"]["processes"], b["environment"]["processes"]) == (1, 2)
    assert _numbers(a) == _numbers(b)
    for name in ("metrics.csv", "data-issues.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()

    # rank 0 refusing (the folder holds another audit's bundle) reaches every rank: an error, no hang
    before = (tmp_path / "one" / "report.json").read_bytes()
    refused = _run([*TORCHRUN, *args[:-1], "100", "--out", str(tmp_path / "one")], timeout=120)
    assert refused.returncode != 0
    assert refused.stderr.count("holds a report of a different run") == 2, refused.stderr[-3000:]
    assert (tmp_path / "one" / "report.json").read_bytes() == before

"""densify makes OpenMP threads wait passively unless told otherwise (benchmarks/bench_contention.py: two audits at
once on 2 cores took 6.2x as long as one alone with the runtime's default wait, 1.4x with passive waiting)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _policy(**env_vars) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "DENSIFY_OMP_WAIT_POLICY")}
    env.update(env_vars)
    code = "import os, densify; print(os.environ.get('OMP_WAIT_POLICY', '<unset>'))"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "PASSIVE"),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),
        ({"DENSIFY_OMP_WAIT_POLICY": "default"}, "<unset>"),
        ({"DENSIFY_OMP_WAIT_POLICY": "active"}, "ACTIVE"),
    ],
)
def test_openmp_wait_policy(env, expected):
    assert _policy(**env) == expected


@pytest.mark.parametrize("value", ["abc", "-1", "0", "1.5"])
def test_a_bad_thread_count_variable_is_one_line_naming_it(monkeypatch, value):
    """DENSIFY_TORCH_THREADS=abc ended in int()'s traceback; DENSIFY_FAISS_THREADS=-1 reached faiss."""
    from click.testing import CliRunner

    from densify._torch import env_count, torch_threads, train_threads
    from densify.cli import cli
    from densify.errors import DensifyError

    monkeypatch.setenv("DENSIFY_TORCH_THREADS", value)
    for read in (torch_threads, train_threads):
        with pytest.raises(
            DensifyError, match=f"DENSIFY_TORCH_THREADS must be a positive whole number, got '{value}'"
        ):
            read()
    monkeypatch.setenv("DENSIFY_TORCH_THREADS", " 2 ")
    assert env_count("DENSIFY_TORCH_THREADS") == 2 and torch_threads() == 2
    monkeypatch.setenv("DENSIFY_TORCH_THREADS", "")
    assert env_count("DENSIFY_TORCH_THREADS") is None
    monkeypatch.setenv("DENSIFY_FAISS_THREADS", value)
    result = CliRunner().invoke(
        cli, ["coverage", "--recipe", "flip", "--data", "digits", "--encoder", "pixels"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines() == [  # before any work (faiss reads it once per process)
        f"Error: DENSIFY_FAISS_THREADS must be a positive whole number, got '{value}'"
    ]

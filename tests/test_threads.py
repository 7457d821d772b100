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

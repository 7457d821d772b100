"""Every README block marked ``<!-- runnable ... -->`` runs as written, in a fresh folder: Python blocks as a script,
console blocks line by line (``$ `` lines, trailing comments dropped), each with exit code 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- runnable[^>]*-->\s*\n```(\w+)\n(.*?)\n```", re.S)


def runnable_blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


BLOCKS = runnable_blocks((ROOT / "README.md").read_text())


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", DENSIFY_CACHE=str(tmp / "cache"), MPLBACKEND="Agg")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def test_the_readme_marks_python_and_console_blocks_runnable():
    kinds = [k for k, _ in BLOCKS]
    assert kinds.count("python") >= 2 and kinds.count("console") >= 1


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"{k}-{i}" for i, (k, _) in enumerate(BLOCKS)])
def test_readme_block_runs(index, tmp_path):
    kind, code = BLOCKS[index]
    if kind == "python":
        script = tmp_path / "snippet.py"
        script.write_text(code + "\n")
        result = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return
    assert kind == "console"
    for line in code.splitlines():
        if not line.startswith("$ "):
            continue
        command = re.sub(r"\s+#.*$", "", line[2:])
        result = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True
        )
        assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"

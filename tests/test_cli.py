from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_npz

from densify import __version__
from densify.cli import cli

HEAVY = ("torch", "albumentations", "faiss", "matplotlib", "cv2", "numpy", "rich", "PIL")


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, time; t = time.perf_counter(); from densify.cli import cli;"
        "import contextlib, io\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): cli.main(['--help'])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules)); print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert float(out[1]) < 0.3


def test_help_and_version_from_the_console_script():
    script = Path(sys.executable).with_name("densify")
    start = time.perf_counter()
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "data" in result.stdout
    assert time.perf_counter() - start < 2.0  # a loose bound; the in-process import bound is above
    assert CliRunner().invoke(cli, ["--version"]).output.strip() == f"densify, version {__version__}"


def test_data_info_default():
    result = CliRunner().invoke(cli, ["data", "info"])
    assert result.exit_code == 0, result.output
    assert "T-shirt/top" in result.output and "10000" in result.output and "2000" in result.output
    assert "28x28x1" in result.output and "embedded" in result.output


def test_data_info_prints_a_long_folder_spec_whole(tmp_path: Path):
    """The spec heads the table on a line of its own: as the table's title it wrapped mid-word at the table's width."""
    from conftest import make_images, write_png

    root = tmp_path / "a_rather_long_folder_name_for_the_photos_of_2024"
    for i, img in enumerate(make_images(6, 8, 8, 3)):
        write_png(root / "ab"[i % 2] / f"{i}.png", img)
    result = CliRunner().invoke(cli, ["data", "info", f"folder:{root}"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert f"folder:{root}\n" in result.output


def test_data_info_json_with_subsets():
    result = CliRunner().invoke(cli, ["data", "info", "fashion-mini", "--train-size", "100", "--json"])
    summary = json.loads(result.output)
    assert summary["train"]["n"] == 100 and summary["heldout"]["n"] == 2000
    assert [c["train"] for c in summary["classes"]] == [10] * 10


def test_data_info_idx(idx_dir: Path):
    result = CliRunner().invoke(cli, ["data", "info", f"idx:{idx_dir}", "--json"])
    assert json.loads(result.output)["shape"] == [8, 8, 1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "info", "nope:/x"], "unknown data-spec prefix 'nope:'"),
        (["data", "info", "idx:/does/not/exist"], "/does/not/exist: no such folder"),
        (["data", "info", "fashion-mini", "--train-size", "20000"], "only 10000 are available"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.strip().count("\n") == 0


def test_bad_input_from_the_real_process(tmp_path: Path):
    path = write_npz(tmp_path / "bad.npz", x_train=[[1]])
    result = subprocess.run(
        [sys.executable, "-m", "densify", "data", "info", f"npz:{path}"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"Error: {path}: missing array 'y_train' (found: x_train)"
    assert result.stdout == ""


def test_resize_option_is_validated():
    result = CliRunner().invoke(cli, ["data", "info", "--resize", "32by32"])
    assert result.exit_code == 2 and "is not HxW" in result.output

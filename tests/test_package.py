"""Packaging: the public API, the shipped files, and a wheel that works outside the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import densify
from densify._resources import builtin_recipes_dir

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_complete_and_resolves():
    assert densify.__all__ == sorted(densify.__all__)
    for name in densify.__all__:
        assert getattr(densify, name) is not None
    public_modules = {"DataSplits", "ImageSet", "load_data", "parse_spec", "stratified_subset"}
    assert public_modules <= set(densify.__all__)


def test_unknown_attribute():
    with pytest.raises(AttributeError):
        densify.no_such_thing  # noqa: B018


def test_recipes_folder_is_found_from_a_checkout():
    assert builtin_recipes_dir() == ROOT / "recipes" or builtin_recipes_dir().name == "_recipes"
    assert (builtin_recipes_dir() / "none.yaml").is_file()


def test_wheel_ships_recipes_and_data_and_imports_outside_the_checkout(tmp_path: Path):
    pytest.importorskip("hatchling")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("densify-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    recipes = sorted(p.name for p in (ROOT / "recipes").glob("*.yaml"))
    assert sorted(Path(n).name for n in names if n.startswith("densify/_recipes/")) == recipes
    assert "densify/data/_embedded/fashion-mini.npz" in names and "densify/py.typed" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import densify, densify._resources as r; from densify.data import load_data;"
        "print(densify.__file__); print(r.builtin_recipes_dir()); print(len(load_data().train))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.split()
    assert out[0].startswith(str(site)) and out[1] == str(site / "densify" / "_recipes") and out[2] == "10000"


def test_full_fashion_mnist_sized_idx_stays_under_200_mb(tmp_path: Path):
    """70,000 28×28 images (the size of full Fashion-MNIST) load within 200 MB resident."""
    import numpy as np
    from conftest import write_idx

    rng = np.random.default_rng(0)
    for stem, n in (("train", 60_000), ("t10k", 10_000)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 10:18, 10:18] = rng.integers(0, 255, (n, 1, 1), dtype=np.uint8)
        write_idx(tmp_path / f"{stem}-images-idx3-ubyte", images)
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    code = (
        "from densify.data import load_data;"
        f"d = load_data('idx:{tmp_path}'); assert len(d.train) == 60000;"
        # VmHWM is this process's own peak; ru_maxrss would include the parent's size at fork.
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))"
    )
    peak_kb = int(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert peak_kb < 200 * 1024, f"peak resident {peak_kb / 1024:.0f} MB"

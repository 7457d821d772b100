from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from click.testing import CliRunner
from PIL import Image

from densify.cli import cli
from densify.data import load_data
from densify.loader import DensifiedDataset
from densify.preview import GAP, preview_grid, preview_indices
from densify.recipes import builtin_names


def run(*args: str):
    result = CliRunner().invoke(cli, list(args))
    return result


def test_list():
    result = run("recipes", "list", "--json")
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == builtin_names()
    assert all(r["intent"] and r["suits"] for r in rows)
    assert "randaugment" in run("recipes", "list").output
    assert [r["name"] for r in json.loads(run("recipes", "list", "affine-*", "--json").output)] == [
        "affine-heavy",
        "affine-light",
    ]


def test_show_prints_every_parameter_after_strength():
    shown = yaml.safe_load(run("recipes", "show", "crop-pad", "--strength", "0.5").output)
    (affine,) = shown["pipeline"]
    assert affine["translate_px"] == {"x": [-2, 2], "y": [-2, 2]} and shown["strength"] == 0.5
    assert {"interpolation", "border_mode", "fill", "rotate", "scale", "p"} <= set(affine)


def test_preview_is_replayable_and_shows_the_dataset_views(tmp_path: Path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for path in (a, b):
        result = run(
            "recipes",
            "preview",
            "affine-light",
            "--seed",
            "4",
            "--rows",
            "3",
            "--views",
            "2",
            "-o",
            str(path),
        )
        assert result.exit_code == 0, result.output
    assert a.read_bytes() == b.read_bytes()
    other = tmp_path / "c.png"
    run("recipes", "preview", "affine-light", "--seed", "5", "--rows", "3", "--views", "2", "-o", str(other))
    assert other.read_bytes() != a.read_bytes()

    # The tile in row 0, column 1 is exactly view 0 of that image in DensifiedDataset(seed=4), epoch 0.
    train = load_data().train
    index = int(preview_indices(train, 3, 4)[0])
    dataset = DensifiedDataset(train, "affine-light", views=2, seed=4, output="numpy")
    expected = dataset[index * 2][0][..., 0]
    grid = np.asarray(Image.open(a))
    factor = 3  # 28-px images are enlarged to at least 64 px
    x0 = GAP + (28 * factor + GAP) + 2 * GAP
    tile = grid[GAP : GAP + 28 * factor : factor, x0 : x0 + 28 * factor : factor, 0]
    assert np.array_equal(tile, expected)


def test_preview_grid_shape():
    train = load_data("fashion-mini", train_size=50).train
    from densify.loader import load_recipe

    grid = preview_grid(train, load_recipe("flip", output="numpy"), rows=4, views=3)
    assert grid.shape == (4 * (84 + GAP) + GAP, 4 * (84 + GAP) + 2 * GAP, 3)


def test_check_and_transforms(tmp_path: Path):
    assert "ok:" in run("recipes", "check", "flip", "randaugment").output
    listing = run("recipes", "transforms").output
    assert "Affine  (strength scales: rotate" in listing and "Lambda" not in listing


def test_preview_unknown_recipe_is_one_line():
    result = run("recipes", "preview", "afine-light")
    assert result.exit_code == 2 and "did you mean 'affine-light'" in result.output
    assert result.output.count("\n") == 1

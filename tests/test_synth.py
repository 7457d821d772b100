"""Known-factor datasets (``synth:``): the spec grammar, determinism, factors travelling with images, and the
rendering's geometry (flips and quarter turns act on the factors exactly as the docstring says)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from densify.cli import cli
from densify.data import ImageSet, load_data, parse_spec
from densify.data._synth import FACTORS, FAMILIES, parse_synth, render, sample_factors
from densify.errors import DataError, SpecError


def test_grammar_defaults_and_ranges():
    spec = parse_synth("synth:shapes?train=200&heldout=100&rotation=0:30/0:360&seed=3&size=24&hue=120")
    assert (spec.family, spec.train, spec.heldout, spec.seed, spec.size) == ("shapes", 200, 100, 3, 24)
    assert spec.sampling("rotation") == ((0.0, 30.0), (0.0, 360.0))
    assert spec.sampling("hue") == ((120.0, 120.0), (120.0, 120.0))
    assert spec.sampling("scale") == (FAMILIES["shapes"].defaults["scale"],) * 2
    assert "hue" not in spec.varying() and "rotation" in spec.varying()
    assert str(parse_spec(" synth:arrows ")) == "synth:arrows"
    assert parse_spec("synth:colours?train=60").synth.train == 60


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("synth:arrow", "'arrow'"),
        ("synth:shapes?rot=3", "'rot'"),
        ("synth:shapes?scale=0.9:0.5", "scale"),
        ("synth:shapes?scale=2", "scale='2'"),
        ("synth:shapes?train=x", "train='x'"),
        ("synth:shapes?train=2", "train=2"),
        ("synth:shapes?size=4", "size=4"),
        ("synth:shapes?seed=-1", "seed=-1"),
        ("synth:shapes?", "empty option"),
        ("synth:shapes?seed=1&seed=2", "'seed' is given twice"),
        ("synth:shapes?hue=1/2/3", "hue='1/2/3'"),
        ("synth:shapes?hue", "'hue'"),
        ("synth:shapes?hue=nan", "hue='nan'"),
        ("synth:shapes?x=a:1", "x='a'"),
    ],
)
def test_bad_specs_name_the_fault(spec, names):
    with pytest.raises(SpecError, match=None) as err:
        parse_spec(spec)
    assert names in str(err.value) and "\n" not in str(err.value)


def test_bad_spec_cli_one_line_exit_2():
    result = CliRunner().invoke(cli, ["data", "info", "synth:shapes?scale=0.9:0.5"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "scale" in result.output


def test_deterministic_balanced_and_in_range():
    a = load_data("synth:shapes?train=400&heldout=200&rotation=0:30/0:360&seed=5")
    b = load_data("synth:shapes?train=400&heldout=200&rotation=0:30/0:360&seed=5")
    c = load_data("synth:shapes?train=400&heldout=200&rotation=0:30/0:360&seed=6")
    assert np.array_equal(a.train.images, b.train.images) and np.array_equal(
        a.heldout.factors, b.heldout.factors
    )
    assert not np.array_equal(a.train.images, c.train.images)
    assert a.train.images.shape == (400, 32, 32, 3) and a.train.images.dtype == np.uint8
    assert set(a.train.class_counts()) == {100}
    rot = a.train.factor_names.index("rotation")
    assert a.train.factors[:, rot].min() >= 0 and a.train.factors[:, rot].max() <= 30
    assert a.heldout.factors[:, rot].max() > 300
    assert a.heldout_origin.startswith("rendered")


def test_factors_travel_with_subsets_and_re_render_exactly():
    data = load_data("synth:colours?train=300&heldout=120", train_size=90, heldout_size=60, seed=1)
    for split in (data.train, data.heldout):
        assert split.factors.shape == (len(split), len(FACTORS) + 1)
        assert split.factor_names[-1] == "shape"
        assert np.array_equal(render("colours", split.factors, split.labels, 32), split.images)
    sub = data.train.subset(np.array([3, 1]))
    assert np.array_equal(sub.factors, data.train.factors[[3, 1]])


def test_factors_are_validated():
    images, labels = np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1])
    with pytest.raises(DataError, match="factors"):
        ImageSet(images, labels, ("a", "b"), factors=np.zeros((3, 1)), factor_names=("f",))
    with pytest.raises(DataError, match="factor_names"):
        ImageSet(images, labels, ("a", "b"), factor_names=("f",))


def _one(family: str, label: int, **values) -> np.ndarray:
    spec = parse_synth(f"synth:{family}")
    factors, _ = sample_factors(spec, "train", 1)
    for name, value in values.items():
        factors[0, spec.factor_names.index(name)] = value
    return render(family, factors, np.array([label]), 32)[0].astype(int)


@pytest.mark.parametrize("family", ["shapes", "arrows"])
def test_flips_and_quarter_turns_act_on_factors(family):
    """A horizontal flip maps (rotation, x) to (-rotation, -x); a vertical flip to (180 - rotation, -y); a quarter
    turn counter-clockwise to (rotation + 90, (x, y) -> (y, -x)). Exact up to rounding on the symmetric grid, for
    shapes that are mirror-symmetric about their axis (all of them are)."""
    base = dict(rotation=20.0, x=0.1, y=-0.05, scale=0.7, hue=30.0, brightness=0.9)
    label = 1
    image = _one(family, label, **base)
    hflip = _one(family, label, **{**base, "rotation": -20.0, "x": -0.1})
    vflip = _one(family, label, **{**base, "rotation": 160.0, "y": 0.05})
    turn = _one(family, label, **{**base, "rotation": 110.0, "x": -0.05, "y": -0.1})
    assert np.abs(image[:, ::-1] - hflip).max() <= 2
    assert np.abs(image[::-1] - vflip).max() <= 2
    assert np.abs(np.rot90(image) - turn).max() <= 2


def test_arrows_point_where_their_class_says():
    spec = parse_synth("synth:arrows?rotation=0&x=0&y=0&train=4")
    factors, labels = sample_factors(spec, "train", 4)
    images = render("arrows", factors, labels, 32).astype(float).sum(axis=-1)
    rows, cols = np.indices(images.shape[1:])
    for image, label in zip(images, labels, strict=True):
        cy, cx = (image * rows).sum() / image.sum() - 15.5, (image * cols).sum() / image.sum() - 15.5
        direction = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}[
            FAMILIES["arrows"].classes[label]
        ]
        assert np.sign(round(cy, 1)) * (direction[0] != 0) == direction[0]
        assert np.sign(round(cx, 1)) * (direction[1] != 0) == direction[1]


def test_data_info_shows_factor_ranges():
    result = CliRunner().invoke(
        cli, ["data", "info", "synth:arrows?train=40&heldout=20&hue=0:10/200:210", "--json"]
    )
    assert result.exit_code == 0, result.output
    import json

    summary = json.loads(result.output)
    hue = next(f for f in summary["factors"] if f["name"] == "hue")
    assert 0 <= hue["train"][0] <= hue["train"][1] <= 10 and 200 <= hue["heldout"][0] <= 210
    assert [c["train"] for c in summary["classes"]] == [10, 10, 10, 10]


@pytest.mark.parametrize(
    "recipe", ["none", "flip", "vflip", "affine-light", "crop-pad", "benchmarks/manifold/recipes/hue-50.yaml"]
)
def test_view_factors_re_render_the_real_views(recipe):
    """The factors view_factors assigns to each view, rendered, are the view albumentations made (up to the
    interpolation of warps): the mapping of flips, warps and hue shifts onto factors is right."""
    from pathlib import Path

    from densify.loader import load_recipe
    from densify.manifold import view_factors

    root = Path(__file__).resolve().parents[1]
    data = load_data("synth:colours?train=30&heldout=12")
    augmenter = load_recipe(recipe if recipe.count("/") == 0 else str(root / recipe), seed=3, output="numpy")
    factors, why = view_factors(data.train, augmenter, 2)
    assert why is None
    views = np.stack([augmenter.view_of(data.train, i, v) for i in range(len(data.train)) for v in range(2)])
    rendered = render("colours", factors, np.repeat(data.train.labels, 2), 32)
    assert np.abs(rendered.astype(int) - views.astype(int)).mean() < 2.0


def test_view_factors_refuse_what_they_cannot_map():
    from densify.loader import load_recipe
    from densify.manifold import view_factors

    data = load_data("synth:shapes?train=12&heldout=8")
    for recipe, word in (
        ("affine-heavy", "shears"),
        ("colour-jitter", "contrast"),
        ("cutout", "no known effect"),
    ):
        factors, why = view_factors(data.train, load_recipe(recipe, output="numpy"), 2)
        assert factors is None and word in why
    with pytest.raises(DataError, match="known-factor"):
        view_factors(load_data("digits", train_size=20).train, load_recipe("flip", output="numpy"), 1)

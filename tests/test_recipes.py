"""Every recipe in recipes/ through the same checks, plus the recipe file format, strength and export."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from densify.cli import cli
from densify.errors import RecipeError
from densify.loader import Augmenter, load_recipe
from densify.recipes import builtin_names, effective_params, read_recipe, resolved_pipeline
from densify.recipes._model import TransformStep

# One entry per built-in recipe (a test fails when a recipe has none):
#   identity: the recipe never changes an image;
#   fades: at strength 0 every view equals its source up to rounding (all of the recipe's randomness is magnitude).
RECIPE_TABLE = {
    "none": {"identity": True, "fades": True},
    "flip": {"identity": False, "fades": False},
    "vflip": {"identity": False, "fades": False},
    "crop-pad": {"identity": False, "fades": True},
    "affine-light": {"identity": False, "fades": True},
    "affine-heavy": {"identity": False, "fades": True},
    "photometric": {"identity": False, "fades": True},
    "blur-noise": {
        "identity": False,
        "fades": False,
    },  # sigma has a floor of 0.1 and noise is applied in float
    "cutout": {"identity": False, "fades": False},  # holes shrink to 1 px but stay
    "elastic": {"identity": False, "fades": True},
    "flip-crop-cutout": {"identity": False, "fades": False},
    "digits-safe": {"identity": False, "fades": True},
    "randaugment": {"identity": False, "fades": False},  # autocontrast, equalize have no magnitude
    "trivialaugment": {"identity": False, "fades": False},
    "resized-crop": {"identity": False, "fades": True},
    "colour-jitter": {"identity": False, "fades": True},
    "perspective": {"identity": False, "fades": True},
    "photo-standard": {"identity": False, "fades": False},  # the flip has no magnitude
}
INPUTS = {"gray28": (28, 28, 1), "rgb32": (32, 32, 3)}


def _images(shape, n=6, seed=0):
    """Smooth images with structure (a gradient and a bright square), so every transform has an effect."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    yy, xx = np.mgrid[:h, :w]
    out = []
    for _ in range(n):
        base = (yy * 3 + xx * 5 + rng.integers(0, 60)) % 200 + 20
        img = np.repeat(base[..., None], c, axis=-1).astype(np.uint8)
        y0, x0 = rng.integers(4, h // 2, size=2)
        img[y0 : y0 + 6, x0 : x0 + 8] = 250
        out.append(img)
    return out


def test_every_builtin_recipe_has_a_table_entry():
    assert set(RECIPE_TABLE) == set(builtin_names())
    assert len(builtin_names()) >= 12


@pytest.mark.parametrize("name", sorted(RECIPE_TABLE))
def test_recipe_describes_itself(name):
    recipe = read_recipe(name)
    assert recipe.name == name and recipe.intent and recipe.suits and recipe.source.name == f"{name}.yaml"
    assert name == "none" or recipe.avoid


@pytest.mark.parametrize("shape", INPUTS.values(), ids=INPUTS.keys())
@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("name", sorted(RECIPE_TABLE))
def test_recipe_contract(name, strength, shape):
    aug = load_recipe(name, strength=strength, seed=3, output="numpy")
    changed = []
    for index, image in enumerate(_images(shape)):
        before = image.copy()
        views = [aug.augment(image, index=index, view=v) for v in range(4)]
        assert np.array_equal(image, before), "the input was modified in place"
        for view in views:
            assert view.shape == shape and view.dtype == np.uint8
        assert np.array_equal(views[0], aug.augment(image, index=index, view=0)), "same key, different view"
        changed += [int(np.abs(v.astype(int) - image).max()) for v in views]
    if RECIPE_TABLE[name]["identity"]:
        assert max(changed) == 0
    elif strength == 0.0 and RECIPE_TABLE[name]["fades"]:
        assert max(changed) <= 1  # RandomGamma at gamma 1 still rounds through its lookup table
    elif strength > 0:
        assert max(changed) > 1


@pytest.mark.parametrize("name", sorted(RECIPE_TABLE))
def test_augmenter_pickles(name):
    aug = load_recipe(name, strength=0.7, seed=5, output="numpy")
    image = _images((28, 28, 1))[0]
    clone = pickle.loads(pickle.dumps(aug))
    for view in range(3):
        assert np.array_equal(
            aug.augment(image, index=9, view=view), clone.augment(image, index=9, view=view)
        )


def test_seed_epoch_index_and_view_all_matter():
    image = _images((28, 28, 1))[0]
    a = load_recipe("affine-heavy", seed=1, output="numpy")
    reference = a.augment(image, index=0, view=0, epoch=0)
    others = [
        a.augment(image, index=1, view=0, epoch=0),
        a.augment(image, index=0, view=1, epoch=0),
        a.augment(image, index=0, view=0, epoch=1),
        load_recipe("affine-heavy", seed=2, output="numpy").augment(image, index=0, view=0, epoch=0),
    ]
    assert all(not np.array_equal(reference, o) for o in others)


# --- strength ----------------------------------------------------------------------------------------------------
def test_strength_scales_magnitudes_toward_their_neutral_values():
    step = TransformStep(
        "Affine", {"rotate": [-10, 10], "scale": [0.8, 1.2], "translate_px": {"x": [-4, 4]}, "p": 0.8}
    )
    half = effective_params(step, 0.5)
    assert half["rotate"] == [-5, 5] and half["scale"] == pytest.approx([0.9, 1.1])
    assert half["translate_px"] == {"x": [-2, 2]} and half["p"] == 0.8
    assert effective_params(TransformStep("Posterize", {"num_bits": 3}), 0.5) == {"num_bits": 5}


def test_strength_scales_defaults_the_recipe_left_out():
    noise = effective_params(TransformStep("GaussNoise", {"p": 1.0}), 0.5)
    assert noise["std_range"] == pytest.approx((0.1, 0.22))  # albumentations' default (0.2, 0.44), halved


def test_show_reports_every_parameter_after_strength():
    (affine,) = resolved_pipeline(read_recipe("affine-heavy"), 0.5)
    assert affine["rotate"] == pytest.approx((-22.5, 22.5)) and affine["p"] == 1.0
    assert "interpolation" in affine and "fill_mask" in affine  # defaults made explicit


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", True])
def test_strength_out_of_range(bad):
    with pytest.raises(RecipeError, match="strength must be a number in"):
        load_recipe("flip", strength=bad)


# --- the file format ---------------------------------------------------------------------------------------------
def _write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


HEAD = "schema_version: 1\nname: mine\nintent: test\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("schema_version: 1\nname: [unclosed\n", r"malformed YAML \(line 3, column 1\)"),
        (HEAD + "pipeline: []\ncolour: red\n", r"colour: unknown key; allowed keys: schema_version, name"),
        (
            HEAD + "pipeline:\n  - Afine: {rotate: 3}\n",
            r"recipe 'mine': pipeline\[0\]\.Afine: unknown albumentations transform 'Afine'; did you mean Affine",
        ),
        (
            HEAD + "pipeline:\n  - HorizontalFlip: {}\n  - Affine: {rotate: [-10, 10], p: 1.5}\n",
            r"pipeline\[1\]\.Affine\.p: Input should be less than or equal to 1 \(got 1.5\)",
        ),
        (
            HEAD + "pipeline:\n  - Affine: {rotate: x}\n",
            r"pipeline\[0\]\.Affine\.rotate: Input should be a valid tuple",
        ),
        (
            HEAD + "pipeline:\n  - Affine: {rotation: 3}\n",
            r"pipeline\[0\]\.Affine\.rotation: unknown parameter of Affine; allowed: .*rotate",
        ),
        (
            HEAD + "pipeline:\n  - Lambda: {}\n",
            r"transform 'Lambda' is not allowed in recipes \(runs arbitrary code\)",
        ),
        (
            HEAD + "pipeline: !!python/object/apply:os.system ['echo pwned']\n",
            r"malformed YAML.*could not determine a constructor",
        ),
        ("!!python/object:os.system {}\n", r"malformed YAML"),
        (
            HEAD + "pipeline:\n  - one_of: {p: 0.5, transforms: [], extra: 1}\n",
            r"pipeline\[0\]\.one_of\.extra: unknown key; allowed keys: p, transforms",
        ),
        (
            HEAD + "pipeline:\n  - some_of: {n: 3, transforms: [{NoOp: {}}]}\n",
            r"some_of\.n: 3 is more than the 1 transforms",
        ),
        (
            HEAD + "pipeline:\n  - HorizontalFlip: {}\n    VerticalFlip: {}\n",
            r"pipeline\[0\]: a step is a mapping with one key",
        ),
        (
            HEAD + "pipeline:\n  - HorizontalFlip\n",
            r"pipeline\[0\]: a step is a mapping; write 'HorizontalFlip: \{\}'",
        ),
        (
            "schema_version: 2\nname: mine\nintent: x\npipeline: []\n",
            r"schema_version: 2 is not supported; this densify reads \[1\]",
        ),
        ("name: mine\nintent: x\npipeline: []\n", r"schema_version: missing required key"),
        ("schema_version: 1\nname: Mine!\nintent: x\npipeline: []\n", r"name: String should match pattern"),
        ("- a\n- b\n", r"a recipe file must be a mapping, got list"),
        (HEAD + "pipeline:\n  - include: nonexistent-recipe\n", r"unknown recipe 'nonexistent-recipe'"),
    ],
    ids=[
        "malformed",
        "unknown-key",
        "unknown-transform",
        "out-of-range",
        "wrong-type",
        "unknown-param",
        "lambda",
        "python-tag",
        "python-object",
        "block-extra",
        "some-of-n",
        "two-keys",
        "bare-name",
        "version",
        "no-version",
        "bad-name",
        "not-mapping",
        "bad-include",
    ],
)
def test_bad_recipe_files(tmp_path: Path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(RecipeError, match=message) as info:
        read_recipe(str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    result = CliRunner().invoke(cli, ["recipes", "check", str(path)])
    assert result.exit_code == 2 and result.output.startswith("Error: ") and result.output.count("\n") == 1


def test_include_cycle(tmp_path: Path):
    _write(tmp_path, "schema_version: 1\nname: a\nintent: x\npipeline: [{include: b.yaml}]\n", "a.yaml")
    _write(tmp_path, "schema_version: 1\nname: b\nintent: x\npipeline: [{include: ./a.yaml}]\n", "b.yaml")
    with pytest.raises(RecipeError, match=r"include cycle: a\.yaml -> b\.yaml -> a\.yaml"):
        read_recipe(str(tmp_path / "a.yaml"))


def test_include_and_blocks_compose(tmp_path: Path):
    path = _write(
        tmp_path,
        HEAD
        + "pipeline:\n  - include: flip\n  - some_of:\n      n: 2\n      replace: true\n      transforms:\n"
        "        - include: crop-pad\n        - one_of: {transforms: [{NoOp: {}}, {Equalize: {p: 1}}]}\n",
    )
    recipe = read_recipe(str(path))
    assert [type(s).__name__ for s in recipe.pipeline] == ["TransformStep", "BlockStep"]
    some_of = recipe.pipeline[1]
    assert (some_of.n, some_of.replace, some_of.p) == (2, True, 1.0)
    assert some_of.steps[0].name == "Affine" and some_of.steps[1].kind == "one_of"
    views = [
        Augmenter(recipe, seed=0, output="numpy").augment(_images((28, 28, 1))[0], index=i) for i in range(8)
    ]
    assert len({v.tobytes() for v in views}) > 1


def test_unknown_builtin_name_suggests_the_closest():
    with pytest.raises(RecipeError, match="unknown recipe 'fl1p'; did you mean 'flip'"):
        read_recipe("fl1p")


def test_golden_schema_v1_file_keeps_loading_and_compiling_the_same():
    """A schema-v1 file written when v1 was released must keep giving the same compiled pipeline."""
    golden = Path(__file__).parent / "golden"
    recipe = read_recipe(str(golden / "recipe-v1.yaml"))
    expected = json.loads((golden / "recipe-v1.expected.json").read_text())
    assert json.loads(json.dumps(resolved_pipeline(recipe, 0.5))) == expected


# --- interoperability with albumentations' own format ------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize("name", ["randaugment", "flip-crop-cutout", "blur-noise"])
def test_export_import_round_trip_gives_identical_views(tmp_path: Path, name, suffix):
    out = tmp_path / f"{name}{suffix}"
    result = CliRunner().invoke(cli, ["recipes", "export", name, "-o", str(out), "--strength", "0.8"])
    assert result.exit_code == 0, result.output
    original = load_recipe(name, strength=0.8, seed=11, output="numpy")
    imported = load_recipe(str(out), seed=11, output="numpy")
    assert imported.recipe.name == name
    for index, image in enumerate(_images((32, 32, 3))):
        assert np.array_equal(original.augment(image, index=index), imported.augment(image, index=index))


def test_exported_file_loads_in_albumentations(tmp_path: Path):
    import albumentations as A

    out = tmp_path / "r.json"
    CliRunner().invoke(cli, ["recipes", "export", "affine-light", "-o", str(out)])
    compose = A.load(str(out))
    ours = load_recipe("affine-light", output="numpy").compose
    assert A.to_dict(compose)["transform"] == A.to_dict(ours)["transform"]


def test_albumentations_file_with_a_lambda_is_refused(tmp_path: Path):
    path = _write(
        tmp_path,
        json.dumps(
            {
                "__version__": "2.0.8",
                "transform": {
                    "__class_fullname__": "Compose",
                    "p": 1.0,
                    "transforms": [{"__class_fullname__": "Lambda", "p": 1.0}],
                },
            }
        ),
        "x.json",
    )
    with pytest.raises(
        RecipeError, match=r"transform\.transforms\[0\]\.Lambda: transform 'Lambda' is not allowed"
    ):
        read_recipe(str(path))


# --- the user's own recipe folders --------------------------------------------------------------------------------
def _user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "tiny-shift.yaml").write_text(
        "schema_version: 1\nname: tiny-shift\nintent: one-pixel shifts\npipeline:\n"
        "  - Affine: {translate_px: [-1, 1], p: 1.0}\n"
    )
    (folder / "notes.txt").write_text("not a recipe")
    return folder


def test_recipe_folders_from_the_environment(tmp_path: Path, monkeypatch):
    folder = _user_folder(tmp_path)
    with pytest.raises(RecipeError, match="unknown recipe 'tiny-shift'"):
        read_recipe("tiny-shift")
    monkeypatch.setenv("DENSIFY_RECIPE_PATH", str(folder))
    assert read_recipe("tiny-shift").source == folder / "tiny-shift.yaml"
    assert "tiny-shift" in [r.name for r in densify_list()]


def densify_list(*folders):
    from densify.recipes import list_recipes

    return list_recipes("*", folders)


def test_list_and_check_a_folder(tmp_path: Path):
    folder = _user_folder(tmp_path)
    assert "tiny-shift" in [r.name for r in densify_list(folder)]
    listed = json.loads(CliRunner().invoke(cli, ["recipes", "list", "--dir", str(folder), "--json"]).output)
    assert "tiny-shift" in [r["name"] for r in listed]
    result = CliRunner().invoke(cli, ["recipes", "check", str(folder)])
    assert result.exit_code == 0 and "recipe 'tiny-shift'" in result.output
    (folder / "broken.yaml").write_text(
        "schema_version: 1\nname: broken\nintent: x\npipeline: [{Nope: {}}]\n"
    )
    result = CliRunner().invoke(cli, ["recipes", "check", str(folder)])
    assert result.exit_code == 2 and "broken.yaml: recipe 'broken': pipeline[0].Nope" in result.output

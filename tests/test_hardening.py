"""Issue 11's examples, each a test: bad input gets one line and exit code 2, quickly, and nothing is lost."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import balanced_labels, make_images, write_idx, write_npz, write_png

from densify.cli import cli
from densify.errors import DataError, RecipeError


def refused(args: list[str], match: str, seconds: float = 10.0) -> str:
    """Run the CLI; assert exit code 2, one line on stderr that contains ``match``, no traceback, and speed."""
    start = time.perf_counter()
    result = CliRunner().invoke(cli, args)
    took = time.perf_counter() - start
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and match in lines[0], result.output
    assert took < seconds, f"took {took:.1f} s"
    return lines[0]


def recipe_file(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


HEAD = "schema_version: 1\nname: r\nintent: test\n"


# --- data -----------------------------------------------------------------------------------------------


def test_huge_label_is_refused_without_allocating(tmp_path):
    labels = balanced_labels(20, 2)
    labels[3] = 10**12
    path = write_npz(tmp_path / "d.npz", x_train=make_images(20), y_train=labels)
    refused(["data", "info", f"npz:{path}"], "implies 1,000,000,000,001 classes", seconds=5)


def test_empty_training_array(tmp_path):
    path = write_npz(tmp_path / "d.npz", x_train=np.zeros((0, 8, 8), np.uint8), y_train=np.zeros(0, np.int64))
    refused(["data", "info", f"npz:{path}"], "x_train holds no images")


def test_npy_header_claiming_billions_is_refused_before_allocating(tmp_path):
    path = write_npz(tmp_path / "d.npz", x_train=make_images(20), y_train=balanced_labels(20, 2))
    bad = tmp_path / "bad.npz"
    import zipfile

    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            raw = src.read(info)
            if info.filename == "x_train.npy":
                raw = raw.replace(b"(20, 8, 8)", b"(99999999, 8, 8)")
            dst.writestr(info.filename, raw)
    refused(["data", "info", f"npz:{bad}"], "declares", seconds=5)


def test_idx_header_claiming_billions_is_refused_before_allocating(tmp_path):
    root = tmp_path / "mnist"
    root.mkdir()
    write_idx(root / "train-images-idx3-ubyte", make_images(60))
    write_idx(root / "train-labels-idx1-ubyte", balanced_labels(60, 10).astype(np.uint8))
    header = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 4_000_000_000, 28, 28)
    (root / "t10k-images-idx3-ubyte").write_bytes(header + bytes(100))
    write_idx(root / "t10k-labels-idx1-ubyte", balanced_labels(20, 10).astype(np.uint8))
    refused(["data", "info", f"idx:{root}"], "declares", seconds=5)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height pixels (PIL refuses it as a decompression bomb on open)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_png_is_a_clean_error(tmp_path):
    root = tmp_path / "imgs"
    for cls in ("a", "b"):
        for i in range(3):
            write_png(root / cls / f"{i}.png", make_images(1, 8, 8, 3, seed=i)[0])
    _png_header_only(root / "a" / "huge.png", 20_000, 20_000)
    refused(["data", "info", f"folder:{root}"], "huge.png: cannot read image")


def test_class_folder_name_that_is_not_utf8(tmp_path):
    root = tmp_path / "imgs"
    names = [b"caf\xe9", b"dog"]  # Latin-1 bytes: not valid UTF-8
    for k, raw in enumerate(names):
        folder = (
            Path(bytes(root) + b"/" + raw)
            if isinstance(root, bytes)
            else root / raw.decode("utf-8", "surrogateescape")
        )
        for i in range(3):
            write_png(folder / f"{i}.png", make_images(1, 8, 8, 3, seed=k * 3 + i)[0])
    from densify.data import load_data

    data = load_data(f"folder:{root}")
    assert data.classes == ("caf\\xe9", "dog")
    for name in data.classes:
        name.encode("utf-8")  # printable, so JSON, HTML and plots can hold it


def test_heldout_class_missing_from_training_is_reported(tmp_path):
    x = make_images(30)
    y = balanced_labels(30, 3)
    y_test = np.array([0, 1, 2, 2])
    y[y == 2] = 1  # class 2 has no training image
    path = write_npz(tmp_path / "d.npz", x_train=x, y_train=y, x_test=make_images(4, seed=1), y_test=y_test)
    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["data", "info", f"npz:{path}"])
    assert result.exit_code == 0 and time.perf_counter() - start < 10
    from densify.audit import AuditSettings, run_audit

    with pytest.raises(DataError, match="class '2' has held-out images but no training images"):
        run_audit(AuditSettings(data=f"npz:{path}", train=False), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("side", [1, 3])
def test_images_too_small_for_the_encoder_are_refused_up_front(tmp_path, side):
    path = write_npz(tmp_path / "d.npz", x_train=make_images(40, side, side), y_train=balanced_labels(40, 2))
    refused(["evaluate", "--data", f"npz:{path}", "--no-train", "--out", str(tmp_path / "o")], "at least 8x8")
    assert not (tmp_path / "o").exists()


# --- recipes --------------------------------------------------------------------------------------------


def test_non_finite_parameter(tmp_path):
    path = recipe_file(tmp_path, HEAD + "pipeline:\n  - Affine: {rotate: [-.inf, .inf]}\n")
    refused(["recipes", "check", str(path)], "rotate[0]: -inf is not a finite number")


def test_recipe_nested_thousands_of_levels_deep(tmp_path):
    depth = 3000
    text = HEAD + "pipeline: [" + "{one_of: {transforms: [" * depth + "{Blur: {}}" + "]}}" * depth + "]\n"
    path = recipe_file(tmp_path, text)
    refused(["recipes", "check", str(path)], "nested too deeply")


def test_recipe_nested_past_the_depth_limit(tmp_path):
    depth = 40
    text = HEAD + "pipeline: [" + "{one_of: {transforms: [" * depth + "{Blur: {}}" + "]}}" * depth + "]\n"
    path = recipe_file(tmp_path, text)
    refused(["recipes", "check", str(path)], "nested more than 32 levels")


@pytest.mark.parametrize(
    ("transform", "why"),
    [
        ("CoarseDropout3D", "unknown albumentations transform"),
        ("CubicSymmetry", "unknown albumentations transform"),
        ("DualTransform", "unknown albumentations transform"),
        ("ImageOnlyTransform", "unknown albumentations transform"),
        ("ToFloat", "outputs float images"),
        ("Normalize", "outputs float images"),
    ],
)
def test_transforms_that_do_not_work_on_images_alone_are_refused(tmp_path, transform, why):
    path = recipe_file(tmp_path, HEAD + f"pipeline:\n  - {transform}: {{}}\n")
    refused(["recipes", "check", str(path)], why)


def test_crop_larger_than_the_images_is_refused_before_the_audit(tmp_path):
    path = recipe_file(tmp_path, HEAD + "pipeline:\n  - RandomCrop: {height: 64, width: 64, p: 0.1}\n")
    out = tmp_path / "o"
    refused(["evaluate", "--recipes", str(path), "--no-train", "--out", str(out)], "fails on 28x28x1 images")
    assert not out.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["coverage", "--encoder", "pixels", "--recipe"],
        ["train", "--steps", "2", "--recipe"],
        ["recipes", "preview"],
    ],
    ids=["coverage", "train", "preview"],
)
def test_a_recipe_that_does_not_fit_the_images_is_one_line_in_every_command(tmp_path, command):
    """coverage, train and preview ended in albumentations' traceback (only evaluate checked the recipe first);
    the line names the user's file as well as the recipe."""
    path = recipe_file(tmp_path, HEAD + "pipeline:\n  - RandomCrop: {height: 64, width: 64}\n")
    message = refused([*command, str(path), "--data", "fashion-mini"], "fails on 28x28x1 images", seconds=30)
    assert message.startswith(f"Error: {path}: recipe 'r': pipeline[0].RandomCrop"), message


def test_a_recipe_that_does_not_fit_the_images_is_refused_by_the_python_api(tmp_path):
    from densify import DensifiedDataset, load_data
    from densify.train import TrainConfig, train_recipes

    path = recipe_file(tmp_path, HEAD + "pipeline:\n  - RandomCrop: {height: 64, width: 64}\n")
    data = load_data("fashion-mini", train_size=50, heldout_size=20)
    with pytest.raises(RecipeError, match="fails on 28x28x1 images"):
        DensifiedDataset(data.train, str(path))  # at construction, not in a DataLoader worker
    with pytest.raises(RecipeError, match="fails on 28x28x1 images"):
        train_recipes(data, ["none", str(path)], seeds=[0], config=TrainConfig(steps=2), jobs=1)
    from densify.loader import load_recipe

    assert load_recipe("flip")._named() == "recipe 'flip'"  # a built-in is named without its packaged path


def test_three_channel_transform_on_grayscale_data_is_refused(tmp_path):
    from densify.loader import load_recipe

    path = recipe_file(tmp_path, HEAD + "pipeline:\n  - RandomFog: {p: 0.5}\n")
    augmenter = load_recipe(path)
    augmenter.check_shape((16, 16, 3))
    with pytest.raises(RecipeError, match=r"pipeline\[0\]\.RandomFog fails on 16x16x1 images"):
        augmenter.check_shape((16, 16, 1))


@pytest.mark.parametrize("transform", ["RandomRotate90", "MedianBlur", "ToSepia"])
def test_transforms_without_a_strict_argument_build(tmp_path, transform):
    path = recipe_file(tmp_path, HEAD + f"pipeline:\n  - {transform}: {{p: 1}}\n")
    result = CliRunner().invoke(cli, ["recipes", "check", str(path)])
    assert result.exit_code == 0, result.output
    bad = recipe_file(tmp_path, HEAD + f"pipeline:\n  - {transform}: {{p: 1, nonsense: 3}}\n", "bad.yaml")
    refused(["recipes", "check", str(bad)], f"nonsense: unknown parameter of {transform}")


#: the parameters a listed transform cannot do without (albumentations gives them no default); every other
#: listed transform must build from ``{p: 1}`` alone. A new albumentations release that adds a required
#: parameter, or a transform densify lists but cannot build, fails the test below by name.
REQUIRED = {  # sizes equal the 32x32 test image: densify recipes keep the image shape
    "CenterCrop": {"height": 32, "width": 32},
    "Crop": {"x_max": 32, "y_max": 32},
    "CropAndPad": {"px": 2},
    "GridElasticDeform": {"num_grid_xy": [4, 4], "magnitude": 2},
    "LongestMaxSize": {"max_size": 32},
    "PadIfNeeded": {"min_height": 32, "min_width": 32},
    "RandomCrop": {"height": 32, "width": 32},
    "RandomResizedCrop": {"size": [32, 32]},
    "RandomSizedCrop": {"min_max_height": [16, 32], "size": [32, 32]},
    "Resize": {"height": 32, "width": 32},
    "SmallestMaxSize": {"max_size": 32},
    "TimeMasking": {"time_mask_param": 8},
}
#: transforms that change the size by design: tested followed by a resize back, as a recipe must use them
RESIZED_AFTER = ("RandomCropFromBorders", "RandomScale")


def test_every_listed_transform_builds_and_runs_through_a_recipe(tmp_path):
    """One shared check for every transform ``densify recipes transforms`` lists: it compiles in a recipe (the
    path a user's file takes) and runs on an RGB image, and the listing and the table above agree."""
    import warnings

    from densify.loader import load_recipe
    from densify.recipes._albu import allowed_transforms

    listed = list(allowed_transforms())
    assert len(listed) > 80 and not set(REQUIRED) - set(listed)
    failed = {}
    for name in listed:
        params = {"p": 1, **REQUIRED.get(name, {})}
        recipe = HEAD.replace("name: r", f"name: t-{name.lower()}") + f"pipeline:\n  - {name}: {params}\n"
        if name in RESIZED_AFTER:
            recipe += "  - Resize: {height: 32, width: 32}\n"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                augmenter = load_recipe(recipe_file(tmp_path, recipe, f"{name}.yaml"), output="numpy")
                view = augmenter.augment(make_images(1, 32, 32, 3)[0], index=0)
            assert view.dtype == np.uint8 and view.ndim == 3
        except Exception as exc:  # collected so that one run names every transform that fails
            failed[name] = str(exc).splitlines()[0][:160]
    assert not failed, failed

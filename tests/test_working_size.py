"""The working-size rule (issue 13): recipes augment stored pixels; encoders and models see the working size.

Tests build their own small photo-like folders (smooth RGB JPEGs of two sizes); no photo set is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from densify.cli import cli
from densify.data import (
    AUTO_SIDE,
    DataSplits,
    ImageSet,
    at_working_size,
    load_data,
    resize_images,
    working_size,
)
from densify.data._working import resize_image
from densify.errors import DataError


def _photo(rng: np.random.Generator, label: int, h: int, w: int) -> np.ndarray:
    """A smooth RGB 'photograph': a class-coloured gradient with a bright blob in the upper half."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x, y, 1 - x], axis=-1)[..., np.roll(np.arange(3), label)]
    cy, cx = rng.uniform(0.15, 0.35) * h, rng.uniform(0.2, 0.8) * w
    blob = np.exp(-(((np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2) / (0.02 * h * w)))
    image = 0.6 * base + 0.4 * blob[..., None] + rng.normal(0, 0.03, (h, w, 3))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """train/ and test/ with 3 classes of 48x48 JPEGs, and two training images 48x40 (a mixed-size folder)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for split, n in (("train", 24), ("test", 12)):
        for label, name in enumerate(("beach", "forest", "street")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                w = 40 if split == "train" and label == 0 and i < 2 else 48
                Image.fromarray(_photo(rng, label, 48, w)).save(folder / f"{i}.jpg", quality=90)
    return root


@pytest.mark.parametrize(
    ("shape", "image_size", "expected"),
    [
        ((28, 28, 1), "auto", (28, 28)),  # small images stay as they are
        ((AUTO_SIDE, AUTO_SIDE, 3), "auto", (AUTO_SIDE, AUTO_SIDE)),
        ((150, 150, 3), "auto", (AUTO_SIDE, AUTO_SIDE)),
        ((150, 100, 3), "auto", (AUTO_SIDE, round(100 * AUTO_SIDE / 150))),  # aspect kept
        ((150, 100, 3), 64, (64, 43)),
        ((20, 10, 3), 40, (40, 20)),  # an explicit side may enlarge
        ((150, 100, 3), (24, 40), (24, 40)),
        ((150, 100, 3), None, (150, 100)),
        ((150, 100, 3), "stored", (150, 100)),
    ],
)
def test_working_size_closed_forms(shape, image_size, expected):
    assert working_size(shape, image_size) == expected


@pytest.mark.parametrize("bad", [0, -3, "big", (0, 4), (4,), 2.5, True])
def test_bad_image_size_is_one_line(bad):
    with pytest.raises(DataError, match="image_size must be"):
        working_size((8, 8), bad)


def test_resize_keeps_one_channel_and_averages_areas():
    gray = np.zeros((1, 4, 4, 1), np.uint8)
    gray[0, :2, :2] = 200  # one 2x2 block of 200 in a 4x4 image: area interpolation averages each block
    out = resize_images(gray, (2, 2))
    assert out.shape == (1, 2, 2, 1)
    assert out[0, :, :, 0].tolist() == [[200, 0], [0, 0]]
    same = np.zeros((3, 5, 5, 3), np.uint8)
    assert resize_images(same, (5, 5)) is same


def test_working_size_keeps_the_stored_pixels_as_sources(photos: Path):
    data = load_data(f"folder:{photos}", image_size=16)
    assert data.train.shape == (16, 16, 3) and data.train.source_shape == (48, 48, 3)
    assert data.heldout.shape == (16, 16, 3)
    np.testing.assert_array_equal(data.train.images, resize_images(data.train.sources, (16, 16)))
    assert any(n.startswith("working size 16x16: recipes augment the stored 48x48") for n in data.notes)
    assert any("resized to the most common, 48x48" in n for n in data.notes)  # the two 48x40 files
    # subsets keep the sources; applying the rule again starts from the stored pixels
    sub = data.train.subset(np.arange(5))
    np.testing.assert_array_equal(sub.sources, data.train.sources[:5])
    again = at_working_size(data, 8)
    np.testing.assert_array_equal(again.train.images, resize_images(data.train.sources, (8, 8)))
    assert at_working_size(again, "stored").train.sources is None
    assert at_working_size(again, "stored").train.shape == (48, 48, 3)
    # small images are untouched by the default
    assert load_data("fashion-mini").train.sources is None


def test_views_are_augmented_as_stored_then_resized(photos: Path):
    from densify.estimate import check_views, view_batches
    from densify.loader import DensifiedDataset, load_recipe

    data = load_data(f"folder:{photos}", image_size=16)
    flip = load_recipe("crop-pad", seed=3, output="numpy")
    batch = next(view_batches(data.train, flip, views=2, batch=6))
    assert batch.shape == (6, 16, 16, 3)
    for j in range(6):
        index, view = divmod(j, 2)
        expected = resize_image(flip.augment(data.train.sources[index], index=index, view=view), (16, 16))
        np.testing.assert_array_equal(batch[j], expected)
    dataset = DensifiedDataset(data.train, flip, views=2, output="numpy")
    np.testing.assert_array_equal(dataset[3][0], batch[3])  # the trainer sees the same views
    none = load_recipe("none", output="numpy")
    clean = next(view_batches(data.train, none, views=1, batch=8))
    np.testing.assert_array_equal(clean, data.train.images[:8])  # 'none' views are the working clean images
    assert check_views(data.train, none, 1)["degenerate"] == 0.0


def test_an_audit_at_a_working_size_end_to_end(photos: Path, tmp_path: Path):
    from densify.audit import AuditSettings, run_audit

    settings = AuditSettings(
        data=f"folder:{photos}",
        recipes=("flip", "vflip"),
        encoder="pixels",
        train=False,
        n_boot=100,
        image_size=16,
    )
    report = run_audit(settings, tmp_path / "out")
    assert report["data"]["shape"] == [16, 16, 3] and report["data"]["stored_shape"] == [48, 48, 3]
    assert report["settings"]["image_size"] == 16
    assert report["coverage"]["none"]["metrics"]["coverage_gain"]["value"] == 0
    html = (tmp_path / "out" / "report.html").read_text()
    assert "working size 16x16" in html and "--image-size 16" in html
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["run_id"] == report["run_id"]


def _invoke(args: list[str]):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_that_loads_data_takes_the_image_options(photos: Path, tmp_path: Path):
    """--resize, --channels and --image-size work on data info, recipes preview, coverage, train and evaluate."""
    spec = f"folder:{photos}"
    common = ["--resize", "40x40", "--channels", "1", "--image-size", "20"]
    out = _invoke(["data", "info", spec, *common, "--json"])
    info = json.loads(out)
    assert info["shape"] == [20, 20, 1] and info["stored_shape"] == [40, 40, 1]
    assert not any("most common" in n for n in info["notes"])  # --resize decided the size
    png = tmp_path / "p.png"
    _invoke(
        ["recipes", "preview", "flip", "--data", spec, *common, "--rows", "2", "--views", "2", "-o", str(png)]
    )
    from PIL import Image

    with Image.open(png) as grid:
        assert grid.size[1] > 2 * 40  # tiles at the stored 40 px, not the working 20 px
    cov = tmp_path / "cov.json"
    _invoke(["coverage", "--data", spec, "--recipes", "flip", "--encoder", "pixels", *common, "--no-cache",
             "--json", str(cov)])  # fmt: skip
    assert json.loads(cov.read_text())["data"]["n_train"] == 72
    _invoke(["train", "--data", spec, "--recipes", "flip", "--seeds", "1", "--steps", "2", "--batch", "8",
             *common, "--out", str(tmp_path / "tr")])  # fmt: skip
    run = json.loads((tmp_path / "tr" / "runs" / "flip-seed0.json").read_text())
    assert run["result"]["steps"] == 2
    _invoke(["evaluate", "--data", spec, "--recipes", "flip", "--encoder", "pixels", "--no-train", *common,
             "--n-boot", "100", "--out", str(tmp_path / "ev")])  # fmt: skip
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["settings"]["resize"] == [40, 40] and report["settings"]["channels"] == 1
    assert report["data"]["shape"] == [20, 20, 1]


def test_bad_image_options_are_one_line(photos: Path):
    for args, match in (
        (["--image-size", "huge"], "is not auto, stored"),
        (["--resize", "4by4"], "is not HxW"),
        (["--channels", "2"], "'2' is not one of"),
    ):
        result = CliRunner().invoke(cli, ["data", "info", f"folder:{photos}", *args])
        assert result.exit_code == 2 and match in result.output, result.output
    from densify.audit import AuditSettings
    from densify.audit._plan import SettingsError, plan_audit

    with pytest.raises(SettingsError, match="image_size must be"):
        plan_audit(AuditSettings(image_size="large"))
    with pytest.raises(SettingsError, match="resize must be"):
        plan_audit(AuditSettings(resize=(0, 4)))


def test_an_audit_stores_large_photos_at_the_cap(tmp_path: Path):
    """The audit's plan stores a folder of photos larger than stored_cap at the cap (recipes augment those), and at
    their full size under --image-size stored."""
    from PIL import Image

    from densify.audit import AuditSettings
    from densify.audit._plan import plan_audit

    rng = np.random.default_rng(0)
    for label, name in enumerate(("beach", "forest")):
        (tmp_path / name).mkdir()
        for i in range(4):
            Image.fromarray(_photo(rng, label, 300, 520)).save(tmp_path / name / f"{i}.jpg", quality=90)
    spec = f"folder:{tmp_path}"
    data = plan_audit(AuditSettings(data=spec, heldout_size=2, recipes=["flip"], train=False, k=1)).data
    assert (data.train.source_shape, data.train.shape) == ((148, 256, 3), (18, 32, 3))
    assert any("stored at 148x256" in n for n in data.notes)
    full = plan_audit(
        AuditSettings(data=spec, heldout_size=2, recipes=["flip"], train=False, k=1, image_size="stored")
    )
    assert full.data.train.shape == (300, 520, 3)


def test_imageset_refuses_sources_that_do_not_match():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(DataError, match="sources must be"):
        ImageSet(images, np.array([0, 1]), ("a", "b"), sources=np.zeros((3, 8, 8, 3), np.uint8))
    ok = ImageSet(images, np.array([0, 1]), ("a", "b"), sources=np.zeros((2, 8, 8, 3), np.uint8))
    DataSplits("x", ok, ok)


def test_preview_grids_show_stored_pixels_and_shrink_large_photos(photos: Path):
    from densify.loader import load_recipe
    from densify.preview import GAP, TILE, preview_grid

    data = load_data(f"folder:{photos}", image_size=16)
    flip = load_recipe("flip", output="numpy")
    stored = preview_grid(data.train, flip, rows=2, views=3)
    factor = -(-TILE // 48)
    assert stored.shape == (2 * (48 * factor + GAP) + GAP, 4 * (48 * factor + GAP) + 2 * GAP, 3)
    shrunk = preview_grid(data.train, flip, rows=2, views=3, max_side=24)
    factor = -(-TILE // 24)
    assert shrunk.shape == (2 * (24 * factor + GAP) + GAP, 4 * (24 * factor + GAP) + 2 * GAP, 3)

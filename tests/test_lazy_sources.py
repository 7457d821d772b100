"""Sources larger than memory: raw IDX files are memory-mapped, folders are decoded once into a mapped cache, and
either gives the same pixels, subsets and metrics as reading everything into memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import balanced_labels, make_images, write_idx, write_png

from densify.data import load_data
from densify.data._lazy import decoded_path, is_mapped
from densify.errors import DataError


@pytest.fixture
def lazy(monkeypatch, tmp_path: Path):
    """Every source counts as larger than memory; the decoded cache lives in the test's folder."""
    monkeypatch.setenv("DENSIFY_IN_MEMORY_MAX", "0")
    monkeypatch.setenv("DENSIFY_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def raw_idx(tmp_path: Path) -> Path:
    root = tmp_path / "raw-idx"
    root.mkdir()
    write_idx(root / "train-images-idx3-ubyte", make_images(120, 12, 12, seed=3), compress=False)
    write_idx(root / "train-labels-idx1-ubyte", balanced_labels(120, 4).astype(np.uint8), compress=False)
    return root


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    images = make_images(60, 10, 10, 3, seed=5)
    for i, img in enumerate(images):
        write_png(root / f"class{i % 3}" / f"{i:03d}.png", img)
    return root


def _same(a, b) -> None:
    for split in ("train", "heldout"):
        x, y = getattr(a, split), getattr(b, split)
        assert np.array_equal(x.images, y.images) and np.array_equal(x.labels, y.labels)


def test_a_raw_idx_file_is_mapped_and_selects_the_same_rows(raw_idx: Path, monkeypatch, tmp_path: Path):
    eager = load_data(f"idx:{raw_idx}", heldout_size=20)
    subset = load_data(f"idx:{raw_idx}", heldout_size=20, train_size=40, seed=2)
    monkeypatch.setenv("DENSIFY_IN_MEMORY_MAX", "0")
    mapped = load_data(f"idx:{raw_idx}", heldout_size=20, image_size=None)
    assert not is_mapped(eager.train.images)
    _same(eager, mapped)
    mapped_subset = load_data(f"idx:{raw_idx}", heldout_size=20, train_size=40, seed=2)
    _same(subset, mapped_subset)
    # the whole split, unsubsetted and uncarved, stays on disk
    whole = load_data(f"idx:{raw_idx}", heldout_size=None, image_size=None)
    assert len(whole.train) == 96
    write_idx(raw_idx / "t10k-images-idx3-ubyte", make_images(30, 12, 12, seed=4), compress=False)
    write_idx(raw_idx / "t10k-labels-idx1-ubyte", balanced_labels(30, 4).astype(np.uint8), compress=False)
    split = load_data(f"idx:{raw_idx}", image_size=None)
    assert is_mapped(split.train.images) and is_mapped(split.heldout.images)
    # a truncated raw file is refused with its name, as in memory
    path = raw_idx / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: IDX header declares 17,280 bytes"):
        load_data(f"idx:{raw_idx}")


def test_a_folder_is_decoded_once_into_a_mapped_cache(photo_folder: Path, lazy, monkeypatch):
    monkeypatch.setenv("DENSIFY_IN_MEMORY_MAX", str(1 << 40))
    eager = load_data(f"folder:{photo_folder}", heldout_size=12, train_size=30)
    monkeypatch.setenv("DENSIFY_IN_MEMORY_MAX", "0")
    first = load_data(f"folder:{photo_folder}", heldout_size=12, train_size=30)
    _same(eager, first)
    assert len(list(decoded_path("x").parent.glob("*.npy"))) == 1
    # the second load maps the cache without decoding a single file
    import PIL.Image

    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    again = load_data(f"folder:{photo_folder}", heldout_size=12, train_size=30)
    _same(eager, again)
    whole = load_data(f"folder:{photo_folder}", heldout_size=12, image_size=None)
    assert len(whole.train) == 48


def test_a_folder_decoded_at_the_stored_cap_is_cached_apart_from_the_full_size(
    photo_folder: Path, lazy, monkeypatch
):
    """Images that fit under the cap share one cache entry whatever the cap (the test above); larger ones are cached
    at the cap and at the full size separately, each reused."""
    import PIL.Image

    monkeypatch.setenv("DENSIFY_IN_MEMORY_MAX", "0")
    capped = load_data(f"folder:{photo_folder}", heldout_size=12, max_side=6)
    assert capped.train.source_shape == (6, 6, 3)
    full = load_data(f"folder:{photo_folder}", heldout_size=12, max_side=None)
    assert full.train.source_shape == (10, 10, 3)
    assert len(list(decoded_path("x").parent.glob("*.npy"))) == 2
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    _same(capped, load_data(f"folder:{photo_folder}", heldout_size=12, max_side=6))
    _same(full, load_data(f"folder:{photo_folder}", heldout_size=12, max_side=None))
    _same(
        full, load_data(f"folder:{photo_folder}", heldout_size=12, max_side=10)
    )  # the full size fits this cap


def test_a_changed_file_is_decoded_again(photo_folder: Path, lazy):
    first = load_data(f"folder:{photo_folder}", heldout_size=12)
    write_png(photo_folder / "class0" / "000.png", np.zeros((10, 10, 3), np.uint8))
    second = load_data(f"folder:{photo_folder}", heldout_size=12)
    assert not np.array_equal(first.train.images, second.train.images) or not np.array_equal(
        first.heldout.images, second.heldout.images
    )
    assert len(list(decoded_path("x").parent.glob("*.npy"))) == 2


def test_lazy_and_in_memory_sources_give_identical_metrics(photo_folder: Path, lazy, monkeypatch):
    from densify.estimate import estimate_coverage

    kwargs = dict(encoder="pixels:pca16", views=2, k=3, n_boot=50, cache_dir=None)
    mapped = load_data(f"folder:{photo_folder}", heldout_size=12)
    monkeypatch.setenv("DENSIFY_IN_MEMORY_MAX", str(1 << 40))
    monkeypatch.setenv("DENSIFY_CACHE", str(photo_folder.parent / "other-cache"))
    eager = load_data(f"folder:{photo_folder}", heldout_size=12)
    a = estimate_coverage(mapped, ["flip", "affine-light"], **kwargs).to_dict()
    b = estimate_coverage(eager, ["flip", "affine-light"], **kwargs).to_dict()
    for run in (a, b):
        run.pop("timings"), run.pop("cache")
        for r in run["recipes"].values():
            r.pop("seconds")
    assert a == b


def test_a_bad_memory_limit_is_one_line(raw_idx: Path, monkeypatch):
    monkeypatch.setenv("DENSIFY_IN_MEMORY_MAX", "lots")
    with pytest.raises(DataError, match="DENSIFY_IN_MEMORY_MAX must be a number of bytes, got 'lots'"):
        load_data(f"idx:{raw_idx}")


def test_rows_of_a_mapped_array_and_of_its_views_are_read_from_the_file(tmp_path: Path):
    from densify.data._lazy import take

    data = make_images(50, 6, 5, 3, seed=9)
    path = tmp_path / "rows.npy"
    np.save(path, data)
    mapped = np.load(path, mmap_mode="r")
    rows = np.array([0, 3, 3, 17, 49])
    for view, ref in ((mapped, data), (mapped[10:], data[10:]), (mapped[..., None], data[..., None])):
        got = take(view, rows[rows < len(view)])
        assert not is_mapped(got) and np.array_equal(got, ref[rows[rows < len(view)]])
    assert take(mapped, np.arange(50)) is mapped  # every row in order: the mapping itself

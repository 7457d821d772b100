"""Dataloader integration: drop-in transform, DensifiedDataset, and reproducibility across workers and epochs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from densify.data import ImageSet
from densify.errors import DensifyError
from densify.loader import DensifiedDataset, load_recipe

ROOT = Path(__file__).resolve().parents[1]


def _imageset(n=24, shape=(28, 28, 1)) -> ImageSet:
    rng = np.random.default_rng(0)
    return ImageSet(
        rng.integers(0, 256, (n, *shape), dtype=np.uint8), np.arange(n) % 3, ("a", "b", "c"), "t/train"
    )


def _collect(dataset, workers: int, shuffle: bool, seed: int = 0) -> dict[int, np.ndarray]:
    """{dataset index: sample} read through a DataLoader; the order of reading varies with shuffle."""

    class Indexed(Dataset):
        def __len__(self):
            return len(dataset)

        def __getitem__(self, i):
            image, _ = dataset[i]
            return i, image

    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(Indexed(), batch_size=5, shuffle=shuffle, num_workers=workers, generator=generator)
    out = {}
    for indices, images in loader:
        for i, image in zip(indices.tolist(), images, strict=True):
            out[i] = image.numpy()
    return out


@pytest.mark.filterwarnings(
    "ignore:This DataLoader will create 4 worker processes"
)  # 2 cores; 4 is the point
def test_views_are_the_same_with_any_number_of_workers_and_any_order():
    dataset = DensifiedDataset(_imageset(), "affine-heavy", views=2, seed=7)
    reference = _collect(dataset, workers=0, shuffle=False)
    assert len(reference) == 48
    for workers, shuffle, seed in ((2, True, 1), (4, True, 2), (0, True, 3)):
        got = _collect(dataset, workers=workers, shuffle=shuffle, seed=seed)
        assert got.keys() == reference.keys()
        assert all(np.array_equal(got[i], reference[i]) for i in reference), (workers, shuffle)


@pytest.mark.parametrize("output", ["tensor", "numpy", "pil"])
def test_a_batch_fetched_at_once_equals_its_items_one_by_one(output: str):
    from dataclasses import replace

    from densify.data._working import resize_images

    plain = _imageset(30, (12, 10, 3))
    stored = _imageset(30, (20, 16, 3))  # a working-size split: views of the stored pixels, resized
    working = replace(stored, images=resize_images(stored.images, (12, 10)), sources=stored.images)
    base = [(image, int(label)) for image, label in zip(plain.images, plain.labels, strict=True)]
    for source in (plain, working, base):
        dataset = DensifiedDataset(source, "affine-heavy", views=2, seed=3, output=output)
        dataset.set_epoch(2)
        indices = [7, 0, 59, -1, 7, 33]
        batch = dataset.__getitems__(indices)
        for (got, got_label), i in zip(batch, indices, strict=True):
            want, want_label = dataset[i]
            assert got_label == want_label and type(got) is type(want)
            if output == "tensor":
                assert got.dtype == want.dtype and torch.equal(got, want)
            else:
                assert np.array_equal(np.asarray(got), np.asarray(want))
        with pytest.raises(IndexError, match="index 60 out of range"):
            dataset.__getitems__([1, 60])
        assert dataset.__getitems__([]) == []


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_batches_are_the_same_with_any_number_of_workers():
    dataset = DensifiedDataset(_imageset(), "affine-heavy", views=2, seed=7)
    one_by_one = torch.stack([dataset[i][0] for i in range(len(dataset))])
    for workers in (0, 2):
        images = torch.cat([b for b, _ in DataLoader(dataset, batch_size=5, num_workers=workers)])
        assert torch.equal(images, one_by_one)


def test_views_differ_across_views_and_epochs():
    dataset = DensifiedDataset(_imageset(), "affine-heavy", views=2, seed=7, output="numpy")
    epoch0 = [dataset[i][0] for i in range(len(dataset))]
    assert not any(np.array_equal(epoch0[2 * k], epoch0[2 * k + 1]) for k in range(24))  # view 0 vs view 1
    dataset.set_epoch(1)
    epoch1 = [dataset[i][0] for i in range(len(dataset))]
    assert not any(np.array_equal(a, b) for a, b in zip(epoch0, epoch1, strict=True))


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_set_epoch_reaches_persistent_workers(context):
    """With persistent_workers=True the workers kept the epoch they started with: every epoch replayed epoch 0's
    views. The epoch lives in shared memory now, so each epoch's batches are that epoch's views, as read in the
    main process."""
    dataset = DensifiedDataset(_imageset(8), "affine-heavy", views=2, seed=7)
    loader = DataLoader(
        dataset, batch_size=4, num_workers=2, persistent_workers=True, multiprocessing_context=context
    )
    for epoch in (0, 1, 2):
        dataset.set_epoch(epoch)
        got = torch.cat([b for b, _ in loader])
        want = torch.stack([dataset[i][0] for i in range(len(dataset))])
        assert dataset.epoch == epoch and torch.equal(got, want), epoch
    dataset.set_epoch(0)
    assert not torch.equal(torch.cat([b for b, _ in loader]), want)


def test_a_deep_copy_has_its_own_shared_epoch():
    import copy

    dataset = DensifiedDataset(_imageset(8), "flip", views=2, seed=7)
    dataset.set_epoch(3)
    twin = copy.deepcopy(dataset)
    twin.set_epoch(5)
    assert (dataset.epoch, twin.epoch) == (3, 5) and twin._epoch.is_shared()


def test_an_augmenter_in_use_pickles_to_the_same_views():
    """Spawned workers (macOS' and Windows' default) receive the dataset pickled: an augmenter that had drawn views
    could not be (its pipeline held this process's generators)."""
    import pickle

    image = _imageset(1).images[0]
    augmenter = load_recipe("trivialaugment", seed=3, output="numpy")
    first = augmenter.augment(image, index=5, view=1, epoch=2)
    augmenter(image)
    copy = pickle.loads(pickle.dumps(augmenter))
    assert np.array_equal(copy.augment(image, index=5, view=1, epoch=2), first)


def test_drop_in_transform_never_repeats_across_workers_or_epochs():
    """The albumentations#2473 / pytorch#5059 bug: forked workers replaying one random stream."""
    image = np.full((28, 28, 1), 0, np.uint8)
    image[8:20, 10:16] = 255

    class Same(Dataset):  # every item is the same image, so any repeat comes from a repeated stream
        def __init__(self, transform):
            self.transform = transform

        def __len__(self):
            return 16

        def __getitem__(self, i):
            return self.transform(image)

    torch.manual_seed(0)
    loader = DataLoader(Same(load_recipe("affine-heavy", seed=1)), batch_size=4, num_workers=2)
    seen = [x.numpy().tobytes() for _ in range(2) for batch in loader for x in batch]
    assert len(seen) == 32 and len(set(seen)) == 32


def test_opencv_runs_single_threaded_inside_workers():
    import cv2

    class Threads(Dataset):
        def __init__(self):
            self.augmenter = load_recipe("flip", output="numpy")

        def __len__(self):
            return 4

        def __getitem__(self, i):
            self.augmenter.augment(np.zeros((4, 4, 1), np.uint8), index=i)
            return cv2.getNumThreads()

    assert set(DataLoader(Threads(), batch_size=None, num_workers=2)) == {1}


def test_transform_accepts_pil_numpy_and_tensors_and_returns_what_is_asked():
    from PIL import Image

    array = _imageset(1, (10, 12, 3)).images[0].copy()
    as_tensor = load_recipe("none")(Image.fromarray(array))
    assert as_tensor.dtype == torch.float32 and as_tensor.shape == (3, 10, 12)
    assert torch.allclose(as_tensor * 255, torch.from_numpy(array).permute(2, 0, 1).float())
    assert np.array_equal(load_recipe("none", output="numpy")(as_tensor), array)
    pil = load_recipe("none", output="pil")(array[..., :1])
    assert pil.mode == "L" and pil.size == (12, 10)


def test_transform_reads_a_16_bit_pil_image_scaled_not_clipped():
    from PIL import Image

    wide = Image.fromarray(np.array([[0, 1000, 32768, 65535]], np.uint16))
    assert wide.mode == "I;16"
    out = load_recipe("none", output="numpy")(wide)
    assert out[..., 0].tolist() == [[0, 4, 128, 255]]


def test_dataset_wraps_a_torchvision_style_dataset():
    from PIL import Image

    base = [(Image.fromarray(np.full((8, 8), i, np.uint8)), i % 2) for i in range(5)]
    dataset = DensifiedDataset(base, "flip", views=3, output="numpy")
    assert len(dataset) == 15
    image, label = dataset[7]  # view 1 of item 2
    assert image.shape == (8, 8, 1) and label == 0 and image.max() == 2


def test_bad_arguments():
    with pytest.raises(DensifyError, match="views must be a positive integer"):
        DensifiedDataset(_imageset(), "flip", views=0)
    with pytest.raises(DensifyError, match="output must be one of"):
        load_recipe("flip", output="jpeg")
    with pytest.raises(DensifyError, match="images must be uint8"):
        load_recipe("flip")(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(IndexError):
        DensifiedDataset(_imageset(), "flip")[100]


def test_recipe_that_changes_the_shape_is_reported(tmp_path: Path):
    path = tmp_path / "crop.yaml"
    path.write_text(
        "schema_version: 1\nname: crop\nintent: x\npipeline: [{CenterCrop: {height: 4, width: 4, p: 1}}]\n"
    )
    with pytest.raises(
        DensifyError, match=r"recipe 'crop' changed the image shape from \(8, 8, 1\) to \(4, 4, 1\)"
    ):
        load_recipe(str(path)).augment(np.zeros((8, 8, 1), np.uint8), index=0)


def test_example_runs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "torchvision_pipeline.py"), "--batches", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "batch 3" in result.stdout


def test_the_empty_recipe_gives_the_images_themselves_without_drawing():
    """``none`` (an empty pipeline) skips the reseeding and albumentations: the same pixels as its Compose, by
    item and by batch, and the generators are never touched."""
    from densify.data import ImageSet

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 6, 5, 3), dtype=np.uint8)
    base = ImageSet(images, np.zeros(12, np.int64), ("a",))
    aug = load_recipe("none", seed=3, output="numpy")
    batch = aug.views_of(base, np.array([4, 0, 11, 4]), np.array([0, 1, 0, 2]))
    assert batch.dtype == np.uint8 and np.array_equal(batch, images[[4, 0, 11, 4]])
    batch[0] = 0  # a copy, not a view of the images
    assert images[4].any()
    aug._ready()
    state = aug._rng.np.bit_generator.state
    assert np.array_equal(aug.augment(images[7], index=7), aug.compose(image=images[7])["image"])
    assert aug._rng.np.bit_generator.state == state
    dataset = DensifiedDataset(base, aug, views=2, output="numpy")
    items = [dataset[i][0] for i in range(len(dataset))]
    assert all(np.array_equal(x, images[i // 2]) for i, x in enumerate(items))


def test_flip_recipes_flip_batches_in_numpy_with_albumentations_pixels(tmp_path: Path):
    """A flips-only recipe decides a batch's flips from the views' streams and flips in numpy: the same pixels as
    albumentations makes view by view, for the built-in flips, their strength variants, and a recipe mixing both
    flips with p = 1 and p = 0 (no draw) and in any batch order."""
    from densify.loader import FLIP_BATCH_MIN, _flip_plan

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(40, 7, 5, 3), dtype=np.uint8)
    base = ImageSet(images, np.arange(40) % 2, ("a", "b"))
    path = tmp_path / "flips.yaml"
    path.write_text(
        "schema_version: 1\nname: flips\nintent: both flips, some certain, one never\npipeline:\n  - HorizontalFlip: {p: 0.3}\n  - VerticalFlip: {p: 1.0}\n"
        "  - HorizontalFlip: {p: 0.0}\n  - VerticalFlip: {p: 0.6}\n"
    )
    augmenters = [
        load_recipe(n, strength=s, seed=7, output="numpy") for n in ("flip", "vflip") for s in (1.0, 0.5)
    ]
    augmenters.append(load_recipe(path, seed=2, output="numpy"))
    indices = rng.permutation(np.repeat(np.arange(40), 3))
    views = np.tile(np.arange(3), 40)
    assert len(indices) >= FLIP_BATCH_MIN
    for aug in augmenters:
        assert _flip_plan(aug.compose) is not None
        batch = aug.views_of(base, indices, views, epoch=1)
        one_by_one = np.stack(
            [aug.augment(images[i], index=i, view=v, epoch=1) for i, v in zip(indices, views, strict=True)]
        )
        assert np.array_equal(batch, one_by_one)
        flipped = ~np.all(batch == images[indices], axis=(1, 2, 3))
        assert 0 < flipped.mean() < 1 or aug.recipe.name == "flips"
    assert _flip_plan(load_recipe("flip-crop-cutout").compose) is None
    import densify.loader as loader_module

    whole = augmenters[0].views_of(base, indices, views, epoch=1)
    block = loader_module.FLIP_BLOCK_BYTES
    try:  # by blocks of FLIP_BATCH_MIN views (a block of stored pixels smaller than one view): the same pixels
        loader_module.FLIP_BLOCK_BYTES = 1
        assert np.array_equal(augmenters[0].views_of(base, indices, views, epoch=1), whole)
    finally:
        loader_module.FLIP_BLOCK_BYTES = block
    sized = [(rng.integers(0, 256, (5 + i % 4, 3 + i % 3, 1), dtype=np.uint8), i % 2) for i in range(30)]
    for aug in augmenters:  # a torchvision-style base of several sizes: the per-image flips of __getitems__
        dataset = DensifiedDataset(sized, aug, views=2, output="numpy")
        order = rng.permutation(len(dataset)).tolist()
        batch = dataset.__getitems__(order)
        assert all(
            np.array_equal(x, dataset[i][0]) and y == dataset[i][1]
            for (x, y), i in zip(batch, order, strict=True)
        )


def test_flips_fast_path_turns_itself_off_when_albumentations_draws_otherwise(monkeypatch):
    """Each process checks the fast path against albumentations on probe keys before using it: drawn otherwise
    (simulated by reading the floats reversed), it is turned off and every view comes from albumentations."""
    import densify.loader as loader
    from densify._rng import stream_floats

    monkeypatch.setattr(loader, "stream_floats", lambda keys, states, n: 1.0 - stream_floats(keys, states, n))
    images = np.random.default_rng(3).integers(0, 256, size=(30, 6, 5, 1), dtype=np.uint8)
    base = ImageSet(images, np.zeros(30, np.int64), ("a",))
    aug = load_recipe("flip", seed=1, output="numpy")
    assert aug._flips is not None
    batch = aug.views_of(base, np.arange(30), 0)
    assert aug._flips is None
    assert np.array_equal(batch, np.stack([aug.augment(images[i], index=i) for i in range(30)]))
    monkeypatch.undo()
    fresh = load_recipe("flip", seed=1)
    fresh._ready()
    assert fresh._flips is not None and fresh._flips_hold()

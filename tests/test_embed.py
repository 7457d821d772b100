"""Every encoder through the same checks, the factory's grammar, torchvision weights, and the cache."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from densify.data import ImageSet
from densify.embed import ENCODERS, get_encoder
from densify.embed._cache import ArrayCache
from densify.embed._cnn import ReferenceEncoder
from densify.errors import EncoderError


def _images(n=40, shape=(16, 16, 1), seed=0) -> ImageSet:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    images = np.zeros((n, *shape), np.uint8)
    for i, y in enumerate(labels):  # class = position of a bright square, plus noise
        images[i] = rng.integers(0, 60, shape)
        r, c = (y // 2) * 8, (y % 2) * 8
        images[i, r : r + 8, c : c + 8] = 220
    return ImageSet(images, labels, ("a", "b", "c", "d"), "toy/train")


@pytest.fixture(scope="module")
def tv_weights(tmp_path_factory) -> Path:
    import torch
    from torchvision import models

    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small.pt"
    torch.manual_seed(0)
    torch.save(models.mobilenet_v3_small(weights=None).state_dict(), path)
    return path


# One entry per encoder family (a test fails when ENCODERS gains one without an entry): how to build it for tests.
def _reference_plus_views():
    from densify.loader import load_recipe

    views = [load_recipe(r, output="numpy") for r in ("flip", "affine-light")]
    return ReferenceEncoder(seed=0, steps=15, batch=16).see_views(views, "flip,affine-light")


ENCODER_TABLE = {
    "reference": lambda w: ReferenceEncoder(seed=0, steps=15, batch=16),
    "reference+views": lambda w: _reference_plus_views(),
    "random-cnn": lambda w: get_encoder("random-cnn", seed=0),
    "pixels": lambda w: get_encoder("pixels:pca8"),
    "torchvision:NAME": lambda w: get_encoder("torchvision:mobilenet_v3_small", weights=w),
}


def test_every_encoder_has_a_table_entry():
    assert set(ENCODER_TABLE) == set(ENCODERS)


@pytest.mark.parametrize("shape", [(16, 16, 1), (16, 16, 3)], ids=["gray", "rgb"])
@pytest.mark.parametrize("name", sorted(ENCODER_TABLE))
def test_encoder_contract(name, shape, tv_weights):
    train = _images(shape=shape)
    if name == "torchvision:NAME":
        train = train.subset(np.arange(8))
    a = ENCODER_TABLE[name](tv_weights).fit(train)
    b = ENCODER_TABLE[name](tv_weights).fit(train)
    x = a.encode(train.images)
    assert x.dtype == np.float32 and x.ndim == 2 and len(x) == len(train) and np.isfinite(x).all()
    assert np.allclose(x, b.encode(train.images), atol=1e-5), "same seed, same data: same embeddings"
    assert np.allclose(a.encode(train.images[:3]), x[:3], atol=1e-5), "batching changes nothing"
    assert a.fingerprint() == b.fingerprint()


def test_reference_encoder_learns_and_predicts():
    train = _images(200)
    enc = ReferenceEncoder(seed=0, steps=120, batch=32).fit(train)
    emb, pred = enc.encode_and_predict(train.images)
    assert (pred == train.labels).mean() > 0.9
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    restored = ReferenceEncoder(seed=0, steps=120, batch=32).load_state(enc.state(), train)
    assert np.array_equal(restored.encode(train.images), emb)


def test_pixels_without_pca_is_the_flat_image():
    train = _images(4)
    x = get_encoder("pixels").fit(train).encode(train.images)
    assert np.allclose(x, train.images.reshape(4, -1) / 255.0)


@pytest.mark.parametrize(
    "spec, kwargs, message",
    [
        ("resnet", {}, "unknown encoder 'resnet'"),
        ("pixels:pcaX", {}, "pixels:pcaN with an integer N"),
        ("torchvision:resnet18", {}, "set weights to a torchvision weights name"),
        ("torchvision:resnet18", {"weights": "/nope.pt"}, "/nope.pt: weights file not found"),
        ("random-cnn", {"weights": "x.pt"}, "weights apply to torchvision"),
    ],
)
def test_encoder_errors(spec, kwargs, message):
    with pytest.raises(EncoderError, match=message):
        get_encoder(spec, **kwargs)


def test_torchvision_weights_that_do_not_match_or_load(tmp_path: Path, tv_weights: Path):
    with pytest.raises(EncoderError, match="weights do not match resnet18"):
        get_encoder("torchvision:resnet18", weights=tv_weights).fit(_images(4))
    garbage = tmp_path / "bad.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match=r"bad\.pt: cannot load weights"):
        get_encoder("torchvision:resnet18", weights=garbage).fit(_images(4))
    with pytest.raises(EncoderError, match="unknown torchvision model 'nonet'"):
        get_encoder("torchvision:nonet", weights=tv_weights).fit(_images(4))
    with pytest.raises(EncoderError, match="unknown torchvision model 'resnet81'; did you mean 'resnet18'"):
        get_encoder("torchvision:resnet81")  # the name first, not "set weights to ..."


def test_cache_round_trip_and_corruption(tmp_path: Path):
    cache = ArrayCache(tmp_path)
    arrays = {"embeddings": np.arange(12, dtype=np.float32).reshape(3, 4), "predictions": np.array([1, 2, 3])}
    assert cache.get("k") is None
    cache.put("k", arrays)
    got = cache.get("k")
    assert got.keys() == arrays.keys() and all(np.array_equal(got[n], arrays[n]) for n in arrays)
    path = tmp_path / "k.npz"
    path.write_bytes(path.read_bytes()[:-20])  # truncated
    assert cache.get("k") is None and not path.exists() and cache.corrupt == 1
    cache.put("k", arrays)
    raw = bytearray(path.read_bytes())
    import zipfile

    with zipfile.ZipFile(
        path
    ) as z:  # flip one stored value without breaking the zip: the checksum must catch it
        info = z.getinfo("embeddings.npy")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128 + 4
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert cache.get("k") is None and cache.corrupt == 2
    assert ArrayCache(None).get("k") is None


def test_a_cache_write_that_fails_half_way_keeps_the_earlier_entry(tmp_path: Path, monkeypatch):
    """Entries are streamed into a temporary file and renamed: a failure mid-write leaves the old entry whole."""
    from densify.errors import DensifyError

    cache = ArrayCache(tmp_path)
    old = {"embeddings": np.ones((4, 3), np.float32)}
    cache.put("k", old)

    def full_disk(fh, **arrays):
        fh.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(DensifyError, match=r"k\.npz: cannot write \(No space left on device\)"):
        cache.put("k", {"embeddings": np.zeros((4, 3), np.float32)})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.npz"]  # no temporary file left behind
    assert np.array_equal(cache.get("k")["embeddings"], old["embeddings"])


def _no_network(monkeypatch):
    """Any attempt to download fails the test loudly."""
    import urllib.request

    import torch

    def refuse(*args, **kwargs):
        raise AssertionError(f"densify tried to download: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def test_weights_by_name_are_read_from_torch_hub_cache(tmp_path: Path, tv_weights: Path, monkeypatch):
    """``--weights DEFAULT`` resolves where torchvision itself keeps the file ($TORCH_HOME/hub/checkpoints, named
    after the download URL), never downloads, and names the exact file when it is missing or corrupt."""
    import shutil

    from densify.embed._torchvision import hub_checkpoint

    _no_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth"
    for name in ("DEFAULT", "IMAGENET1K_V1", "MobileNet_V3_Small_Weights.IMAGENET1K_V1"):
        assert hub_checkpoint("mobilenet_v3_small", name) == (
            expected,
            "MobileNet_V3_Small_Weights.IMAGENET1K_V1",
        )
    # missing: one line naming the file, TORCH_HOME and the command that fetches it
    with pytest.raises(EncoderError) as missing:
        get_encoder("torchvision:mobilenet_v3_small", weights="DEFAULT")
    message = str(missing.value)
    assert message.startswith(f"{expected}: weights MobileNet_V3_Small_Weights.IMAGENET1K_V1 are not in")
    assert "TORCH_HOME" in message and "get_model('mobilenet_v3_small'" in message and "\n" not in message
    # present: the saved checkpoint is used, same embeddings as the same file passed by path
    expected.parent.mkdir(parents=True)
    shutil.copy(tv_weights, expected)
    train = _images(6, (16, 16, 3))
    by_name = get_encoder("torchvision:mobilenet_v3_small", weights="DEFAULT").fit(train)
    by_path = get_encoder("torchvision:mobilenet_v3_small", weights=tv_weights).fit(train)
    np.testing.assert_allclose(by_name.encode(train.images), by_path.encode(train.images), atol=1e-6)
    assert by_name.fingerprint() == by_path.fingerprint()
    # corrupt (a partial download): one line naming the file
    expected.write_bytes(tv_weights.read_bytes()[:1000])
    with pytest.raises(EncoderError, match=r"mobilenet_v3_small-047dcff4\.pth: cannot load weights"):
        get_encoder("torchvision:mobilenet_v3_small", weights="DEFAULT").fit(train)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("IMAGENET1K_V9", "torchvision:resnet18 has IMAGENET1K_V1, DEFAULT"),
        ("VGG16_Weights.DEFAULT", "not weights of torchvision:resnet18 (those are ResNet18_Weights.*)"),
    ],
)
def test_unknown_weights_names_are_one_line(weights, message, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(EncoderError, match=re.escape(message)):
        get_encoder("torchvision:resnet18", weights=weights)


def test_weights_by_name_from_the_command_line(tmp_path: Path, tv_weights: Path, monkeypatch):
    import shutil

    from click.testing import CliRunner

    from densify.cli import cli

    _no_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    args = ["coverage", "--data", "digits", "--recipes", "flip", "--encoder", "torchvision:mobilenet_v3_small",
            "--weights", "DEFAULT", "--train-size", "40", "--heldout-size", "30", "--no-cache"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "mobilenet_v3_small-047dcff4.pth: weights" in result.output
    target = tmp_path / "torch" / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth"
    target.parent.mkdir(parents=True)
    shutil.copy(tv_weights, target)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "encoder torchvision:mobilenet_v3_small" in result.output


def test_pixels_pca_of_many_images_from_the_gram_matrix_matches_the_svd(monkeypatch):
    """Above SVD_MAX_VALUES pixel values the axes come from the Gram matrix accumulated in float64 blocks (flat
    memory): the same float32 embeddings as the SVD, signs included."""
    from densify.embed import _pixels

    rng = np.random.default_rng(7)
    low_rank = rng.normal(size=(6000, 6)) @ rng.normal(size=(6, 48)) + 0.3 * rng.normal(size=(6000, 48))
    images = np.clip(128 + 20 * low_rank, 0, 255).astype(np.uint8).reshape(6000, 4, 4, 3)
    train = ImageSet(images, np.zeros(6000, np.int64), ("a",))
    by_svd = _pixels.PixelEncoder(pca=6).fit(train)
    monkeypatch.setattr(_pixels, "SVD_MAX_VALUES", 10_000)
    by_gram = _pixels.PixelEncoder(pca=6).fit(train)
    np.testing.assert_allclose(by_gram.encode(images[:500]), by_svd.encode(images[:500]), atol=1e-5)
    assert by_gram.fingerprint() != "" and by_gram.encode(images[:5]).shape == (5, 6)


def test_pixels_pca_encodes_many_images_by_blocks_like_one_pass(monkeypatch):
    from densify.embed import _pixels

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(700, 5, 5, 1), dtype=np.uint8)
    enc = _pixels.PixelEncoder(pca=4).fit(ImageSet(images, np.zeros(700, np.int64), ("a",)))
    whole = enc.encode(images)
    monkeypatch.setattr(_pixels, "ENCODE_BLOCK", 64)  # 11 blocks, the last one short
    blocked = enc.encode(images)
    assert blocked.dtype == np.float32 and blocked.shape == (700, 4)
    np.testing.assert_allclose(blocked, whole, rtol=1e-6, atol=1e-6)

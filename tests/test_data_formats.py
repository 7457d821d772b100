"""Each loader reads its format, and each kind of bad input raises one DataError naming the path."""

from __future__ import annotations

import gzip
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import balanced_labels, make_images, write_cifar10, write_idx, write_npz, write_png

from densify.data import load_data
from densify.errors import DataError


# --- IDX ---------------------------------------------------------------------------------------------------------
def test_idx_gzipped(idx_dir: Path):
    data = load_data(f"idx:{idx_dir}")
    assert (len(data.train), len(data.heldout)) == (60, 20)
    assert data.train.shape == (8, 8, 1)
    assert data.classes == tuple(str(i) for i in range(10))
    raw = gzip.decompress((idx_dir / "train-images-idx3-ubyte.gz").read_bytes())[16:]
    assert np.array_equal(data.train.images.ravel(), np.frombuffer(raw, np.uint8))


def test_idx_uncompressed_in_torchvision_layout_with_fashion_names(tmp_path: Path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem, n in (("train", 30), ("t10k", 10)):
        write_idx(raw / f"{stem}-images-idx3-ubyte", make_images(n), compress=False)
        write_idx(raw / f"{stem}-labels-idx1-ubyte", balanced_labels(n, 10).astype(np.uint8), compress=False)
    data = load_data(f"idx:{tmp_path}")
    assert data.classes[0] == "T-shirt/top"
    assert len(data.train) == 30


def test_idx_without_test_files_carves_heldout(idx_dir: Path):
    for f in idx_dir.glob("t10k-*"):
        f.unlink()
    data = load_data(f"idx:{idx_dir}", heldout_size=10)
    assert (len(data.train), len(data.heldout)) == (50, 10)
    assert data.heldout.class_counts().tolist() == [1] * 10


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "corrupt or truncated"),
        (lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-7])), "truncated IDX file"),
        (lambda p: p.write_bytes(gzip.compress(b"\x01\x02\x08\x03" + b"\0" * 20)), "bad magic number"),
        (lambda p: p.write_bytes(b"not gzip at all"), "corrupt or truncated"),
    ],
    ids=["cut-gzip", "short-data", "bad-magic", "not-gzip"],
)
def test_idx_damaged_files(idx_dir: Path, damage, message):
    path = idx_dir / "train-images-idx3-ubyte.gz"
    damage(path)
    with pytest.raises(DataError, match=message) as info:
        load_data(f"idx:{idx_dir}")
    assert str(path) in str(info.value)


def test_idx_count_mismatch(idx_dir: Path):
    (idx_dir / "train-labels-idx1-ubyte.gz").unlink()
    write_idx(idx_dir / "train-labels-idx1-ubyte", balanced_labels(59, 10).astype(np.uint8))
    with pytest.raises(DataError, match=r"60 images but train-labels-idx1-ubyte\.gz has 59 labels"):
        load_data(f"idx:{idx_dir}")


def test_idx_missing_files(tmp_path: Path):
    with pytest.raises(DataError, match="no IDX file train-images-idx3-ubyte"):
        load_data(f"idx:{tmp_path}")


def test_missing_path(tmp_path: Path):
    with pytest.raises(DataError, match="no such folder"):
        load_data(f"idx:{tmp_path / 'nope'}")


def test_single_class_is_refused(tmp_path: Path):
    write_idx(tmp_path / "train-images-idx3-ubyte", make_images(10))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(10, np.uint8))
    with pytest.raises(DataError, match="at least 2 classes"):
        load_data(f"idx:{tmp_path}", heldout_size=2)


# --- folders -----------------------------------------------------------------------------------------------------
def test_folder_with_train_and_test(folder_tree: Path):
    data = load_data(f"folder:{folder_tree}")
    assert data.classes == ("cat", "dog", "fox")
    assert (len(data.train), len(data.heldout)) == (12, 6)
    assert data.train.shape == (6, 6, 3)
    assert data.train.class_counts().tolist() == [4, 4, 4]


def test_folder_reads_pixels_exactly(tmp_path: Path):
    img = make_images(1, 5, 7, 3)[0]
    write_png(tmp_path / "a" / "x.png", img)
    write_png(tmp_path / "b" / "y.png", img[::-1])
    for cls in "ab":
        write_png(tmp_path / cls / "z.png", img)
    data = load_data(f"folder:{tmp_path}", heldout_size=2)
    everything = np.concatenate([data.train.images, data.heldout.images])
    assert any(np.array_equal(x, img) for x in everything)
    assert data.train.shape == (5, 7, 3)


def test_folder_without_split_subfolders_carves(folder_tree: Path):
    data = load_data(f"folder:{folder_tree / 'train'}")
    assert (len(data.train), len(data.heldout)) == (9, 3)
    assert "carved" in data.heldout_origin


def test_folder_reads_16_bit_grayscale_as_8_bit(tmp_path: Path):
    """PIL's convert("L") clips 16-bit values at 255 (an image turns white); densify scales them."""
    from PIL import Image

    wide = np.array([[0, 257, 1000, 32768], [40000, 65278, 65535, 128]], np.uint16)
    for cls in "ab":
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(wide).save(tmp_path / cls / f"{i}.png")
    with Image.open(tmp_path / "a" / "0.png") as im:
        assert im.mode == "I;16"
    data = load_data(f"folder:{tmp_path}", heldout_size=2)
    expected = np.rint(wide.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert np.array_equal(data.train.images[0, ..., 0], expected)
    assert expected.tolist() == [[0, 1, 4, 128], [156, 254, 255, 0]]


def test_folder_of_large_photos_is_stored_at_the_cap_unless_asked_otherwise(tmp_path: Path):
    """Camera-size images are stored with their longer side at stored_cap (256 px at the default working size):
    recipes augment those; resize, image_size="stored" or max_side=None keep the full size."""
    from densify.data._working import stored_cap

    img = make_images(6, 300, 400, 3)
    for i in range(6):
        write_png(tmp_path / "ab"[i % 2] / f"{i}.png", img[i])
    data = load_data(f"folder:{tmp_path}", heldout_size=2)
    assert data.train.source_shape == (192, 256, 3) and data.train.shape == (24, 32, 3)
    assert any("images are 300x400; stored at 192x256 (longer side 256)" in n for n in data.notes), data.notes
    assert load_data(f"folder:{tmp_path}", heldout_size=2, resize=(300, 400)).train.source_shape == (
        300,
        400,
        3,
    )
    assert load_data(f"folder:{tmp_path}", heldout_size=2, image_size="stored").train.shape == (300, 400, 3)
    assert load_data(f"folder:{tmp_path}", heldout_size=2, max_side=None).train.source_shape == (300, 400, 3)
    assert load_data(f"folder:{tmp_path}", heldout_size=2, image_size=200).train.source_shape == (300, 400, 3)
    assert (stored_cap("auto"), stored_cap(64), stored_cap(224), stored_cap((100, 300)), stored_cap("stored")) == (
        256, 256, 448, 600, None)  # fmt: skip
    with pytest.raises(DataError, match="max_side must be"):
        load_data(f"folder:{tmp_path}", max_side=0)


def test_every_unreadable_image_of_a_folder_is_named_in_one_error(tmp_path: Path):
    """A folder with several broken files names them all in one line (fixing one per run was the only way)."""
    img = make_images(4, 6, 6, 3)
    for i in range(4):
        write_png(tmp_path / "ab"[i % 2] / f"{i}.png", img[i])
    for name in ("x.jpg", "y.png", "z.png", "w.jpg"):
        (tmp_path / "a" / name).write_bytes(b"not an image")
    with pytest.raises(DataError) as info:
        load_data(f"folder:{tmp_path}")
    message = str(info.value)
    assert "\n" not in message and "4 of 8 images cannot be read (fix or remove them)" in message
    assert message.count("cannot read image") == 3 and message.endswith("; and 1 more")
    for name in ("w.jpg", "x.jpg", "y.png"):
        (tmp_path / "a" / name).unlink()
    with pytest.raises(DataError, match=r"z\.png: cannot read image"):  # one file: as before, its own message
        load_data(f"folder:{tmp_path}")


def test_a_class_of_one_image_stays_in_train_when_held_out_images_are_carved(tmp_path: Path):
    img = make_images(7, 6, 6, 3)
    for i in range(3):
        write_png(tmp_path / "many" / f"{i}.png", img[i])
        write_png(tmp_path / "more" / f"{i}.png", img[3 + i])
    write_png(tmp_path / "single" / "only.png", img[6])
    data = load_data(f"folder:{tmp_path}")
    assert data.train.class_counts().tolist() == [2, 2, 1]
    assert data.heldout.class_counts().tolist() == [1, 1, 0]
    assert any("class 'single' has a single image, kept for training" in n for n in data.notes), data.notes
    with pytest.raises(
        DataError, match=r"cannot carve 5 held-out images .* \(at most 4: every class keeps one"
    ):
        load_data(f"folder:{tmp_path}", heldout_size=5)


def test_folder_mixed_sizes_get_the_most_common_size_with_a_note(folder_tree: Path):
    write_png(folder_tree / "train" / "dog" / "big.png", make_images(1, 9, 9, 3)[0])
    data = load_data(f"folder:{folder_tree}")
    assert data.train.shape == (6, 6, 3)
    (note,) = data.notes
    assert re.search(r"different sizes \(HxW\): 6x6 \(18 files.*9x9 \(1 files.*big.png", note), note
    assert "resized to the most common, 6x6 (set resize" in note
    data = load_data(f"folder:{folder_tree}", resize=(8, 8))
    assert data.train.shape == (8, 8, 3) and not data.notes


def test_folder_mixed_channels_get_the_most_common_count_with_a_note(folder_tree: Path):
    write_png(folder_tree / "train" / "dog" / "gray.png", make_images(1, 6, 6)[0])
    data = load_data(f"folder:{folder_tree}")
    assert data.train.shape == (6, 6, 3)
    assert any("different channel counts" in n and "converted to the most common, 3" in n for n in data.notes)
    assert load_data(f"folder:{folder_tree}", channels=1).train.shape == (6, 6, 1)


def test_folder_empty_class(folder_tree: Path):
    (folder_tree / "train" / "emu").mkdir()
    with pytest.raises(DataError, match=r"train/emu: class folder holds no images"):
        load_data(f"folder:{folder_tree}")


def test_folder_corrupt_png(folder_tree: Path):
    bad = folder_tree / "train" / "cat" / "0.png"
    bad.write_bytes(bad.read_bytes()[:30])
    with pytest.raises(DataError, match=r"cat/0.png: cannot"):
        load_data(f"folder:{folder_tree}")


def test_folder_heldout_class_outside_the_class_list(folder_tree: Path):
    shutil.copytree(folder_tree / "test" / "cat", folder_tree / "test" / "owl")
    with pytest.raises(DataError, match="owl are not in the training class list"):
        load_data(f"folder:{folder_tree}")


def test_folder_without_class_folders(tmp_path: Path):
    with pytest.raises(DataError, match="no class sub-folders"):
        load_data(f"folder:{tmp_path}")


# --- CIFAR -------------------------------------------------------------------------------------------------------
def test_cifar10(tmp_path: Path):
    write_cifar10(tmp_path)
    data = load_data(f"cifar:{tmp_path}")
    assert (len(data.train), len(data.heldout)) == (50, 10)
    assert data.train.shape == (32, 32, 3)
    assert data.classes[0] == "airplane"
    first = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes())[b"data"][0]
    assert np.array_equal(data.train.images[0], first.reshape(3, 32, 32).transpose(1, 2, 0))


def test_cifar100(tmp_path: Path):
    rng = np.random.default_rng(0)
    for name, n in (("train", 20), ("test", 10)):
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"fine_labels": list(np.arange(n) % 5),
        }
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    (tmp_path / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"a", b"b", b"c", b"d", b"e"]}))
    data = load_data(f"cifar:{tmp_path}")
    assert data.classes == ("a", "b", "c", "d", "e") and len(data.train) == 20


def test_cifar_truncated_pickle(tmp_path: Path):
    folder = write_cifar10(tmp_path)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="data_batch_3: corrupt or truncated CIFAR pickle"):
        load_data(f"cifar:{tmp_path}")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_pickle_cannot_run_code(tmp_path: Path, capsys):
    folder = write_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(DataError, match=r"builtins\.print is not allowed"):
        load_data(f"cifar:{tmp_path}")
    assert "pwned" not in capsys.readouterr().out


# --- npz ---------------------------------------------------------------------------------------------------------
def _npz(tmp_path: Path, **over):
    arrays = {
        "x_train": make_images(20),
        "y_train": balanced_labels(20, 4),
        "x_test": make_images(8),
        "y_test": balanced_labels(8, 4),
        "classes": np.array(["a", "b", "c", "d"]),
    }
    arrays.update(over)
    return write_npz(tmp_path / "d.npz", **{k: v for k, v in arrays.items() if v is not None})


def test_npz(tmp_path: Path):
    data = load_data(f"npz:{_npz(tmp_path)}")
    assert data.classes == ("a", "b", "c", "d") and data.train.shape == (8, 8, 1)


def test_npz_float_images_and_no_classes(tmp_path: Path):
    path = _npz(tmp_path, x_train=make_images(20) / 255.0, classes=None)
    data = load_data(f"npz:{path}")
    assert data.classes == ("0", "1", "2", "3")
    assert np.array_equal(data.train.images[..., 0], make_images(20))


@pytest.mark.parametrize(
    "override, message",
    [
        ({"x_train": None}, "missing array 'x_train'"),
        ({"y_train": balanced_labels(19, 4)}, "x_train has 20 images but y_train has 19 labels"),
        ({"y_test": balanced_labels(8, 4) + 3}, "label 4 is outside the class list"),
        ({"y_train": np.zeros(20, int)}, "at least 2 classes"),
        ({"x_train": make_images(20).astype(np.int16) * 3}, "must lie in 0..255"),
        ({"x_train": np.zeros((20, 1, 8, 8), np.uint8)}, "channels-first"),
        ({"x_test": None}, "'x_test' and 'y_test' must be given together"),
    ],
)
def test_npz_bad_input(tmp_path: Path, override, message):
    with pytest.raises(DataError, match=message) as info:
        load_data(f"npz:{_npz(tmp_path, **override)}")
    assert "\n" not in str(info.value)


def test_npz_corrupt(tmp_path: Path):
    path = _npz(tmp_path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match=r"corrupt or unreadable \.npz"):
        load_data(f"npz:{path}")


def test_npz_missing(tmp_path: Path):
    with pytest.raises(DataError, match="file not found"):
        load_data(f"npz:{tmp_path / 'x.npz'}")


def test_resize_and_channels_apply_to_any_source(tmp_path: Path):
    data = load_data(f"npz:{_npz(tmp_path)}", resize=(4, 6), channels=3)
    assert data.train.shape == (4, 6, 3) and data.heldout.shape == (4, 6, 3)


@pytest.mark.parametrize("mapped", [False, True])
def test_every_truncated_image_of_a_folder_is_named_in_one_error(tmp_path: Path, monkeypatch, mapped: bool):
    """Files whose header reads but whose pixels do not (truncated JPEGs) are all named in one line too, and a
    refused decode into the mapped cache leaves nothing behind that a later load would take as complete."""
    from PIL import Image

    monkeypatch.setenv("DENSIFY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DENSIFY_IN_MEMORY_MAX", "0" if mapped else str(1 << 40))
    img = make_images(8, 32, 32, 3)
    root = tmp_path / "photos"
    for i in range(8):
        (root / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[i]).save(root / "ab"[i % 2] / f"{i}.jpg", quality=95)
    for i in (1, 2, 5, 6):  # keep the header, cut the pixels
        path = root / "ab"[i % 2] / f"{i}.jpg"
        path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError) as info:
        load_data(f"folder:{root}", heldout_size=2)
    message = str(info.value)
    assert "\n" not in message and "4 of 8 images cannot be read (fix or remove them)" in message, message
    assert message.count("cannot decode image") == 3 and message.endswith("; and 1 more"), message
    for i in (1, 2, 5, 6):
        Image.fromarray(img[i]).save(root / "ab"[i % 2] / f"{i}.jpg", quality=95)
    data = load_data(f"folder:{root}", heldout_size=2)  # mended: decoded afresh, not a half-filled cache
    assert (
        len(data.train) + len(data.heldout) == 8
        and data.train.images.reshape(len(data.train), -1).std(1).min() > 0
    )


def test_npz_labels_may_be_class_names_or_whole_number_floats(tmp_path: Path):
    """Labels saved from a float tensor, or as class names, were refused ("labels must be a 1-D integer array")."""
    x = make_images(12, 8, 8, 1)
    y = balanced_labels(12, 3)
    names = np.array(["cat", "dog", "pig"])[y]
    floats = load_data(f"npz:{write_npz(tmp_path / 'f.npz', x_train=x, y_train=y.astype(np.float32))}")
    ints = load_data(f"npz:{write_npz(tmp_path / 'i.npz', x_train=x, y_train=y)}")
    assert np.array_equal(floats.train.labels, ints.train.labels)
    named = load_data(f"npz:{write_npz(tmp_path / 'n.npz', x_train=x, y_train=names)}")
    assert named.classes == ("cat", "dog", "pig") and np.array_equal(named.train.labels, ints.train.labels)
    uneven = np.array(["cat"] * 3 + ["dog"] * 4 + ["pig"] * 5)  # counts tell the classes apart
    given = write_npz(tmp_path / "g.npz", x_train=x, y_train=uneven, classes=np.array(["pig", "dog", "cat"]))
    data = load_data(f"npz:{given}")
    labels = np.concatenate([data.train.labels, data.heldout.labels])
    assert data.classes == ("pig", "dog", "cat") and np.bincount(labels).tolist() == [5, 4, 3]
    with pytest.raises(DataError, match=r"y_train: label 'pig' is not in 'classes'"):
        load_data(
            f"npz:{write_npz(tmp_path / 'u.npz', x_train=x, y_train=names, classes=np.array(['cat', 'dog']))}"
        )
    with pytest.raises(
        DataError,
        match=r"labels must be a 1-D array of integers or class names, got shape \(12,\) dtype float64",
    ):
        load_data(f"npz:{write_npz(tmp_path / 'h.npz', x_train=x, y_train=y + np.float32(0.5))}")
    mixed = write_npz(tmp_path / "m.npz", x_train=x, y_train=names, x_test=x, y_test=y)
    with pytest.raises(DataError, match="must both hold class names or both integers"):
        load_data(f"npz:{mixed}")

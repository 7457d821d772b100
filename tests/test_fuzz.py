"""Property-based fuzzing of every input surface (issue 11): malformed npz files, image folders and recipe
documents. The contract: exit code 0, or exit code 2 with one line; never a traceback; never slow.

Fast by default (a few dozen examples each); ``HYPOTHESIS_PROFILE=slow`` runs hundreds.
"""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from densify.cli import cli
from densify.errors import DensifyError

settings.register_profile(
    "default", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.register_profile(
    "slow", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def contract(args: list[str], seconds: float = 5.0) -> int:
    start = time.perf_counter()
    result = CliRunner().invoke(cli, args)
    took = time.perf_counter() - start
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback for {args}: {result.exception!r}"
    )
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output
    assert took < seconds, f"{args} took {took:.1f} s"
    return result.exit_code


# --- npz ------------------------------------------------------------------------------------------------

dims = st.integers(min_value=0, max_value=12)
dtypes = st.sampled_from(["uint8", "int64", "int8", "float32", "float64", "bool", "uint16", "<U3"])


@st.composite
def arrays(draw):
    rank = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(dims, min_size=rank, max_size=rank)))
    dtype = np.dtype(draw(dtypes))
    n = int(np.prod(shape))
    if dtype.kind == "U":
        words = draw(st.lists(st.text(max_size=3), min_size=1, max_size=4))
        return np.array([words[i % len(words)] for i in range(n)], dtype=dtype).reshape(shape)
    special = [0, 1, 255, 256, -1, 10**12, 2**31, np.nan, np.inf, -np.inf, 0.5]
    pool = draw(st.lists(st.sampled_from(special), min_size=1, max_size=4))
    values = np.array([pool[i % len(pool)] for i in range(n)], dtype=np.float64).reshape(shape)
    with np.errstate(invalid="ignore", over="ignore"):
        return (
            np.nan_to_num(values, nan=0, posinf=255, neginf=0).astype(dtype)
            if dtype.kind in "iub"
            else values.astype(dtype)
        )


@given(
    members=st.dictionaries(
        st.sampled_from(["x_train", "y_train", "x_test", "y_test", "classes", "extra"]), arrays(), max_size=6
    ),
    corrupt=st.one_of(st.none(), st.integers(min_value=0, max_value=2000)),
)
def test_npz_fuzz(tmp_path_factory, members, corrupt):
    path = tmp_path_factory.mktemp("npz") / "d.npz"
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    data = bytearray(buffer.getvalue())
    if corrupt is not None and data:
        data[corrupt % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))
    contract(["data", "info", f"npz:{path}"])


def test_npz_with_good_images_and_random_labels_is_read_or_refused(tmp_path):
    x = np.zeros((6, 8, 8), np.uint8)
    for labels in ([0, 1, 0, 1, 0, 1], [0] * 6, [5, 5, 9999, 1, 0, 2], [-3, 0, 1, 1, 0, 0]):
        path = tmp_path / "d.npz"
        np.savez(path, x_train=x, y_train=np.array(labels))
        contract(["data", "info", f"npz:{path}"])


# --- image folders --------------------------------------------------------------------------------------


@st.composite
def image_bytes(draw):
    from PIL import Image

    kind = draw(st.sampled_from(["png", "jpeg", "junk", "empty", "truncated"]))
    if kind in ("junk", "empty"):
        return draw(st.binary(max_size=64)) if kind == "junk" else b""
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I;16"] if kind == "png" else ["L", "RGB"]))
    image = Image.new(mode, (w, h))
    out = io.BytesIO()
    image.save(out, format="PNG" if kind != "jpeg" else "JPEG")
    raw = out.getvalue()
    return raw[: len(raw) // 2] if kind == "truncated" else raw


@given(
    layout=st.sampled_from(["flat", "split"]),
    classes=st.lists(
        st.tuples(
            st.text(alphabet="abcé_- .", min_size=1, max_size=6),
            st.lists(st.tuples(st.sampled_from([".png", ".jpg", ".txt", ".PNG"]), image_bytes()), max_size=3),
        ),
        max_size=3,
    ),
)
def test_folder_fuzz(tmp_path_factory, layout, classes):
    root = tmp_path_factory.mktemp("folder")
    for split in ["train", "test"] if layout == "split" else [""]:
        for name, files in classes:
            folder = root / split / name.strip(" .") if name.strip(" .") else root / split / "x"
            folder.mkdir(parents=True, exist_ok=True)
            for i, (suffix, raw) in enumerate(files):
                (folder / f"{i}{suffix}").write_bytes(raw)
    contract(["data", "info", f"folder:{root}"])


# --- recipes --------------------------------------------------------------------------------------------

NAMES = ["Affine", "HorizontalFlip", "RandomCrop", "CoarseDropout", "GaussNoise", "RandomFog", "ToFloat",
         "RandomRotate90", "Perspective", "Blur", "Nonexistent", "Lambda", "NoOp", "CenterCrop3D", "Normalize"]  # fmt: skip
PARAMS = ["p", "rotate", "height", "width", "scale", "blur_limit", "std_range", "holes", "strict", "bogus"]
leaf_values = st.one_of(
    st.none(), st.booleans(), st.integers(-100, 100), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4), st.lists(st.floats(-50, 50), max_size=3),
)  # fmt: skip


def steps(depth: int):
    transform = st.builds(
        lambda n, p: {n: p},
        st.sampled_from(NAMES),
        st.dictionaries(st.sampled_from(PARAMS), leaf_values, max_size=3),
    )
    if depth == 0:
        return st.lists(transform, max_size=3)
    block = st.builds(
        lambda kind, p, n, children: {kind: {"p": p, "n": n, "transforms": children}},
        st.sampled_from(["one_of", "some_of"]),
        st.one_of(st.floats(-1, 2), st.just(1)),
        st.integers(0, 4),
        steps(depth - 1),
    )
    include = st.builds(lambda r: {"include": r}, st.sampled_from(["flip", "nope", "r.yaml", 3]))
    return st.lists(st.one_of(transform, block, include, leaf_values), max_size=3)


@given(
    doc=st.fixed_dictionaries(
        {
            "schema_version": st.sampled_from([1, 2, "1", None]),
            "name": st.sampled_from(["r", "R!", "", "ok-1"]),
            "intent": st.sampled_from(["x", ""]),
            "pipeline": steps(2),
        },
        optional={"suits": st.lists(st.text(max_size=3)), "extra": st.integers()},
    )
)
def test_recipe_fuzz(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("recipe") / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    if contract(["recipes", "check", str(path)]) != 0:
        return
    # a recipe that passes the check is probed on images, and then must run on them
    from densify.loader import load_recipe

    augmenter = load_recipe(path, output="numpy")
    for shape in ((16, 16, 1), (20, 12, 3)):
        try:
            augmenter.check_shape(shape)
        except DensifyError:
            continue
        image = np.zeros(shape, np.uint8)
        for i in range(4):
            assert augmenter.augment(image, index=i).shape == shape


@pytest.fixture(autouse=True, scope="module")
def _warm_imports():
    """Import albumentations, PIL and the CLI once, so the time bound measures densify, not first imports."""
    from densify.recipes._albu import allowed_transforms

    allowed_transforms()
    contract(["data", "info", "fashion-mini"], seconds=60)

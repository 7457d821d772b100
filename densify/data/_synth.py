"""Known-factor datasets: images rendered from explicit latent factors (``synth:FAMILY?key=value&...``).

Every image is drawn from a factor vector, so the data manifold is known exactly: its dimension is the number of
continuous factors that vary, and how far a recipe moves a sample along it can be computed in factor space. Three
families differ in which augmentations are right *by construction*:

========  ==============================================  ==========================================
family    the class is                                    so these recipes must hurt
========  ==============================================  ==========================================
shapes    the shape: square, triangle, cross, star        none of rotation, flips, colour (nuisances)
arrows    the direction an arrow points: up/right/down/   large rotations and flips (they turn one
          left (rotation is only a small jitter)          class into another)
colours   the hue: red, yellow, green, cyan, blue,        hue shifts and greyscale
          magenta (a shape is drawn in that hue)
========  ==============================================  ==========================================

Continuous factors, each sampled uniformly and independently (per split) from its range:

``rotation``  degrees, counter-clockwise. shapes/colours: the absolute angle; arrows: the jitter around the class's
              direction (0 up, 90 left, 180 down, 270 right, counter-clockwise).
``scale``     the object's radius as a fraction of half the image side, in [0.1, 1].
``x``, ``y``  the object's centre, as a fraction of half the image side from the centre (x right, y down), in
              [-0.6, 0.6].
``hue``       degrees. shapes/arrows: the absolute hue; colours: the jitter around the class's hue.
``brightness`` the object's HSV value (saturation is 1), in [0.2, 1].
``background`` the background's grey level, in [0, 0.5].

The colours family also draws a categorical ``shape`` factor (one of the four shapes, uniformly): it adds
components to each class's manifold, not dimensions. The factor vectors travel with the images
(:attr:`ImageSet.factors`, absolute values: arrows' ``rotation`` and colours' ``hue`` include the class's own
angle) and rendering is a deterministic, vectorised function of them (:func:`render`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from densify.errors import SpecError

Range = tuple[float, float]

#: Continuous factors in column order, with (lowest, highest) allowed values (None: unbounded, e.g. angles).
FACTORS: dict[str, tuple[float, float] | None] = {
    "rotation": None,
    "scale": (0.1, 1.0),
    "x": (-0.6, 0.6),
    "y": (-0.6, 0.6),
    "hue": None,
    "brightness": (0.2, 1.0),
    "background": (0.0, 0.5),
}
SHAPES = ("square", "triangle", "cross", "star")
#: Rotational symmetry of each shape, degrees (a square rotated by 90 degrees is the same image).
SHAPE_PERIOD = {"square": 90.0, "triangle": 120.0, "cross": 90.0, "star": 72.0, "arrow": 360.0}
COLOUR_HUES = {"red": 0.0, "yellow": 60.0, "green": 120.0, "cyan": 180.0, "blue": 240.0, "magenta": 300.0}
ARROW_ANGLES = {"up": 0.0, "left": 90.0, "down": 180.0, "right": 270.0}


@dataclass(frozen=True)
class Family:
    """One known-factor family: its classes and the default sampling of each factor (the same in both splits)."""

    name: str
    classes: tuple[str, ...]
    defaults: dict[str, Range]
    describes: str
    categorical: tuple[str, ...] = ()


FAMILIES: dict[str, Family] = {
    "shapes": Family(
        "shapes",
        SHAPES,
        {
            "rotation": (0.0, 360.0),
            "scale": (0.5, 0.9),
            "x": (-0.2, 0.2),
            "y": (-0.2, 0.2),
            "hue": (0.0, 360.0),
            "brightness": (0.6, 1.0),
            "background": (0.0, 0.0),
        },
        "the class is the shape; rotation, position, size, colour and brightness are nuisances",
    ),
    "arrows": Family(
        "arrows",
        tuple(ARROW_ANGLES),
        {
            "rotation": (-20.0, 20.0),
            "scale": (0.6, 0.9),
            "x": (-0.15, 0.15),
            "y": (-0.15, 0.15),
            "hue": (0.0, 360.0),
            "brightness": (0.6, 1.0),
            "background": (0.0, 0.0),
        },
        "the class is the direction an arrow points; large rotations and flips change it",
    ),
    "colours": Family(
        "colours",
        tuple(COLOUR_HUES),
        {
            "rotation": (0.0, 360.0),
            "scale": (0.5, 0.9),
            "x": (-0.2, 0.2),
            "y": (-0.2, 0.2),
            "hue": (-8.0, 8.0),
            "brightness": (0.6, 1.0),
            "background": (0.0, 0.0),
        },
        "the class is the hue; shape, rotation, position, size and brightness are nuisances",
        categorical=("shape",),
    ),
}

DEFAULT_TRAIN, DEFAULT_HELDOUT, DEFAULT_SIZE, DEFAULT_SEED = 2000, 1000, 32, 0
MAX_IMAGES, SIZE_BOUNDS = 1_000_000, (8, 512)
KEYS = ("train", "heldout", "size", "seed", *FACTORS)


@dataclass(frozen=True)
class SynthSpec:
    """A parsed ``synth:`` spec: the family, split sizes, image side, seed and each factor's (train, held-out)
    sampling range. ``text`` is the spec as given (stripped)."""

    family: str
    train: int = DEFAULT_TRAIN
    heldout: int = DEFAULT_HELDOUT
    size: int = DEFAULT_SIZE
    seed: int = DEFAULT_SEED
    ranges: dict[str, tuple[Range, Range]] = field(default_factory=dict)
    text: str = ""

    def __str__(self) -> str:
        return self.text or f"synth:{self.family}"

    def sampling(self, factor: str) -> tuple[Range, Range]:
        """(train range, held-out range) of ``factor``: the spec's, else the family's default for both."""
        default = FAMILIES[self.family].defaults[factor]
        return self.ranges.get(factor, (default, default))

    @property
    def factor_names(self) -> tuple[str, ...]:
        return (*FACTORS, *FAMILIES[self.family].categorical)

    def varying(self, split: str = "train") -> tuple[str, ...]:
        """The continuous factors whose range in ``split`` ("train" or "heldout") has a non-zero width: the true
        intrinsic dimension of each class's manifold is their count."""
        at = 0 if split == "train" else 1
        return tuple(f for f in FACTORS if self.sampling(f)[at][1] > self.sampling(f)[at][0])


def _number(text: str, key: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"synth spec {spec!r}: {key}={text!r} is not a number") from None
    if not np.isfinite(value):
        raise SpecError(f"synth spec {spec!r}: {key}={text!r} must be finite")
    return value


def _range(text: str, key: str, spec: str) -> Range:
    lo_text, sep, hi_text = text.partition(":")
    lo = _number(lo_text, key, spec)
    hi = _number(hi_text, key, spec) if sep else lo
    if hi < lo:
        raise SpecError(f"synth spec {spec!r}: {key} range {text!r} has its low end above its high end")
    bounds = FACTORS[key]
    if bounds is not None and (lo < bounds[0] or hi > bounds[1]):
        raise SpecError(f"synth spec {spec!r}: {key}={text!r} is outside [{bounds[0]:g}, {bounds[1]:g}]")
    return lo, hi


def _integer(text: str, key: str, spec: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SpecError(f"synth spec {spec!r}: {key}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise SpecError(f"synth spec {spec!r}: {key}={value} must be between {low} and {high}")
    return value


def parse_synth(text: str) -> SynthSpec:
    """Parse a known-factor spec (the part of a data spec from ``synth:`` on).

    Grammar::

        spec     := "synth:" FAMILY [ "?" option ( "&" option )* ]
        FAMILY   := "shapes" | "arrows" | "colours"
        option   := "train=" INT          training images (default 2000)
                  | "heldout=" INT        held-out images (default 1000)
                  | "size=" INT           image side in pixels, 8..512 (default 32)
                  | "seed=" INT           the rendering seed, >= 0 (default 0)
                  | FACTOR "=" sampling
        FACTOR   := "rotation" | "scale" | "x" | "y" | "hue" | "brightness" | "background"
        sampling := range | range "/" range     one range for both splits, or train "/" held-out
        range    := NUMBER | NUMBER ":" NUMBER   a fixed value, or uniform between low and high (low <= high)

    Example: ``synth:shapes?train=2000&heldout=1000&rotation=0:30/0:360&seed=0`` trains on rotations of 0-30
    degrees and holds out the whole circle. Units and bounds of each factor are in this module's docstring;
    unspecified factors take the family's default range in both splits. Each key may appear once; anything else
    raises :class:`SpecError` naming the key or value at fault.
    """
    spec = text.strip()
    body = spec.removeprefix("synth:")
    family, sep, query = body.partition("?")
    if family not in FAMILIES:
        close = difflib.get_close_matches(family, FAMILIES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise SpecError(f"unknown synth family {family!r} in {spec!r}; families: {', '.join(FAMILIES)}{hint}")
    if sep and not query:
        raise SpecError(f"synth spec {spec!r} has an empty option list after '?'")
    values: dict = {}
    ranges: dict[str, tuple[Range, Range]] = {}
    for option in query.split("&") if query else ():
        key, eq, value = option.partition("=")
        if not eq or not key or not value:
            raise SpecError(f"synth spec {spec!r}: option {option!r} must be KEY=VALUE")
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise SpecError(f"synth spec {spec!r}: unknown key {key!r}; keys: {', '.join(KEYS)}{hint}")
        if key in values or key in ranges:
            raise SpecError(f"synth spec {spec!r}: key {key!r} is given twice")
        if key in ("train", "heldout"):
            values[key] = _integer(value, key, spec, len(FAMILIES[family].classes), MAX_IMAGES)
        elif key == "size":
            values[key] = _integer(value, key, spec, *SIZE_BOUNDS)
        elif key == "seed":
            values[key] = _integer(value, key, spec, 0, 2**32 - 1)
        else:
            train_text, slash, held_text = value.partition("/")
            if slash and "/" in held_text:
                raise SpecError(f"synth spec {spec!r}: {key}={value!r} has more than one '/'")
            train_range = _range(train_text, key, spec)
            ranges[key] = (train_range, _range(held_text, key, spec) if slash else train_range)
    return SynthSpec(family=family, ranges=ranges, text=spec, **values)


def sample_factors(
    spec: SynthSpec, split: str, n: int, seed_offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(factors float64 (n, F) in :attr:`SynthSpec.factor_names` order, labels int64 (n,)) for one split.

    Classes are balanced (sizes differ by at most one) and shuffled; each factor is uniform on its range. The
    result is a pure function of (spec, split, n, seed_offset); train and held-out draw from independent streams.
    """
    fam = FAMILIES[spec.family]
    at = 0 if split == "train" else 1
    rng = np.random.default_rng([spec.seed, at, seed_offset])
    labels = rng.permutation(np.arange(n) % len(fam.classes)).astype(np.int64)
    columns = []
    for name in FACTORS:
        lo, hi = spec.sampling(name)[at]
        columns.append(rng.uniform(lo, hi, n) if hi > lo else np.full(n, lo))
    if spec.family == "arrows":
        columns[0] = columns[0] + np.asarray(list(ARROW_ANGLES.values()))[labels]
    if spec.family == "colours":
        columns[4] = columns[4] + np.asarray(list(COLOUR_HUES.values()))[labels]
        columns.append(rng.integers(0, len(SHAPES), n).astype(np.float64))
    return np.stack(columns, axis=1), labels


def _polygon(u: np.ndarray, v: np.ndarray, sides: int) -> np.ndarray:
    """Signed distance (inside < 0) to a regular polygon of circumradius 1 with a vertex pointing up."""
    apothem = np.cos(np.pi / sides)
    out = None
    for k in range(sides):
        angle = np.pi / 2 + np.pi / sides + 2 * np.pi * k / sides
        d = np.cos(angle) * u + np.sin(angle) * v
        out = d if out is None else np.maximum(out, d)
    return out - apothem


def _sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (approximate outside the polygon cases) of a unit-radius shape in math coordinates."""
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.75
    if shape == "triangle":
        return _polygon(u, v + 0.15, 3)
    if shape == "cross":
        w, r = 0.3, 0.95
        return np.minimum(np.maximum(np.abs(u) - w, np.abs(v) - r), np.maximum(np.abs(v) - w, np.abs(u) - r))
    if shape == "star":
        rho = np.hypot(u, v)
        phi = np.arctan2(u, v)
        return (rho - (0.62 + 0.38 * np.cos(5 * phi))) * 0.55
    # arrow pointing up: a shaft and a triangular head
    shaft = np.maximum(np.abs(u) - 0.2, np.abs(v + 0.35) - 0.6)
    n = np.hypot(0.75, 0.6)
    head = np.maximum(0.15 - v, (0.75 * np.abs(u) + 0.6 * v - 0.6) / n)
    return np.minimum(shaft, head)


def _hsv_to_rgb(hue: np.ndarray, value: np.ndarray) -> np.ndarray:
    """(n, 3) RGB in [0, 1] for saturation 1."""
    h = np.mod(hue, 360.0)[:, None] / 60.0
    k = np.mod(np.asarray([5.0, 3.0, 1.0])[None, :] + h, 6.0)
    return value[:, None] * (1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))


def render(
    family: str, factors: np.ndarray, labels: np.ndarray, size: int = DEFAULT_SIZE, chunk: int = 2048
) -> np.ndarray:
    """Render images (uint8 (n, size, size, 3)) from factor vectors, antialiased, vectorised over a chunk.

    Args:
        family: a key of :data:`FAMILIES`.
        factors: float array (n, F) in the family's factor order (see :func:`sample_factors`), absolute values.
        labels: int array (n,): the class of each image (selects the shape for shapes; arrows and colours take
            their direction and hue from the factors, so a label only has to be consistent with them).
    """
    factors = np.asarray(factors, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(factors)
    grid = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0).astype(np.float32)
    gx, gy = grid[None, None, :], grid[None, :, None]
    pixel = np.float32(2.0 / size)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    if family == "shapes":
        shape_of = np.asarray(SHAPES)[labels]
    elif family == "colours":
        shape_of = np.asarray(SHAPES)[factors[:, 7].astype(np.int64)]
    else:
        shape_of = np.full(n, "arrow")
    for start in range(0, n, chunk):
        f = factors[start : start + chunk].astype(np.float32)
        m = len(f)
        theta = np.deg2rad(f[:, 0])[:, None, None]
        radius = f[:, 1][:, None, None]
        dx = gx - f[:, 2][:, None, None]
        dy = gy - f[:, 3][:, None, None]
        c, s = np.cos(theta), np.sin(theta)
        u = (c * dx - s * dy) / radius
        v = (-s * dx - c * dy) / radius
        sdf = np.empty((m, size, size), dtype=np.float32)
        shapes = shape_of[start : start + m]
        for name in np.unique(shapes):
            rows = np.flatnonzero(shapes == name)
            sdf[rows] = _sdf(str(name), u[rows], v[rows])
        alpha = np.clip(0.5 - sdf * radius / pixel, 0.0, 1.0)[..., None]
        colour = _hsv_to_rgb(f[:, 4], f[:, 5]).astype(np.float32)[:, None, None, :]
        background = f[:, 6][:, None, None, None]
        image = background + alpha * (colour - background)
        out[start : start + m] = np.rint(image * 255.0).astype(np.uint8)
    return out


def load_synth(spec: SynthSpec) -> tuple[tuple[str, ...], tuple, tuple, str]:
    """(classes, (train images, labels, factors), (held-out images, labels, factors), source description)."""
    fam = FAMILIES[spec.family]
    splits = []
    for split, n in (("train", spec.train), ("heldout", spec.heldout)):
        factors, labels = sample_factors(spec, split, n)
        splits.append((render(spec.family, factors, labels, spec.size), labels, factors))
    source = f"rendered by densify (synth family '{spec.family}': {fam.describes}; seed {spec.seed})"
    return fam.classes, splits[0], splits[1], source

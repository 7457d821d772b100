"""Dataloader integration: a recipe as a drop-in ``transform=`` and :class:`DensifiedDataset`.

Reproducibility contract: the view produced for ``(seed, epoch, index, view)`` is a pure function of those four
numbers, whatever the number of DataLoader workers and whatever order items are read in. Each sample's random
state is derived from its key (see ``densify._rng``), so workers can never repeat each other's streams (the
albumentations#2473 / pytorch#5059 family of bugs) and epochs never replay each other.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np

from densify._rng import SampleRNG, sample_key, stream_floats, view_key, view_keys
from densify.data._imageset import ImageSet
from densify.data._working import resize_image
from densify.errors import DensifyError, RecipeError

Output = Literal["tensor", "numpy", "pil"]
_OUTPUTS = ("tensor", "numpy", "pil")
_STREAM = 0x5354524541  # domain-separates the drop-in transform's stream from per-index keys


def _in_worker_seed() -> int | None:
    """torch's per-worker seed inside a DataLoader worker (it changes every epoch), else None."""
    torch_data = sys.modules.get("torch.utils.data")
    if torch_data is None:
        return None
    info = torch_data.get_worker_info()
    return None if info is None else int(info.seed)


def to_numpy_image(image: Any) -> np.ndarray:
    """A uint8 (H, W, C) array from a numpy array, a PIL image or a torch tensor (C, H, W)."""
    if isinstance(image, np.ndarray):
        array = image
    elif hasattr(image, "getbands"):  # PIL
        from densify.data._folder import to_8bit

        image = to_8bit(image)
        if image.mode not in ("L", "RGB"):
            image = image.convert("L" if image.mode in ("1", "LA", "I", "F") else "RGB")
        array = np.asarray(image)
    elif type(image).__module__.startswith("torch"):
        tensor = image.detach().cpu()
        if tensor.ndim == 3:
            tensor = tensor.permute(1, 2, 0)
        array = tensor.numpy()
        if np.issubdtype(array.dtype, np.floating):
            array = np.rint(np.clip(array, 0, 1) * 255).astype(np.uint8)
    else:
        raise DensifyError(
            f"cannot augment an object of type {type(image).__name__}; pass a numpy array, PIL image or tensor"
        )
    if array.ndim == 2:
        array = array[..., None]
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise DensifyError(
            f"images must be uint8 (H, W), (H, W, 1) or (H, W, 3), got {array.dtype} {array.shape}"
        )
    return array


def convert_output(array: np.ndarray, output: Output):
    if output == "numpy":
        return array
    if output == "pil":
        from PIL import Image

        return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    import torch

    # One pass into a new float32 C×H×W array, bit-identical to ToTensor's division (and twice as fast).
    return torch.from_numpy(np.divide(array.transpose(2, 0, 1), np.float32(255), dtype=np.float32))


class Augmenter:
    """A compiled recipe with a seed: call it as a torchvision ``transform=`` or ask for a given sample's view.

    Args:
        recipe: a :class:`~densify.recipes.Recipe`.
        strength: scales every magnitude, in [0, 1] (1 = as written in the recipe).
        seed: the seed of every augmented view.
        output: what :meth:`__call__` returns: ``"tensor"`` (float32 C×H×W in [0, 1], like ``ToTensor``),
            ``"numpy"`` (uint8 H×W×C) or ``"pil"``.

    ``augment(image, index=i, view=v, epoch=e)`` is a pure function of (seed, epoch, index, view).
    ``augmenter(image)`` (the drop-in transform, which is not told the index) draws from a per-process stream
    keyed by the seed and torch's per-worker seed, so workers never repeat each other and epochs differ; for
    index-exact replay use :class:`DensifiedDataset`.
    """

    def __init__(self, recipe, strength: float = 1.0, seed: int = 0, output: Output = "tensor") -> None:
        from densify.recipes import compile_recipe
        from densify.recipes._strength import check_strength

        if output not in _OUTPUTS:
            raise DensifyError(f"output must be one of {', '.join(_OUTPUTS)}, got {output!r}")
        self.recipe = recipe
        self.strength = check_strength(strength)
        self.seed = int(seed)
        self.output = output
        self._compose = compile_recipe(recipe, self.strength)  # validates now, in the caller's process
        self._flips = _flip_plan(self._compose)
        self._pid: int | None = None

    def __repr__(self) -> str:
        return f"Augmenter(recipe={self.recipe.name!r}, strength={self.strength}, seed={self.seed}, output={self.output!r})"

    def __getstate__(self) -> dict[str, Any]:
        """The recipe and settings only: the compiled pipeline holds this process's generators (which do not
        pickle), so a spawned DataLoader worker (macOS' and Windows' default) compiles its own."""
        state = self.__dict__.copy()
        for runtime in ("_rng", "_compose", "_flips", "_stream", "_calls", "_epoch_keys"):
            state.pop(runtime, None)
        state["_pid"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from densify.recipes import compile_recipe

        self.__dict__.update(state)
        self._compose = compile_recipe(self.recipe, self.strength)
        self._flips = _flip_plan(self._compose)

    @property
    def compose(self):
        """The ``albumentations.Compose`` this augmenter runs."""
        return self._compose

    def _ready(self) -> None:
        """Per-process set-up: fresh generators; inside a DataLoader worker, OpenCV single-threaded."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._rng = SampleRNG()
        self._compose.set_random_state(self._rng.np, self._rng.py)
        if self._flips is not None and not self._flips_hold():
            self._flips = None  # this albumentations draws differently: every view goes through it
        worker_seed = _in_worker_seed()
        if worker_seed is not None:
            import cv2

            cv2.setNumThreads(0)  # workers already run in parallel; OpenCV's own threads would oversubscribe
        self._stream = sample_key(self.seed, _STREAM, worker_seed if worker_seed is not None else -1)
        self._calls = 0
        self._epoch_keys: dict[int, int] = {}

    def _named(self) -> str:
        """How errors name the recipe: its file too when it is the user's own (not a built-in)."""
        from densify._resources import builtin_recipes_dir

        source = self.recipe.source
        named = f"recipe '{self.recipe.name}'"
        if source is None or Path(source).resolve().parent == builtin_recipes_dir().resolve():
            return named
        return f"{source}: {named}"

    def _apply(self, image: np.ndarray, key: int, state: int | None = None) -> np.ndarray:
        if (
            not self.recipe.pipeline
        ):  # nothing to draw nor apply: albumentations' empty Compose returns the image
            return image
        self._rng.reseed(key, state)
        out = self._compose(image=image)["image"]
        if out.dtype != np.uint8:
            raise RecipeError(
                f"{self._named()} turned uint8 images into {out.dtype}; densify recipes must keep uint8"
            )
        if out.shape != image.shape:
            raise RecipeError(
                f"{self._named()} changed the image shape from {image.shape} to {out.shape}; "
                "densify recipes must keep the shape"
            )
        return out

    def _flips_hold(self, probes: int = 64) -> bool:
        """Whether the flips fast path makes albumentations' pixels for ``probes`` keys (checked once per process,
        so that an albumentations release that draws in another order turns the fast path off, not wrong)."""
        image = np.arange(20, dtype=np.uint8).reshape(4, 5, 1)  # asymmetric along both axes
        keys, states = view_keys(
            sample_key(self.seed, _STREAM, -2), np.arange(probes), np.zeros(probes, np.int64)
        )
        fast = _flipped(np.repeat(image[None], probes, axis=0), self._flips, keys, states)
        return all(
            np.array_equal(fast[j], self._apply(image, key, state))
            for j, (key, state) in enumerate(zip(keys, states, strict=True))
        )

    def check_shape(self, shape: tuple[int, int, int], tries: int = 8) -> None:
        """Raise a one-line :class:`RecipeError` unless this recipe works on uint8 images of ``shape`` (H, W, C).

        Every transform runs once with p=1 (so one that fails only when drawn is found now, not mid-audit), then
        the whole recipe on ``tries`` keys; each must return a uint8 image of the same shape.
        """
        from densify.recipes import compile_recipe
        from densify.recipes._albu import albumentations

        A = albumentations()
        h, w, c = shape
        image = np.random.default_rng(0).integers(0, 256, (h, w, c), dtype=np.uint8)
        for where, transform in _leaves(compile_recipe(self.recipe, self.strength).transforms, "pipeline"):
            transform.p = 1.0  # a fresh copy: forcing it on changes nothing the augmenter uses
            try:
                out = A.Compose([transform], p=1.0, seed=0)(image=image)["image"]
            except Exception as exc:  # third-party code: any failure is the recipe's misfit to this data
                message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise RecipeError(
                    f"{self._named()}: {where}.{type(transform).__name__} fails on {h}x{w}x{c} "
                    f"images: {message}"
                ) from None
            if out.dtype != np.uint8 or out.ndim != 3 or out.shape[2] != c:
                raise RecipeError(
                    f"{self._named()}: {where}.{type(transform).__name__} turns {h}x{w}x{c} uint8 "
                    f"images into {out.dtype} {out.shape}; recipe steps must keep uint8 and the channel count"
                )
        for key in range(tries):
            try:
                self.augment(image, index=key)
            except RecipeError:
                raise
            except Exception as exc:
                message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise RecipeError(f"{self._named()} fails on {h}x{w}x{c} images: {message}") from None

    def augment(self, image: np.ndarray, index: int, view: int = 0, epoch: int = 0) -> np.ndarray:
        """The view ``view`` of item ``index`` in epoch ``epoch``: uint8 (H, W, C), a pure function of the key."""
        self._ready()
        return self._apply(to_numpy_image(image), view_key(self._epoch_key(epoch), index, view))

    def _epoch_key(self, epoch: int) -> int:
        """``sample_key(seed, epoch)``, memoised per process (call :meth:`_ready` first)."""
        base = self._epoch_keys.get(epoch)
        if base is None:
            base = self._epoch_keys[epoch] = sample_key(self.seed, epoch)
        return base

    def applied(
        self, image: np.ndarray, index: int, view: int = 0, epoch: int = 0
    ) -> tuple[np.ndarray, list[tuple[str, dict]]]:
        """:meth:`augment`'s view together with what albumentations applied to make it: a list of (transform
        class name, its sampled parameters) in order, transforms that were skipped left out."""
        self._ready()
        self._rng.reseed(view_key(self._epoch_key(epoch), index, view))
        self._compose.save_applied_params = True
        try:
            result = self._compose(image=to_numpy_image(image))
        finally:
            self._compose.save_applied_params = False
        return result["image"], list(result.get("applied_transforms", []))

    def view_of(self, images: ImageSet, index: int, view: int = 0, epoch: int = 0) -> np.ndarray:
        """:meth:`augment` of image ``index`` of ``images`` under the working-size rule: the stored pixels
        (``images.view_sources``) are augmented, then the view is resized to ``images``' (working) size."""
        out = self.augment(images.view_sources[index], index=index, view=view, epoch=epoch)
        return resize_image(out, images.images.shape[1:3])

    def views_of(self, images: ImageSet, indices, views, epoch: int = 0) -> np.ndarray:
        """:meth:`view_of` for arrays of image indices and view numbers, as one uint8 array (N, H, W, C) at the
        working size: the same pixels, with the per-view keys computed in one pass."""
        self._ready()
        index_array = np.asarray(indices, dtype=np.int64).reshape(-1)
        view_array = np.broadcast_to(np.asarray(views, dtype=np.int64), index_array.shape)
        sources, size = images.view_sources, images.images.shape[1:3]
        resize = sources.shape[1:3] != size
        if not self.recipe.pipeline and not resize:  # the identity (as _apply): one gather, no keys
            return np.asarray(sources[index_array], dtype=np.uint8)
        keys, states = view_keys(self._epoch_key(epoch), index_array, view_array)
        out = np.empty((len(index_array), *images.images.shape[1:]), np.uint8)
        if self._flips is not None and len(index_array) >= FLIP_BATCH_MIN:
            # by blocks of at most FLIP_BLOCK_BYTES of stored pixels (each view's flips depend on its key alone)
            step = max(FLIP_BATCH_MIN, FLIP_BLOCK_BYTES // max(1, int(np.prod(sources.shape[1:]))))
            for start in range(0, len(index_array), step):
                part = slice(start, start + step)
                flipped = _flipped(
                    np.asarray(sources[index_array[part]], dtype=np.uint8),
                    self._flips,
                    keys[part],
                    states[part],
                )
                out[part] = np.stack([resize_image(view, size) for view in flipped]) if resize else flipped
            return out
        for j, (index, key, state) in enumerate(zip(index_array.tolist(), keys, states, strict=True)):
            view = self._apply(sources[index], key, state)
            out[j] = resize_image(view, size) if resize else view
        return out

    def __call__(self, image: Any):
        """Drop-in transform: augment ``image`` (numpy, PIL or tensor) and return it as ``self.output``."""
        self._ready()
        self._calls += 1
        return convert_output(
            self._apply(to_numpy_image(image), view_key(self._stream, self._calls, 0)), self.output
        )


#: batches of at least this many views of a flips-only recipe are flipped in numpy (see :func:`_flip_plan`)
FLIP_BATCH_MIN = 8
#: ... by blocks of at most this many bytes of stored pixels (the 256 views checked of 1600 x 1200 photos held
#: 1.5 GB at once, and their flipped copies 0.75 GB more)
FLIP_BLOCK_BYTES = 1 << 26
_FLIP_AXES = {"HorizontalFlip": 1, "VerticalFlip": 0}  # the image axis (H, W, C) each one reverses


def _flip_plan(compose) -> tuple[float, list[tuple[int, float]]] | None:
    """(the Compose's p, [(image axis, p) per transform]) when a compiled recipe is nothing but albumentations'
    HorizontalFlip and VerticalFlip, else None.

    Such a recipe draws nothing but its probability checks: albumentations' Compose draws one float (run if it is
    below the Compose's p), then each transform with 0 < p < 1 one more (applied if below its p; p >= 1 applies
    without a draw, p <= 0 skips without one). Those floats are the first of each view's stream
    (:func:`~densify._rng.stream_floats`), so a batch of views can be decided and flipped in numpy: the same pixels
    as albumentations makes for the same keys (tested), without a Python call per image.
    """
    transforms = list(getattr(compose, "transforms", None) or [])
    if type(compose).__name__ != "Compose" or not transforms:
        return None
    plan = []
    for t in transforms:
        name = type(t).__name__
        if name not in _FLIP_AXES or not type(t).__module__.startswith("albumentations."):
            return None
        plan.append((_FLIP_AXES[name], float(t.p)))
    return float(compose.p), plan


def _flip_choices(plan, keys: list[int], states: list[int]) -> list[tuple[int, np.ndarray]]:
    """[(image axis, bool (N,): the views it flips)] for the views of ``keys`` under a :func:`_flip_plan`
    recipe, in the recipe's order (transforms that never apply left out)."""
    compose_p, flips = plan
    floats = stream_floats(keys, states, 1 + sum(0.0 < p < 1.0 for _, p in flips))
    run = floats[:, 0] < compose_p
    choices, column = [], 1
    for axis, p in flips:
        if p <= 0.0:
            continue
        if p >= 1.0:
            choices.append((axis, run))
        else:
            choices.append((axis, run & (floats[:, column] < p)))
            column += 1
    return choices


def _flipped(batch: np.ndarray, plan, keys: list[int], states: list[int]) -> np.ndarray:
    """The views of ``batch`` (uint8 (N, H, W, C), the sources of ``keys``) under a :func:`_flip_plan` recipe,
    flipped in place."""
    for axis, chosen in _flip_choices(plan, keys, states):
        rows = np.flatnonzero(chosen)
        if len(rows):
            batch[rows] = np.flip(batch[rows], axis=axis + 1)
    return batch


def _flipped_each(images: list[np.ndarray], plan, keys: list[int], states: list[int]) -> list[np.ndarray]:
    """:func:`_flipped` for images of any sizes (H, W, C), one array each."""
    out = list(images)
    for axis, chosen in _flip_choices(plan, keys, states):
        for j in np.flatnonzero(chosen).tolist():
            out[j] = np.flip(out[j], axis=axis)
    return [np.ascontiguousarray(image) for image in out]


def _leaves(transforms, where: str):
    """(key path, transform) of every leaf transform of a Compose's transform list (blocks descended)."""
    for i, t in enumerate(transforms):
        children = getattr(t, "transforms", None)
        if children is not None and type(t).__name__ in ("OneOf", "SomeOf"):  # the blocks densify builds
            yield from _leaves(
                children, f"{where}[{i}].{'one_of' if type(t).__name__ == 'OneOf' else 'some_of'}.transforms"
            )
        else:
            yield f"{where}[{i}]", t


def load_recipe(name_or_path, strength: float = 1.0, seed: int = 0, output: Output = "tensor") -> Augmenter:
    """Load a recipe (built-in name, YAML file, albumentations JSON/YAML, or an already-read
    :class:`~densify.recipes.Recipe`) as a seeded :class:`Augmenter`.

    >>> from torchvision.datasets import FashionMNIST                       # doctest: +SKIP
    >>> train = FashionMNIST(root, transform=densify.load_recipe("affine-light", seed=0))  # doctest: +SKIP
    """
    from densify.recipes import Recipe, read_recipe

    recipe = name_or_path if isinstance(name_or_path, Recipe) else read_recipe(name_or_path)
    return Augmenter(recipe, strength=strength, seed=seed, output=output)


class DensifiedDataset:
    """``views`` augmented views of every item of ``base``: a map-style dataset of ``len(base) * views`` items.

    Item ``i`` is view ``i % views`` of base item ``i // views``, returned as ``(image, label)``, and is a pure
    function of (seed, epoch, base index, view): the same with 0, 2 or 4 workers and in any read order. Call
    :meth:`set_epoch` before each epoch (as with ``DistributedSampler``) to get new views each epoch; the epoch is
    held in shared memory, so DataLoader workers see it too, ``persistent_workers=True`` included (call it before
    the epoch's ``iter(loader)``: workers fetch ahead of the loop, from that moment).

    Args:
        base: an :class:`~densify.ImageSet`, or any indexable dataset whose items are ``(image, label)`` with
            images as numpy arrays, PIL images or tensors (torchvision datasets without a transform).
        recipe: an :class:`Augmenter`, or a recipe name or path (then ``strength`` and ``seed`` apply).
        views: augmented views per item.
        output: ``"tensor"`` (default), ``"numpy"`` or ``"pil"``.
    """

    def __init__(
        self, base, recipe, views: int = 1, *, strength: float = 1.0, seed: int = 0, output: Output = "tensor"
    ) -> None:
        if isinstance(views, bool) or not isinstance(views, int) or views < 1:
            raise DensifyError(f"views must be a positive integer, got {views!r}")
        if output not in _OUTPUTS:
            raise DensifyError(f"output must be one of {', '.join(_OUTPUTS)}, got {output!r}")
        self.base = base
        self.augmenter = recipe if isinstance(recipe, Augmenter) else load_recipe(recipe, strength, seed)
        self.views = views
        self.output = output
        import torch

        # the epoch in shared memory: persistent DataLoader workers (forked or spawned) read what set_epoch wrote
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        images = getattr(base, "images", None)
        self._arrays = (images, base.labels) if isinstance(images, np.ndarray) else None
        if isinstance(base, ImageSet):  # a recipe that cannot work on these images says so now, in one line
            self.augmenter.check_shape(base.source_shape)

    def __deepcopy__(self, memo):
        """A copy with its own epoch, shared with its own DataLoader workers as the original's is with its."""
        import copy

        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            setattr(new, key, copy.deepcopy(value, memo))
        new._epoch.share_memory_()  # deepcopy gives the tensor private memory
        return new

    @property
    def epoch(self) -> int:
        """The epoch whose views items are (see :meth:`set_epoch`)."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Draw the views of ``epoch`` from now on, in this process and in its DataLoader workers."""
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.base) * self.views

    def _base_item(self, index: int) -> tuple[Any, int]:
        if self._arrays is not None:  # ImageSet: read the arrays directly
            return self._arrays[0][index], int(self._arrays[1][index])
        item = self.base[index]
        return (item[0], item[1]) if isinstance(item, tuple | list) else (item, -1)

    def __getitem__(self, i: int):
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} items")
        index, view = divmod(i % n, self.views)
        if isinstance(self.base, ImageSet):  # the working-size rule: augment as stored, then resize
            out, label = (
                self.augmenter.view_of(self.base, index, view, self.epoch),
                int(self.base.labels[index]),
            )
        else:
            image, label = self._base_item(index)
            out = self.augmenter.augment(image, index=index, view=view, epoch=self.epoch)
        return convert_output(out, self.output), label

    def __getitems__(self, indices) -> list:
        """Items ``indices`` in order, as a list of ``(image, label)``: what a DataLoader fetches for a batch.

        The same items as ``[self[i] for i in indices]`` (each a pure function of its key), with the per-item
        bookkeeping done once per batch and, for ``output="tensor"``, the batch converted in one pass.
        """
        n, augmenter = len(self), self.augmenter
        items = np.asarray(indices, dtype=np.int64).reshape(-1)
        if items.size and not (-n <= items.min() and items.max() < n):
            bad = int(items[(items < -n) | (items >= n)][0])
            raise IndexError(f"index {bad} out of range for {n} items")
        index_array, view_array = np.divmod(items % n, self.views)
        if isinstance(self.base, ImageSet):  # the working-size rule, as in view_of
            batch = augmenter.views_of(self.base, index_array, view_array, self.epoch)
            labels = self.base.labels[index_array].tolist()
            if self.output == "tensor":
                import torch

                tensors = np.divide(batch.transpose(0, 3, 1, 2), np.float32(255), dtype=np.float32)
                return list(zip(torch.from_numpy(tensors).unbind(0), labels, strict=True))
            outs = list(batch)
        else:
            augmenter._ready()
            keys, states = view_keys(augmenter._epoch_key(self.epoch), index_array, view_array)
            items = [self._base_item(index) for index in index_array.tolist()]
            labels = [label for _, label in items]
            if augmenter._flips is not None and len(items) >= FLIP_BATCH_MIN:  # as in views_of
                outs = _flipped_each(
                    [to_numpy_image(image) for image, _ in items], augmenter._flips, keys, states
                )
            else:
                outs = [
                    augmenter._apply(to_numpy_image(image), key, state)
                    for (image, _), key, state in zip(items, keys, states, strict=True)
                ]
        return [(convert_output(out, self.output), label) for out, label in zip(outs, labels, strict=True)]

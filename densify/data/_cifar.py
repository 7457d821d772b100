"""CIFAR-10 / CIFAR-100 "python version" pickle batches, read with an unpickler that builds only numpy arrays."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from densify.errors import DataError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}
_LAYOUTS = {
    # name: (train files, held-out files, meta file, label key, names key)
    "cifar-10": (
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        "labels",
        "label_names",
    ),
    "cifar-100": (["train"], ["test"], "meta", "fine_labels", "fine_label_names"),
}
_SUBFOLDERS = ("", "cifar-10-batches-py", "cifar-100-python")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuse every global but the few numpy constructors CIFAR's pickles need (no arbitrary code)."""

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = _NumpyOnlyUnpickler(fh, encoding="bytes").load()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
    ) as exc:
        raise DataError(f"{path}: corrupt or truncated CIFAR pickle ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: a CIFAR batch must be a dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _layout(root: Path) -> tuple[Path, str]:
    for sub in _SUBFOLDERS:
        folder = root / sub if sub else root
        for name, (train, _, meta, _, _) in _LAYOUTS.items():
            if (folder / train[0]).is_file() and (folder / meta).is_file():
                return folder, name
    raise DataError(
        f"{root}: no CIFAR batches found (expected data_batch_1..5, test_batch, batches.meta for CIFAR-10, "
        "or train, test, meta for CIFAR-100)"
    )


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{path}: CIFAR batch lacks the 'data' or '{label_key}' entry")
    data, labels = np.asarray(batch["data"]), np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path}: CIFAR 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}"
        )
    if len(data) != len(labels):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_cifar(
    root: Path,
) -> tuple[tuple[str, ...], tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(classes, (train images N×32×32×3, labels), (test images, labels)) of a CIFAR-10/100 python folder."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    folder, name = _layout(root)
    train_files, held_files, meta_file, label_key, names_key = _LAYOUTS[name]
    meta = _unpickle(folder / meta_file)
    if names_key not in meta:
        raise DataError(f"{folder / meta_file}: CIFAR meta file lacks '{names_key}'")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key])

    def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_read_batch(folder / f, label_key) for f in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return classes, read(train_files), read(held_files)

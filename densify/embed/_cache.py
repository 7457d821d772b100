"""On-disk cache of embeddings (and trained encoder weights), keyed by a content hash of everything they depend on.

Each entry is one ``.npz`` written atomically, holding its arrays and a checksum of them; an entry that does not
load or whose checksum does not match is treated as missing (and replaced), never trusted.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from densify._hash import digest
from densify._io import write_atomic

_CHECKSUM = "__checksum__"


def default_cache_dir() -> Path:
    """``$DENSIFY_CACHE``, else ``$XDG_CACHE_HOME/densify``, else ``~/.cache/densify``."""
    if os.environ.get("DENSIFY_CACHE"):
        return Path(os.environ["DENSIFY_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "densify"


class ArrayCache:
    """``get(key)`` / ``put(key, arrays)`` of named numpy arrays under a folder; ``None`` folder disables it."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.hits = self.misses = self.corrupt = 0

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        if self.folder is None:
            return None
        path = self._path(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            stored = str(arrays.pop(_CHECKSUM))
            if stored != digest(*[arrays[k] for k in sorted(arrays)], *sorted(arrays)):
                raise ValueError("checksum mismatch")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
            self.corrupt += 1
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return arrays

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        if self.folder is None:
            return
        checksum = digest(*[arrays[k] for k in sorted(arrays)], *sorted(arrays))
        # streamed into the temporary file: no serialised copy of the arrays in memory (512 MB of features at
        # 250,000 images was held twice, in a BytesIO and in its getvalue())
        write_atomic(self._path(key), lambda fh: np.savez(fh, **arrays, **{_CHECKSUM: np.array(checksum)}))

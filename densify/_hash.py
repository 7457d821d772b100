"""Content hashes: the keys of every cache and the fingerprints of data, settings and results."""

from __future__ import annotations

import hashlib

import numpy as np


def digest(*parts: object) -> str:
    """A short stable hex digest of ``parts`` (arrays by their bytes, everything else by repr)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype, part.shape)).encode())
            h.update(np.ascontiguousarray(part).data)
        else:
            h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()[:24]

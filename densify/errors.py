"""Typed errors. Every error a user can cause is a :class:`DensifyError`.

The CLI prints ``str(error)`` as one line on stderr and exits with ``error.exit_code`` (2).
Messages name the file, key or value at fault, so that one line is enough to fix the input.
"""

from __future__ import annotations


class DensifyError(Exception):
    """Base class of densify's user-facing errors."""

    exit_code = 2


class DataError(DensifyError):
    """A data source is missing, malformed, or inconsistent."""


class SpecError(DataError):
    """A data-spec string cannot be parsed (unknown prefix, empty path, bad option)."""


class RecipeError(DensifyError):
    """A recipe file or recipe name is invalid: the message names the file, the key path and what is allowed."""


class CoverageError(DensifyError):
    """Embeddings or settings that the coverage metrics cannot be computed on (too few points, NaN, shapes)."""


class EncoderError(DensifyError):
    """An encoder cannot be built, loaded or run (unknown name, missing or mismatched weights)."""


class TrainError(DensifyError):
    """Training cannot start or went wrong (unknown model, NaN loss, a checkpoint that does not match)."""

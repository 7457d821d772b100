"""Manifold diagnostics: intrinsic dimension, how coverage grows with data, what a recipe's views are worth.

Pure functions over embeddings (arrays in, frozen dataclasses out), like :mod:`densify.coverage`.
"""

from densify.manifold._curve import (
    FRACTIONS,
    TARGET,
    CoverageCurve,
    PowerLaw,
    coverage_curve,
    data_multiplier,
    fit_power_law,
    nested_subsets,
)
from densify.manifold._dimension import Dimension, dimensions, intrinsic_dimension, mle_terms, twonn_terms
from densify.manifold._factors import factor_coordinates, factor_coverage, view_factors
from densify.manifold._report import PIXEL_COMPONENTS, ManifoldReport, manifold_diagnostics, pixel_projection

__all__ = [
    "FRACTIONS",
    "PIXEL_COMPONENTS",
    "TARGET",
    "CoverageCurve",
    "Dimension",
    "ManifoldReport",
    "PowerLaw",
    "coverage_curve",
    "data_multiplier",
    "dimensions",
    "factor_coordinates",
    "factor_coverage",
    "fit_power_law",
    "intrinsic_dimension",
    "manifold_diagnostics",
    "mle_terms",
    "nested_subsets",
    "pixel_projection",
    "twonn_terms",
    "view_factors",
]

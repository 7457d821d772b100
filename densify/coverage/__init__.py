"""Coverage estimator: nearest-neighbour metrics of how a recipe densifies the manifold near held-out data.

Pure functions, arrays in and frozen dataclasses out (the ``prdc`` style); k-NN through faiss, chunked.
"""

from densify.coverage._bootstrap import mean_ci, per_class_means, ratio_ci
from densify.coverage._health import is_degenerate, view_health
from densify.coverage._knn import (
    APPROX_MIN_BASE,
    approximate_index,
    knn,
    kth_neighbour_distance,
    nearest,
    search_log,
    search_mode,
    set_search,
    set_threads,
)
from densify.coverage._metrics import (
    Baseline,
    Metric,
    heldout_coverage,
    knn_vote,
    prepare_baseline,
    recipe_metrics,
)
from densify.coverage._prdc import PRDC, ball_counts, prdc, prdc_points

__all__ = [
    "APPROX_MIN_BASE",
    "PRDC",
    "Baseline",
    "Metric",
    "approximate_index",
    "ball_counts",
    "heldout_coverage",
    "is_degenerate",
    "knn",
    "knn_vote",
    "kth_neighbour_distance",
    "mean_ci",
    "nearest",
    "per_class_means",
    "prdc",
    "prdc_points",
    "prepare_baseline",
    "ratio_ci",
    "recipe_metrics",
    "search_log",
    "search_mode",
    "set_search",
    "set_threads",
    "view_health",
]

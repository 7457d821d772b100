"""Data quality: likely label errors (confident learning), duplicates and train/held-out leakage, outliers, and
whether the held-out set is drawn like the training set."""

from densify.quality._duplicates import find_duplicates
from densify.quality._issues import (
    COLUMNS,
    DEFAULT_ENCODER,
    KINDS,
    DataIssues,
    data_issues,
    find_data_issues,
    report_section,
    summary_lines,
    write_issues,
)
from densify.quality._labels import (
    confident_joint,
    confident_thresholds,
    knn_disagreement,
    label_issues,
    noise_rates,
    out_of_fold_probabilities,
    overlapping_classes,
    self_confidence,
)
from densify.quality._outliers import class_spread, heldout_outlier_scores, outlier_scores, residual_scores
from densify.quality._shift import SHIFT_FLOOR, heldout_shift, shift_shares, shift_split

__all__ = [
    "COLUMNS",
    "DEFAULT_ENCODER",
    "KINDS",
    "SHIFT_FLOOR",
    "DataIssues",
    "class_spread",
    "confident_joint",
    "confident_thresholds",
    "data_issues",
    "find_data_issues",
    "find_duplicates",
    "heldout_outlier_scores",
    "heldout_shift",
    "knn_disagreement",
    "label_issues",
    "noise_rates",
    "out_of_fold_probabilities",
    "outlier_scores",
    "overlapping_classes",
    "report_section",
    "residual_scores",
    "self_confidence",
    "shift_shares",
    "shift_split",
    "summary_lines",
    "write_issues",
]

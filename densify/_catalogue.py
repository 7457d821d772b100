"""The metric catalogue: every coverage metric and training-free predictor, described once.

The verdict, metrics.csv, report.html, the plots, ``densify compare`` and the terminal tables all derive their
lists and labels from here, so a new metric is one entry here and one function in ``densify/coverage``.
Order matters: it is the order of predictors in report.json and of columns in every table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is named and shown.

    name: its key in report.json. label: its name in prose and table headers. short: a narrow terminal header.
    signed: shown with a sign (a gain). predictor: a training-free predictor of accuracy gain (higher = better).
    factors: for a combined predictor, the metrics whose product it is. table: shown in the recipes tables of
    the HTML report and ``densify compare``; terminal: in ``densify evaluate``'s terminal table.
    plot: a multi-line axis label, for metrics that have a panel of the coverage plot.
    """

    name: str
    label: str
    short: str = ""
    signed: bool = False
    predictor: bool = True
    factors: tuple[str, ...] = ()
    table: bool = False
    terminal: bool = False
    plot: str = ""


CATALOGUE: tuple[MetricInfo, ...] = (
    MetricInfo("coverage_gain", "coverage gain", "cov. gain", signed=True, table=True,
               plot="held-out coverage gain\n(share of held-out points\nnewly covered)"),
    MetricInfo("densification", "densification", "densif.", signed=True, table=True, terminal=True,
               plot="densification\n(mean log-distance reduction,\nheld-out -> nearest training sample)"),
    MetricInfo("label_coverage_gain", "label-aware coverage gain", "label cov. gain", signed=True),
    MetricInfo("knn_accuracy_gain", "k-NN accuracy gain", "kNN acc. gain", signed=True, table=True, terminal=True,
               plot="k-NN accuracy gain\n(share of held-out points)"),
    MetricInfo("probe_accuracy_gain", "linear-probe accuracy gain", "probe gain", signed=True),
    MetricInfo("probe_margin_gain", "linear-probe margin gain", "probe margin", signed=True),
    MetricInfo("class_margin_gain", "class-margin gain", "margin gain", signed=True),
    MetricInfo("alignment_gain", "kernel-alignment gain", "align. gain", signed=True),
    MetricInfo("prediction_variance", "prediction variance", "pred. var."),
    MetricInfo("fidelity", "fidelity", "fidelity", table=True, terminal=True),
    MetricInfo("label_consistency", "label consistency", "label cons.", table=True, terminal=True),
    MetricInfo("diversity", "diversity", "diversity", table=True, terminal=True),
    MetricInfo("fidelity_x_coverage_gain", "fidelity x coverage gain", factors=("fidelity", "coverage_gain")),
    MetricInfo("consistency_x_densification", "label consistency x densification",
               factors=("label_consistency", "densification")),
    MetricInfo("consistency_x_diversity", "label consistency x diversity",  # affinity x diversity
               factors=("label_consistency", "diversity")),
    MetricInfo("measured_gain", "measured accuracy gain", predictor=False, signed=True),
)  # fmt: skip

BY_NAME = {m.name: m for m in CATALOGUE}
#: metrics of a recipe that are training-free predictors of accuracy gain (higher = better)
BASE_PREDICTORS = tuple(m.name for m in CATALOGUE if m.predictor and not m.factors)
#: combinations: {name: factors}; a combination's value is the product of its factors' values
COMBINED = {m.name: m.factors for m in CATALOGUE if m.factors}
PREDICTORS = tuple(m.name for m in CATALOGUE if m.predictor)
LABELS = {m.name: m.label for m in CATALOGUE}
#: the metrics of the terminal summary of `densify coverage`: (name, short header)
SUMMARY = tuple((m.name, m.short) for m in CATALOGUE if m.short)
TABLE = tuple(m.name for m in CATALOGUE if m.table)
TERMINAL = tuple((m.name, m.short) for m in CATALOGUE if m.terminal)
PLOTTED = tuple((m.name, m.plot) for m in CATALOGUE if m.plot)

#: accuracy gains over none a report can hold beside the metrics: their report section and label (in points)
GAIN_SECTIONS = {"measured_gain": "training", "proxy_gain": "proxy"}
GAIN_LABELS = {"measured_gain": "gain over none (points)", "proxy_gain": "proxy gain over none (points)"}

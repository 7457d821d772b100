"""The audit behind ``densify evaluate``: coverage + trained confirmation + verdict, written as a report bundle;
and ``densify compare`` of several bundles."""

from densify.audit._bundle import OutError, read_report
from densify.audit._compare import compare_reports, write_comparison
from densify.audit._plan import AuditPlan, plan_audit, resolve_recipes
from densify.audit._run import DEFAULT_RECIPES, SCHEMA, AuditSettings, metrics_csv, run_audit
from densify.audit._stats import bootstrap_rho, permutation_p, ranks, spearman
from densify.audit._verdict import DEFAULT_PREDICTOR, PREDICTORS, flags, predictor_value, verdict

__all__ = [
    "DEFAULT_PREDICTOR",
    "DEFAULT_RECIPES",
    "PREDICTORS",
    "SCHEMA",
    "AuditPlan",
    "AuditSettings",
    "OutError",
    "bootstrap_rho",
    "compare_reports",
    "flags",
    "metrics_csv",
    "permutation_p",
    "plan_audit",
    "predictor_value",
    "ranks",
    "read_report",
    "resolve_recipes",
    "run_audit",
    "spearman",
    "verdict",
    "write_comparison",
]

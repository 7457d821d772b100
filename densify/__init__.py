"""densify: which augmentations actually help your data, and why.

The public API is exactly ``__all__``. Names load lazily, so ``import densify`` (and ``densify --help``) stay
fast: numpy, torch, albumentations and matplotlib are imported only when something that needs them is used.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from densify._version import __version__

# albumentations contacts the network on import unless told not to; densify never uses the network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# OpenMP threads (torch, faiss) that wait by spinning starve other processes on a shared machine: measured by
# benchmarks/bench_contention.py on 2 cores, two audits at once took 6.2x as long as one alone with the runtime's
# default and 1.4x with passive waiting. Set before torch or faiss load their OpenMP runtime; an explicit
# OMP_WAIT_POLICY wins, and DENSIFY_OMP_WAIT_POLICY=default leaves the runtime's own default.
if os.environ.get("DENSIFY_OMP_WAIT_POLICY", "passive").lower() != "default":
    os.environ.setdefault("OMP_WAIT_POLICY", os.environ.get("DENSIFY_OMP_WAIT_POLICY", "PASSIVE").upper())

_LAZY = {
    "AuditPlan": "densify.audit",
    "AuditSettings": "densify.audit",
    "plan_audit": "densify.audit",
    "Augmenter": "densify.loader",
    "DataError": "densify.errors",
    "DataIssues": "densify.quality",
    "data_issues": "densify.quality",
    "find_data_issues": "densify.quality",
    "heldout_shift": "densify.quality",
    "DataSplits": "densify.data",
    "at_working_size": "densify.data",
    "DensifiedDataset": "densify.loader",
    "DensifyError": "densify.errors",
    "Encoder": "densify.embed",
    "get_encoder": "densify.embed",
    "estimate_coverage": "densify.estimate",
    "TrainConfig": "densify.train",
    "train_recipes": "densify.train",
    "ImageSet": "densify.data",
    "Recipe": "densify.recipes",
    "RecipeError": "densify.errors",
    "SpecError": "densify.errors",
    "list_recipes": "densify.recipes",
    "load_data": "densify.data",
    "coverage_curve": "densify.manifold",
    "intrinsic_dimension": "densify.manifold",
    "manifold_diagnostics": "densify.manifold",
    "load_recipe": "densify.loader",
    "parse_spec": "densify.data",
    "read_recipe": "densify.recipes",
    "read_report": "densify.audit",
    "run_audit": "densify.audit",
    "stratified_subset": "densify.data",
    "write_comparison": "densify.audit",
}

__all__ = [
    "AuditPlan",
    "AuditSettings",
    "Augmenter",
    "DataError",
    "DataIssues",
    "DataSplits",
    "DensifiedDataset",
    "DensifyError",
    "Encoder",
    "ImageSet",
    "Recipe",
    "RecipeError",
    "SpecError",
    "TrainConfig",
    "__version__",
    "at_working_size",
    "coverage_curve",
    "data_issues",
    "estimate_coverage",
    "find_data_issues",
    "get_encoder",
    "heldout_shift",
    "intrinsic_dimension",
    "list_recipes",
    "load_data",
    "load_recipe",
    "manifold_diagnostics",
    "parse_spec",
    "plan_audit",
    "read_recipe",
    "read_report",
    "run_audit",
    "stratified_subset",
    "train_recipes",
    "write_comparison",
]

if TYPE_CHECKING:
    from densify.audit import AuditPlan, AuditSettings, plan_audit, read_report, run_audit, write_comparison
    from densify.data import DataSplits, ImageSet, at_working_size, load_data, parse_spec, stratified_subset
    from densify.embed import Encoder, get_encoder
    from densify.errors import DataError, DensifyError, RecipeError, SpecError
    from densify.estimate import estimate_coverage
    from densify.loader import Augmenter, DensifiedDataset, load_recipe
    from densify.manifold import coverage_curve, intrinsic_dimension, manifold_diagnostics
    from densify.recipes import Recipe, list_recipes, read_recipe
    from densify.train import TrainConfig, train_recipes


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'densify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

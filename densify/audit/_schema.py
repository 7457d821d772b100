"""The typed schema of ``report.json`` (``densify.report/1``): what readers of a bundle may rely on.

``read_report`` validates every bundle it reads against it, and the audit validates its own report before
writing it, so a field cannot go missing or change type unnoticed (the golden-file test pins one report).
Parts that are free-form by design (the verdict's prose, per-recipe albumentations dicts) are typed loosely.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from densify.errors import DensifyError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricValue(_Model):
    value: float | None
    low: float | None
    high: float | None
    per_class: list[float | None]


class Settings(_Model):
    data: str
    recipes: list[str]
    encoder: str
    weights: str | None
    views: int
    k: int
    seed: int
    strength: float
    train: bool
    proxy: bool = False  # older reports lack it (and reports of audits without the proxy)
    seeds: int
    steps: int
    batch: int
    model: str
    train_size: int | None
    heldout_size: int | None
    n_boot: int
    search: Literal["auto", "exact", "approximate"] = "auto"  # older reports lack it
    projection: str | None
    resize: list[int] | None = None  # older reports lack these three (defaults: what they ran with)
    channels: int | None = None
    image_size: int | str | list[int] | None = "auto"
    extra: dict[str, Any]


class ClassCount(_Model):
    name: str
    train: int
    heldout: int


class Data(_Model):
    model_config = ConfigDict(extra="allow")
    name: str
    spec: str
    fingerprint: str
    classes: list[ClassCount]
    shape: list[int]


class Encoder(_Model):
    name: str
    fingerprint: str
    supervised: bool


class RecipeInfo(_Model):
    intent: str
    source: str | None
    albumentations: dict[str, Any]


class ViewHealth(_Model):
    n: int
    constant: float
    collapsed: float
    saturated: float
    out_of_range: float
    degenerate: float


class Coverage(_Model):
    metrics: dict[str, MetricValue]
    views: ViewHealth | None = None


class Verdict(_Model):
    model_config = ConfigDict(extra="allow")
    default_predictor: str
    trained: bool
    use: list[Any]
    avoid: list[Any]
    flags: dict[str, dict[str, str]]
    predictor_values: dict[str, dict[str, float | None]]
    summary: list[str]
    warnings: list[str] = []
    ranked_by: str | None = None
    head_to_head: dict[str, Any] | None = None


class DimensionEstimate(_Model):
    value: float | None
    low: float | None
    high: float | None
    n: int
    duplicates: int


class DimensionMethod(_Model):
    overall: DimensionEstimate | None
    per_class: dict[str, DimensionEstimate | None]


class ClassNeed(_Model):
    model_config = ConfigDict(extra="allow")
    images: int
    coverage: float | None
    needed: int | None
    multiple: float | None
    beyond: bool


class Curve(_Model):
    model_config = ConfigDict(extra="allow")
    sizes: list[int]
    coverage: list[float | None]
    log_distance: list[float | None]
    class_coverage: dict[str, list[float | None]]
    fit: dict[str, float | int | None]
    distance_fit: dict[str, float | None]
    target: float
    class_needs: list[ClassNeed]


class Multiplier(_Model):
    coverage: float | None
    distance: float | None
    beyond: bool


class HeldoutShift(_Model):
    train_share: float
    heldout_share: float
    deficit: float
    low: float
    high: float
    n_reference: int
    n_probe: int
    n_heldout: int
    k: int
    floor: float
    shifted: bool
    concentrated: bool = False  # older reports lack it


class Manifold(_Model):
    intrinsic_dimension: dict[str, dict[str, DimensionMethod] | None]
    pixel_components: int
    curve: Curve
    multipliers: dict[str, Multiplier]
    factor_space: dict[str, dict[str, float | str | None]] | None = None  # known-factor data only


class ApproximateSearch(_Model):
    base: int
    queries: int
    k: int
    checked: int
    recall: float
    nearest_exact: float
    kth_distance_excess: float
    scanned: int | None = None  # base points a query scanned (its probed lists), chosen per search


class Search(_Model):
    mode: Literal["auto", "exact", "approximate"]
    approximate_from: int
    approximate: list[ApproximateSearch]


class SplitQuality(_Model):
    images: int
    probe_accuracy: float
    label_issues: int
    estimated_noise: float
    noise_by_class: dict[str, float]
    overlapping_classes: list[dict[str, Any]]
    duplicates: dict[str, int]
    outliers: int


class Leakage(_Model):
    heldout_in_train: int
    exact: int
    near: int
    label_differs: int
    share: float


class DataQuality(_Model):
    encoder: str
    settings: dict[str, Any]
    train: SplitQuality
    heldout: SplitQuality
    leakage: Leakage
    flagged: dict[str, int]
    examples: list[dict[str, Any]]
    shift: HeldoutShift | None = None  # older reports lack it


class ReportV1(_Model):
    schema_: Literal["densify.report/1"] = Field(alias="schema")
    run_id: str
    densify_version: str
    settings: Settings
    data: Data
    encoder: Encoder
    recipes: dict[str, RecipeInfo]
    reference: dict[str, MetricValue]
    coverage: dict[str, Coverage]
    training: dict[str, Any] | None
    proxy: dict[str, Any] | None = None  # the fine-tune proxy (audits run with proxy=True only)
    verdict: Verdict
    versions: dict[str, str] | None = None
    environment: dict[str, Any] | None = None
    timings: dict[str, float] | None = None
    manifold: Manifold | None = None  # older reports lack it
    search: Search | None = None  # older reports lack it
    data_quality: DataQuality | None = None  # older reports lack it

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def check_report(report: dict[str, Any], where: str = "report.json") -> dict[str, Any]:
    """Return ``report`` unchanged if it matches ``densify.report/1``, else raise a one-line DensifyError."""
    try:
        ReportV1.model_validate(report)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "/".join(str(p) for p in err["loc"])
        raise DensifyError(f"{where}: not a valid densify.report/1 ({loc}: {err['msg']})") from None
    return report

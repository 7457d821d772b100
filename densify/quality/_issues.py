"""Per-sample data issues of a dataset: likely label errors, duplicates and leakage, off-manifold outliers.

:func:`find_data_issues` works on features the caller already has (an audit's embeddings);
:func:`data_issues` embeds a dataset with an encoder first. Both return a :class:`DataIssues`: one row per sample
(train and held-out) with its scores, and a summary (counts, per-class noise estimates, confused class pairs,
leakage).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from densify.quality import _duplicates, _labels, _outliers, _shift

#: the features data issues are found in by default: label-free (an encoder trained on the given labels fits
#: their errors and confident learning then finds none: benchmarks/data_quality/detect.py), chosen by that
#: benchmark's fixed rule (best worst-case precision at recall 0.5 under 10% uniform noise over four datasets:
#: random-cnn 0.40, pixels 0.27; docs/data-quality.md)
DEFAULT_ENCODER = "random-cnn"
#: below this out-of-fold probe accuracy the label flags are stated to be a list to inspect, not errors
WEAK_PROBE = 0.8
#: neighbours of the k-NN label-disagreement score
KNN_K = 10
#: the k-NN label-disagreement score searches neighbours in the features' top this many principal components
#: (label-free, fitted on train): 8x less search than in 512-d random-CNN features, and that search is quadratic
#: in N. Its detection scores moved by -0.05 to +0.06 (mean +0.006) over 4 datasets x 17 noise settings
#: (benchmarks/data_quality/detect.py). Outliers keep the full features: in 64 components they gained false flags
#: (Fashion-MNIST: 32 -> 44 of 2,040) for no gain in recall; their per-class search costs 1/C of the global one.
NEAR_COMPONENTS = 64
#: training features larger than this (float32 bytes) are not held nor cached: they are encoded twice, block by
#: block, for their principal projection (250,000 images in 512-d random-CNN features: 512 MB, +15 s on 2 cores)
STREAM_BYTES = 1 << 28
#: the CSV's columns, in order (``DataIssues.rows`` hold the same keys)
COLUMNS = (
    "split",
    "index",
    "path",
    "issues",
    "given_label",
    "suggested_label",
    "label_quality",
    "knn_disagreement",
    "outlier_score",
    "noise_score",
    "duplicate_kind",
    "duplicate_of",
    "duplicate_correlation",
    "duplicate_label",
)
#: the issue kinds a row's ``issues`` may list
KINDS = ("label", "leak", "duplicate", "outlier")


@dataclass(frozen=True)
class DataIssues:
    """Every sample's data-quality scores (``rows``, train first, then held-out) and a ``summary``.

    A row's ``issues`` lists what was flagged, separated by ";": ``label`` (confident learning finds it
    confidently of another class; ``suggested_label`` names it), ``leak`` (a held-out image with an exact or near
    duplicate in train), ``duplicate`` (a duplicate within its own split), ``outlier`` (its k-th same-class
    neighbour is ``OUTLIER_RATIO`` times farther than its class's median).
    """

    classes: tuple[str, ...]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)

    def flagged(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The rows with any issue (or with ``kind``), most severe first: label issues by ascending label quality,
        then leaks, duplicates and outliers by descending score."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown issue kind {kind!r}; kinds: {', '.join(KINDS)}")
        rows = [r for r in self.rows if r["issues"] and (kind is None or kind in r["issues"].split(";"))]
        return sorted(rows, key=_severity)

    def to_csv(self, flagged_only: bool = True) -> str:
        rows = self.flagged() if flagged_only else self.rows
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row[k]) for k in COLUMNS})
        return buffer.getvalue()


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.6g}"
    return value


def _severity(row: dict[str, Any]) -> tuple:
    kinds = row["issues"].split(";")
    first = min(KINDS.index(k) for k in kinds)
    if first == 0:
        score = row["label_quality"]
    elif first in (1, 2):
        score = -(row["duplicate_correlation"] or 0.0)
    else:
        score = -(row["outlier_score"] or 0.0)
    return (first, score, row["split"] != "heldout", row["index"])


def find_data_issues(
    data,
    train_features: np.ndarray,
    heldout_features: np.ndarray,
    *,
    seed: int = 0,
    folds: int = _labels.FOLDS,
    knn_k: int = KNN_K,
    near_correlation: float = _duplicates.NEAR_CORRELATION,
    outlier_ratio: float = _outliers.OUTLIER_RATIO,
) -> DataIssues:
    """Data issues of ``data`` (a :class:`~densify.data.DataSplits`) from features of its train and held-out
    images (rows in the splits' order).

    Label issues: training samples by confident learning on out-of-fold probabilities of a softmax probe on the
    features (``folds``-fold, seeded); held-out samples on the probabilities of the probe fitted on all of train
    (out-of-sample by construction). Duplicates compare pixels (see :mod:`densify.quality._duplicates`), outliers
    and the k-NN disagreement compare the features' top ``NEAR_COMPONENTS`` principal components.
    """
    return issues_of_embedded(
        data,
        lambda: (train_features, heldout_features),
        seed=seed,
        folds=folds,
        knn_k=knn_k,
        near_correlation=near_correlation,
        outlier_ratio=outlier_ratio,
    )


def _feature_scores(data, embed, *, seed: int, folds: int, knn_k: int) -> dict:
    """What :func:`find_data_issues` needs of the features ``embed()`` returns (probabilities, k-NN disagreement,
    outlier scores), as small arrays. Only their principal projections are kept: when nothing else holds the
    features (the audit embeds them for this alone), they are let go before the probe is fitted and the pixels are
    searched (512 MB at 250,000 images in 512-d random-CNN features), or never held at all when they come as
    blocks."""
    from densify.coverage._knn import knn

    train, held = data.train, data.heldout
    n_classes = len(data.classes)
    tf, hf = embed()
    # features too large to hold come as blocks that encode themselves again (densify.estimate.EncodedBlocks):
    # only the principal projection reads them, twice
    tf = tf if _labels.is_blocks(tf) else np.asarray(tf, dtype=np.float32)
    hf = np.asarray(hf, dtype=np.float32)
    if len(tf) != len(train) or len(hf) != len(held):
        raise ValueError(
            f"features have {len(tf)} train / {len(hf)} held-out rows for {len(train)} / {len(held)} images"
        )
    t_labels, h_labels = np.asarray(train.labels), np.asarray(held.labels)
    near_components = min(NEAR_COMPONENTS, tf.shape[1])
    t_proj, h_proj = _labels.principal_projection(tf, hf)
    # the k-NN score's neighbours in the top NEAR_COMPONENTS principal components (the probe's own if as many)
    if t_proj.shape[1] == near_components:
        t_near, h_near = t_proj, h_proj
    else:
        t_near, h_near = _labels.principal_projection(tf, hf, components=NEAR_COMPONENTS)
    t_near, h_near = t_near.astype(np.float32), h_near.astype(np.float32)
    del tf, hf
    t_probs = _labels.out_of_fold_probabilities(t_proj, t_labels, n_classes, folds, seed)
    h_probs = _labels.softmax_probabilities(h_proj, _labels.fit_softmax(t_proj, t_labels, n_classes))
    k = min(knn_k, len(train) - 1)
    t_knn = _labels.knn_disagreement(t_labels[knn(t_near, t_near, k, self_query=True)[1]], t_labels)
    h_knn = _labels.knn_disagreement(t_labels[knn(h_near, t_near, k)[1]], h_labels)
    # outliers in the same top principal components: the per-class searches are exact and quadratic in a class's
    # size, 8x cheaper in 64 dimensions than in 512 (planted outliers: the same recall, see docs/data-quality.md)
    spread = _outliers.class_spread(t_near, t_labels)
    t_out = _outliers.outlier_scores(t_near, t_labels, spread=spread)
    h_out = _outliers.heldout_outlier_scores(t_near, t_labels, h_near, h_labels, spread=spread)
    return {
        "t_probs": t_probs, "h_probs": h_probs, "t_knn": t_knn, "h_knn": h_knn, "t_out": t_out, "h_out": h_out,
        "knn_k": k, "near_components": near_components,
    }  # fmt: skip


def _issues_from_scores(
    data, scores: dict, *, seed: int, folds: int, near_correlation: float, outlier_ratio: float
) -> DataIssues:
    """:func:`find_data_issues`' table from :func:`_feature_scores` and the pixels (duplicates, leakage, noise)."""
    train, held = data.train, data.heldout
    t_labels, h_labels = np.asarray(train.labels), np.asarray(held.labels)
    t_probs, h_probs, t_knn, h_knn = scores["t_probs"], scores["h_probs"], scores["t_knn"], scores["h_knn"]
    t_out, h_out, k = scores["t_out"], scores["h_out"], scores["knn_k"]
    from densify.coverage._knn import reused_indexes

    t_pixels, h_pixels = _duplicates.describe(train.images), _duplicates.describe(held.images)
    with reused_indexes():  # the training thumbnails' index serves the within-train and the leakage search
        dup_train = _duplicates.find_duplicates(t_pixels, threshold=near_correlation)
        dup_held = _duplicates.find_duplicates(h_pixels, threshold=near_correlation)
        leak = _duplicates.find_duplicates(h_pixels, t_pixels, threshold=near_correlation)
    # is the held-out set drawn like the training set? In the duplicate search's thumbnails: label-free and fitted to
    # nothing (benchmarks/data_quality/shift.py)
    shift = _shift.heldout_shift(t_pixels.thumbnails, h_pixels.thumbnails, seed=seed)
    # a ranking, not a flag: noise-like thumbnails (benchmarks/data_quality/outlier_residual.py)
    degrees = min(_duplicates.THUMB**2, int(np.prod(train.images.shape[1:3])))
    t_noise, h_noise = _outliers.residual_scores(
        t_pixels.thumbnails,
        h_pixels.thumbnails,
        degrees,
        train_flat=t_pixels.flat,
        heldout_flat=h_pixels.flat,
    )

    rows: list[dict[str, Any]] = []
    split_stats = {}
    for split, images, labels, probs, knn_score, out, noise, dup, cross in (
        ("train", train, t_labels, t_probs, t_knn, t_out, t_noise, dup_train, None),
        ("heldout", held, h_labels, h_probs, h_knn, h_out, h_noise, dup_held, leak),
    ):
        issue = _labels.label_issues(labels, probs)
        quality = _labels.self_confidence(labels, probs)
        suggested = probs.argmax(axis=1)
        paths = images.paths
        for i in range(len(labels)):
            kinds = []
            if issue[i]:
                kinds.append("label")
            dup_kind, dup_of, dup_corr, dup_label = "", "", float("nan"), ""
            if cross is not None and cross["match"][i] >= 0:
                kinds.append("leak")
                j = int(cross["match"][i])
                dup_kind, dup_of, dup_corr = cross["kind"][i], f"train:{j}", float(cross["correlation"][i])
                dup_label = data.classes[t_labels[j]]
            if dup["match"][i] >= 0:
                kinds.append("duplicate")
                if not dup_of:
                    j = int(dup["match"][i])
                    dup_kind, dup_of, dup_corr = dup["kind"][i], f"{split}:{j}", float(dup["correlation"][i])
                    dup_label = data.classes[labels[j]]
            if np.isfinite(out[i]) and out[i] >= outlier_ratio:
                kinds.append("outlier")
            rows.append(
                {
                    "split": split,
                    "index": i,
                    "path": paths[i] if paths else "",
                    "issues": ";".join(kinds),
                    "given_label": data.classes[labels[i]],
                    "suggested_label": data.classes[suggested[i]] if issue[i] else "",
                    "label_quality": float(quality[i]),
                    "knn_disagreement": float(knn_score[i]),
                    "outlier_score": float(out[i]),
                    "noise_score": float(noise[i]),
                    "duplicate_kind": dup_kind,
                    "duplicate_of": dup_of,
                    "duplicate_correlation": dup_corr,
                    "duplicate_label": dup_label,
                }
            )
        joint = _labels.confident_joint(labels, probs)
        split_stats[split] = {
            "images": len(labels),
            "probe_accuracy": float((probs.argmax(axis=1) == labels).mean()),
            "label_issues": int(issue.sum()),
            "estimated_noise": float(1.0 - np.trace(joint) / max(joint.sum(), 1e-100)),
            "noise_by_class": {
                c: round(float(r), 6) for c, r in zip(data.classes, _labels.noise_rates(joint), strict=True)
            },
            "overlapping_classes": [
                {"classes": [data.classes[a], data.classes[b]], "share": round(s, 6)}
                for a, b, s in _labels.overlapping_classes(joint)
            ],
            "duplicates": {
                "exact": int((dup["kind"] == "exact").sum()),
                "near": int((dup["kind"] == "near").sum()),
                "label_differs": int(
                    sum(1 for i in np.flatnonzero(dup["match"] >= 0) if labels[dup["match"][i]] != labels[i])
                ),
            },
            "outliers": int(np.sum(np.isfinite(out) & (out >= outlier_ratio))),
        }
    leaked = np.flatnonzero(leak["match"] >= 0)
    summary = {
        **split_stats,
        "leakage": {
            "heldout_in_train": len(leaked),
            "exact": int((leak["kind"] == "exact").sum()),
            "near": int((leak["kind"] == "near").sum()),
            "label_differs": int(sum(1 for i in leaked if t_labels[leak["match"][i]] != h_labels[i])),
            "share": float(len(leaked) / max(len(held), 1)),
        },
        "shift": shift,
    }
    settings = {
        "folds": folds,
        "seed": seed,
        "probe_l2": _labels.PROBE_L2,
        "probe_components": _labels.PROBE_COMPONENTS,
        "knn_k": k,
        "near_components": scores["near_components"],
        "outlier_k": _outliers.OUTLIER_K,
        "outlier_ratio": outlier_ratio,
        "noise_components": max(1, degrees // 4),
        "thumbnail": _duplicates.THUMB,
        "near_correlation": near_correlation,
        "near_ratio": _duplicates.NEAR_RATIO,
        "near_residual": _duplicates.NEAR_RESIDUAL,
        "ratio_k": _duplicates.RATIO_K,
    }
    return DataIssues(tuple(data.classes), rows, summary, settings)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary in a few sentences, the leakage warning first (it inflates every held-out number)."""
    lines = []
    leak = summary["leakage"]
    if leak["heldout_in_train"]:
        differs = f", {leak['label_differs']} of them under another label" if leak["label_differs"] else ""
        n = leak["heldout_in_train"]
        lines.append(
            f"LEAKAGE: {n} held-out image{'s' if n != 1 else ''} ({100 * leak['share']:.1f}%) "
            f"ha{'ve' if n != 1 else 's'} a duplicate in "
            f"train ({leak['exact']} exact, {leak['near']} near{differs}); held-out accuracy and coverage are "
            f"inflated until they are removed from one split."
        )
    shift = summary.get("shift")
    if shift:
        shares = (
            f"{100 * shift['heldout_share']:.0f}% of held-out images lie inside the k-NN balls of half the training "
            f"images, {100 * shift['train_share']:.0f}% of the other half"
        )
        if shift["shifted"]:
            lines.append(
                f"SHIFT: held-out images lie where training images do not ({shares}); held-out label and outlier "
                "flags then partly reflect the shift, not bad labels."
            )
        elif shift.get("concentrated"):
            lines.append(
                f"SHIFT: held-out images are more alike than training images ({shares}), as blurred, "
                "lower-resolution or less varied images are; recipes' views are measured against the training "
                "images, so check how the held-out images were made."
            )
        else:
            lines.append(
                f"held-out images are drawn like the training images, as far as this check sees ({shares})."
            )
    for split, name in (("train", "training"), ("heldout", "held-out")):
        s = summary[split]
        dup = s["duplicates"]
        weak = s["probe_accuracy"] < WEAK_PROBE
        lines.append(
            f"{name}: {s['images']} images; {s['label_issues']} likely label errors (estimated noise "
            f"{100 * s['estimated_noise']:.1f}%{', an upper bound' if weak else ''}), "
            f"{dup['exact'] + dup['near']} duplicates ({dup['exact']} exact, "
            f"{dup['near']} near; {dup['label_differs']} with another label), {s['outliers']} outliers"
        )
    if summary["train"]["probe_accuracy"] < WEAK_PROBE:
        lines.append(
            f"The label check's probe reaches only {100 * summary['train']['probe_accuracy']:.0f}% (out-of-fold) on "
            "these features: its flags mix real label errors with hard images, so treat them as a list to inspect, "
            "not to delete (on natural photographs the benchmark found about 1 in 2 to 1 in 3 flags correct)."
        )
    pairs = summary["train"]["overlapping_classes"][:3]
    if pairs:
        lines.append(
            "most confused classes (share of training samples): "
            + ", ".join(f"{p['classes'][0]} / {p['classes'][1]} {100 * p['share']:.1f}%" for p in pairs)
        )
    return lines


def write_issues(issues: DataIssues, path: Path, flagged_only: bool = True) -> None:
    """The table as CSV at ``path``, written atomically (a failed write leaves an earlier file as it was)."""
    from densify._io import write_text_atomic

    write_text_atomic(Path(path), issues.to_csv(flagged_only=flagged_only))


def data_issues(
    data,
    *,
    encoder: str = DEFAULT_ENCODER,
    weights: str | Path | None = None,
    seed: int = 0,
    cache_dir: str | Path | bool | None = True,
    **options,
) -> DataIssues:
    """Embed ``data`` with ``encoder`` (fitted on ``data.train``; cached like the audit's embeddings) and return
    :func:`find_data_issues` of those features. ``options`` go to :func:`find_data_issues`."""
    from densify.estimate import clean_embeddings

    issues = issues_of_embedded(
        data,
        lambda: clean_embeddings(
            data, encoder=encoder, weights=weights, seed=seed, cache_dir=cache_dir, stream_bytes=STREAM_BYTES
        ),
        seed=seed,
        **options,
    )
    return replace(issues, settings={"encoder": encoder, **issues.settings})


def issues_of_embedded(
    data,
    embed,
    *,
    seed: int = 0,
    folds: int = _labels.FOLDS,
    knn_k: int = KNN_K,
    near_correlation: float = _duplicates.NEAR_CORRELATION,
    outlier_ratio: float = _outliers.OUTLIER_RATIO,
) -> DataIssues:
    """:func:`find_data_issues` of the features ``embed()`` returns (train, held-out): the same table, but nothing
    holds the features once their scores are computed, so the pixel searches run without them in memory."""
    scores = _feature_scores(data, embed, seed=seed, folds=folds, knn_k=knn_k)
    return _issues_from_scores(
        data, scores, seed=seed, folds=folds, near_correlation=near_correlation, outlier_ratio=outlier_ratio
    )


#: flagged rows of each kind a report keeps as examples (the CSV has them all)
REPORT_EXAMPLES = 8


def report_section(issues: DataIssues) -> dict[str, Any]:
    """The audit report's ``data_quality`` section: the summary, the settings, counts of flagged samples per kind
    and the most severe examples of each kind (``REPORT_EXAMPLES`` each; the bundle's CSV lists every one)."""
    flagged = {kind: issues.flagged(kind) for kind in KINDS}
    examples = []
    for kind in KINDS:
        for row in flagged[kind][:REPORT_EXAMPLES]:
            examples.append({"kind": kind, **{k: (None if isinstance(v, float) and np.isnan(v) else v)
                                               for k, v in row.items()}})  # fmt: skip
    return {
        "encoder": issues.settings.get("encoder", ""),
        "settings": {k: v for k, v in issues.settings.items() if k != "encoder"},
        "train": issues.summary["train"],
        "heldout": issues.summary["heldout"],
        "leakage": issues.summary["leakage"],
        "shift": issues.summary.get("shift"),
        "flagged": {kind: len(rows) for kind, rows in flagged.items()},
        "examples": examples,
    }

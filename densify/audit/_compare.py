"""``densify compare``: several report bundles side by side (datasets, encoders or settings) and their differences."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from densify._catalogue import GAIN_LABELS, GAIN_SECTIONS, LABELS, TABLE
from densify._io import write_bytes_atomic
from densify.audit._bundle import check_writable, read_report
from densify.errors import DensifyError

METRICS = TABLE


def _label(folder: Path, report: dict[str, Any]) -> str:
    s = report["settings"]
    return f"{folder.name}: {report['data']['name']}, {report['encoder']['name']}, k={s['k']}, V={s['views']}"


#: accuracy gains over none (in points wherever shown): the full training's and the fine-tune proxy's
GAINS = GAIN_LABELS


def _value(report: dict[str, Any], recipe: str, metric: str) -> float | None:
    if metric in GAINS:
        t = ((report.get(GAIN_SECTIONS[metric]) or {}).get("recipes") or {}).get(recipe) or {}
        return (t.get("gain_over_none") or {}).get("mean")
    return ((report["coverage"].get(recipe) or {}).get("metrics", {}).get(metric) or {}).get("value")


def comparison_notes(reports: list[dict[str, Any]]) -> list[str]:
    """What a reader must know before reading differences between ``reports``: coverage metrics measured in
    different embedding spaces (another encoder, or the same one fitted to other recipes or images) compare recipes
    within a run, not across runs; and runs on different images compare nothing image for image."""
    notes = []
    prints = [r["encoder"].get("fingerprint") for r in reports]
    if len(set(prints)) > 1:
        other = [i + 1 for i, f in enumerate(prints) if f != prints[0]]
        names = {r["encoder"]["name"] for r in reports}
        why = (
            "different encoders"
            if len(names) > 1
            else f"encoder {next(iter(names))} fitted to other data or other recipes"
        )
        runs = f"Run {other[0]} embeds" if len(other) == 1 else f"Runs {', '.join(map(str, other))} embed"
        notes.append(
            f"{runs} images in another space than run 1 ({why}), so the coverage metrics (densification, "
            "fidelity, ...) rank recipes within each run but do not compare across runs; accuracy gains do."
        )
    data = [r["data"].get("fingerprint") for r in reports]
    if len(set(data)) > 1:
        notes.append(
            "The runs audit different images (data fingerprints differ): differences mix the data's and the "
            "settings' effects."
        )
    return notes


def compare_reports(folders: Sequence[str | Path]) -> dict[str, Any]:
    """The comparison of report bundles: per recipe and metric, each run's value and its difference from the
    first run; recipes missing from a run are None."""
    if len(folders) < 2:
        raise DensifyError("compare needs at least two report folders")
    loaded = [(Path(f), read_report(f)) for f in folders]
    recipes: list[str] = []
    for _, r in loaded:
        recipes += [n for n in r["coverage"] if n not in recipes]
    metrics = (*METRICS, "measured_gain", *(["proxy_gain"] if any(r.get("proxy") for _, r in loaded) else []))
    table = {}
    for recipe in recipes:
        table[recipe] = {}
        for m in metrics:
            values = [_value(r, recipe, m) for _, r in loaded]
            first = values[0]
            table[recipe][m] = {
                "values": values,
                "differences": [None if v is None or first is None else v - first for v in values],
            }
    return {
        "schema": "densify.compare/1",
        "notes": comparison_notes([r for _, r in loaded]),
        "runs": [
            {
                "folder": str(f),
                "label": _label(f, r),
                "run_id": r["run_id"],
                "data": r["data"]["name"],
                "encoder": r["encoder"]["name"],
                "settings": r["settings"],
                "use": [u["recipe"] for u in r["verdict"]["use"]],
                "avoid": [a["recipe"] for a in r["verdict"]["avoid"]],
            }
            for f, r in loaded
        ],
        "recipes": table,
        "_reports": loaded,
    }


def _csv(comparison: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    runs = comparison["runs"]
    writer.writerow(
        ["recipe", "metric"]
        + [f"run{i + 1}" for i in range(len(runs))]
        + [f"run{i + 1}-run1" for i in range(1, len(runs))]
    )
    for recipe, by_metric in comparison["recipes"].items():
        for metric, d in by_metric.items():
            writer.writerow(
                [
                    recipe,
                    metric,
                    *["" if v is None else v for v in d["values"]],
                    *["" if v is None else v for v in d["differences"][1:]],
                ]
            )
    return buffer.getvalue()


def write_comparison(folders: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Compare bundles and write ``compare.json``, ``compare.csv``, ``plots/compare-*.png`` (densification and
    fidelity; the measured and the proxy's accuracy gains when any run has them) and ``compare.html`` to ``out``
    (each atomically)."""
    from densify import plots

    out = Path(out)
    check_writable(out)
    comparison = compare_reports(folders)
    loaded = comparison.pop("_reports")
    labelled = [(_label(f, r), r) for f, r in loaded]
    gains = [m for m in GAINS if any(((r.get(GAIN_SECTIONS[m]) or {}).get("recipes")) for _, r in loaded)]
    pngs = {
        f"plots/compare-{m}.png": plots.compare_figure(labelled, m)
        for m in ("densification", "fidelity", *gains)
    }
    for name, png in pngs.items():
        write_bytes_atomic(out / name, png)
    write_bytes_atomic(out / "compare.csv", _csv(comparison).encode())
    write_bytes_atomic(out / "compare.html", _html(comparison, pngs).encode())
    write_bytes_atomic(
        out / "compare.json", (json.dumps(comparison, indent=2, allow_nan=False) + "\n").encode()
    )
    return comparison


def _html(comparison: dict[str, Any], pngs: dict[str, bytes]) -> str:
    from densify.audit._html import CSS, SCRIPT

    e = html.escape
    runs = comparison["runs"]
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>densify compare</title><style>{CSS}</style>",
        f"<script>{SCRIPT}</script></head><body><h1>densify: {len(runs)} audits side by side</h1><ol>",
    ]
    for run in runs:
        parts.append(
            f"<li><code>{e(run['folder'])}</code>: {e(run['label'])}; use {e(', '.join(run['use']) or '-')}; "
            f"avoid {e(', '.join(run['avoid']) or '-')}</li>"
        )
    parts.append("</ol>")
    parts += [f'<p class="warning">{e(note)}</p>' for note in comparison["notes"]]
    for name, png in pngs.items():
        data = base64.b64encode(png).decode()
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{e(name)}"></figure>')
    parts.append("<h2>Differences from run 1</h2><table><tr><th>recipe</th><th>metric</th>")
    parts += [f"<th>run {i + 1}</th>" for i in range(len(runs))]
    parts += [f"<th>run {i + 1} - run 1</th>" for i in range(1, len(runs))] + ["</tr>"]
    for recipe, by_metric in comparison["recipes"].items():
        for metric, d in by_metric.items():
            points = metric in GAINS  # accuracy gains in points, as everywhere else
            scale, label = (100, GAINS[metric]) if points else (1, LABELS.get(metric, metric))
            cells = ["-" if v is None else f"{scale * v:{'+.2f' if points else '.3f'}}" for v in d["values"]]
            cells += [
                "-" if v is None else f"{scale * v:{'+.2f' if points else '+.3f'}}"
                for v in d["differences"][1:]
            ]
            parts.append(
                f"<tr><td>{e(recipe)}</td><td>{e(label)}</td>"
                + "".join(f"<td>{c}</td>" for c in cells)
                + "</tr>"
            )
    parts.append("</table></body></html>\n")
    return "\n".join(parts)

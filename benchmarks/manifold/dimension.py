"""Intrinsic-dimension estimates against the truth on the known-factor families (issue: the manifold lab).

For each family (and a 3-factor shapes set), the true dimension is the number of continuous factors that vary
(``SynthSpec.varying()``). The estimators (TwoNN, Levina-Bickel MLE) run per class on the pixels' top 32 principal
components at 500, 1,000 and 2,000 training images per class, and on two encoders' embeddings at 500 per class.
Target (the issue's): within +-1 of the truth, up to 6 factors.

    python benchmarks/manifold/dimension.py [--out benchmarks/manifold/results]   # about 6 minutes on two cores

Writes ``dimension.json`` and ``dimension.md`` (the table in docs/manifold-lab.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SETS = {
    "shapes (3 factors)": "synth:shapes?hue=0&brightness=1&x=0",
    "shapes": "synth:shapes",
    "arrows": "synth:arrows",
    "colours": "synth:colours",
}
PER_CLASS = (500, 1000, 2000)
ENCODERS = ("random-cnn", "reference")  # reference+views without recipes to learn from is the reference


def run(out: Path) -> dict:
    from densify.data import load_data
    from densify.embed import get_encoder
    from densify.manifold import dimensions, pixel_projection

    rows = []
    for label, spec in SETS.items():
        for per_class in PER_CLASS:
            n = per_class * _classes(spec)
            data = load_data(spec + ("&" if "?" in spec else "?") + f"train={n}&heldout=200")
            spaces = {"pixels (32 PCs)": pixel_projection(data.train.images)}
            if per_class == PER_CLASS[0]:
                for name in ENCODERS:
                    spaces[name] = get_encoder(name, seed=0).fit(data.train).encode(data.train.images)
            true = _varying(spec)
            for space, points in spaces.items():
                est = dimensions(points, data.train.labels, data.classes, n_boot=200)
                row = {"set": label, "true": true, "per_class": per_class, "space": space}
                for method in ("twonn", "mle"):
                    values = [e.value for e in est[method]["per_class"].values()]
                    row[method] = [round(min(values), 2), round(max(values), 2)]
                    row[f"{method}_ok"] = bool(all(abs(v - true) <= 1 for v in values))
                rows.append(row)
                print(row, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dimension.json").write_text(json.dumps(rows, indent=2))
    (out / "dimension.md").write_text(table(rows))
    return {"rows": rows}


def _classes(spec: str) -> int:
    from densify.data import parse_spec
    from densify.data._synth import FAMILIES

    return len(FAMILIES[parse_spec(spec).synth.family].classes)


def _varying(spec: str) -> int:
    from densify.data import parse_spec

    return len(parse_spec(spec).synth.varying())


def table(rows: list[dict]) -> str:
    lines = [
        "| set | true | images per class | space | TwoNN per class (min-max) | MLE per class (min-max) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r[m][0]:.1f}-{r[m][1]:.1f}" + ("" if r[f"{m}_ok"] else " ✗") for m in ("twonn", "mle")]
        lines.append(
            f"| {r['set']} | {r['true']} | {r['per_class']} | {r['space']} | {cells[0]} | {cells[1]} |"
        )
    return "\n".join(lines) + "\n\n✗: some class outside ±1 of the truth.\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    np.seterr(all="ignore")
    run(args.out)
    print((args.out / "dimension.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

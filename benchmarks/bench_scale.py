"""How an audit's cost grows with the data: wall time and peak memory against N·V, the embedded views.

    python benchmarks/bench_scale.py [--points 10000,31623,100000,316228,1000000] [--views 4]
    python benchmarks/bench_scale.py --projection    # the data-quality projection's peak memory, two ways

For each target N·V, generates N = N·V / V training images (16x16 grayscale, 10 classes: a class-specific grating
plus noise; plus a fixed 2,000 held-out images) as a raw IDX folder, then runs
``densify evaluate --no-train --train-size all --views V --recipes none,flip --encoder pixels:pca32`` in a fresh
process (no cache), recording its wall time, peak resident memory (ru_maxrss) and the report's stage timings.
Embedded points per run: N clean + N·V views of flip + 2,000 held-out (``none``'s views are its sources, reused).
The pixels encoder keeps the run about data handling, views and neighbour search rather than encoder training.

Reported: each size's figures, and the log-log slope of time and of peak memory against N·V between consecutive
sizes and overall (least squares). Issue 16's target: slope <= 1.1 in time, flat memory. Results:
benchmarks/scale-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_memory import run_measured  # benchmarks/ is on the path when a script runs from it

ROOT = Path(__file__).resolve().parents[1]
SIDE = 16
CLASSES = 10
HELDOUT = 2000


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images: class c is a grating of its own frequency and angle, randomly shifted, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    angle, freq = np.pi * labels / CLASSES, 1 + labels % 5
    phase = rng.uniform(0, 2 * np.pi, n)
    arg = xx[None] * np.cos(angle)[:, None, None] + yy[None] * np.sin(angle)[:, None, None]
    wave = np.sin(2 * np.pi * freq[:, None, None] * arg + phase[:, None, None])
    img = 128 + 90 * wave + rng.normal(0, 25, (n, SIDE, SIDE))
    return np.clip(img, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def _write(root: Path, stem: str, n: int, seed: int) -> None:
    with (
        open(root / f"{stem}-images-idx3-ubyte", "wb") as images,
        open(root / f"{stem}-labels-idx1-ubyte", "wb") as lab,
    ):
        images.write(struct.pack(">BBBB3I", 0, 0, 8, 3, n, SIDE, SIDE))
        lab.write(struct.pack(">BBBBI", 0, 0, 8, 1, n))
        for start in range(0, n, 50_000):
            x, y = _images(min(50_000, n - start), seed * 1_000_003 + start)
            images.write(x.tobytes())
            lab.write(y.tobytes())


def write_idx(root: Path, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    _write(root, "train", n, 1)
    _write(root, "t10k", HELDOUT, 2)


def measure(spec: str, views: int, work: Path) -> dict:
    out = work / "out"
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    cmd = [sys.executable, "-m", "densify", "evaluate", "--data", spec, "--no-train", "--train-size", "all",
           "--views", str(views), "--recipes", "none,flip", "--encoder", "pixels:pca32",
           "--n-boot", "200", "--out", str(out)]  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)  # a fresh bundle: nothing cached from the previous size
    measured = run_measured(cmd, env)
    report = json.loads((out / "report.json").read_text())
    return {
        "seconds": measured["seconds"],
        "peak_rss_mb": measured["peak_rss_mb"],
        "stages": report["timings"],
        "search": "approximate" if report["search"].get("approximate") else "exact",
        # each approximate search: base points, worst-case check (recall of the true k nearest) and its scan
        "approximate": [
            {
                "base": e["base"],
                "queries": e["queries"],
                "recall": round(e["recall"], 4),
                "scanned": e.get("scanned"),
            }
            for e in report["search"].get("approximate") or []
        ],
    }


def slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


_PROJECTION = """
import resource, sys, time
import numpy as np
from densify.quality._labels import principal_projection
x = np.random.default_rng(0).standard_normal((250_000, 512), dtype=np.float32); h = x[:2000].copy()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter(); principal_projection(x, h, chunk=int(sys.argv[1])); t = time.perf_counter() - t
print(f"{(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024:.0f} MB above the features, {t:.1f} s")
"""


def projection() -> None:
    """The data-quality stage's principal projection of 250,000 x 512 float32 features (random-cnn's width) on 64
    axes, each way in a fresh process: one float64 block (before issue 16) and densify's blocks."""
    import subprocess

    from densify.quality._labels import PROJECTION_CHUNK

    for label, chunk in (("one block", 10**9), (f"blocks of {PROJECTION_CHUNK:,}", PROJECTION_CHUNK)):
        out = subprocess.run(
            [sys.executable, "-c", _PROJECTION, str(chunk)], check=True, capture_output=True, text=True
        )
        print(f"principal projection 250,000 x 512 -> 64, {label}: {out.stdout.strip()}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--projection", action="store_true", help="only the projection's memory, one block vs blocks"
    )
    parser.add_argument("--points", default="10000,31623,100000,316228,1000000", help="N·V targets")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "scale-results.json")
    args = parser.parse_args(argv)
    if args.projection:
        projection()
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="densify-scale-"))
    rows = []
    for target in (int(s) for s in args.points.split(",")):
        n = max(target // args.views, 100)
        data = work / f"idx-{n}"
        start = time.perf_counter()
        if not data.exists():
            write_idx(data, n)
        row = {"n": n, "views": args.views, "nv": n * args.views, "generate_seconds": 0.0}
        row["generate_seconds"] = round(time.perf_counter() - start, 1)
        row.update(measure(f"idx:{data}", args.views, work))
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.work is None:
            shutil.rmtree(data, ignore_errors=True)
    summary = {}
    if len(rows) > 1:
        nv = [r["nv"] for r in rows]
        summary = {
            "time_slope": round(slope(nv, [r["seconds"] for r in rows]), 3),
            "memory_slope": round(slope(nv, [r["peak_rss_mb"] for r in rows]), 3),
            "time_slopes_between_sizes": [
                round(slope(nv[i : i + 2], [r["seconds"] for r in rows[i : i + 2]]), 3)
                for i in range(len(rows) - 1)
            ],
            "memory_ratio_largest_to_smallest": round(rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"], 3),
        }
        print(json.dumps(summary))
    from densify._io import write_text_atomic

    results = {
        "side": SIDE,
        "heldout": HELDOUT,
        "cpu_count": os.cpu_count(),
        "rows": rows,
        "summary": summary,
    }
    write_text_atomic(args.json, json.dumps(results, indent=1) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The README's main job, timed: the default audit (`make demo`: ``densify evaluate`` on fashion-mini, every
setting at its default) from a cold cache, under the settings before and after parallel training runs.

    python benchmarks/bench_demo.py [--repeats 1] [--out bench-demo.json]

Settings, run alternately (so that drift hits both alike), each as its own process with an empty cache and
report folder:

- ``before``: one training run at a time with 2 torch threads, tensors in torch's NCHW layout
  (``DENSIFY_TRAIN_JOBS=1 DENSIFY_TORCH_THREADS=2 DENSIFY_MEMORY_FORMAT=contiguous``: densify until 2026-11-28);
- ``now``: the defaults (runs in parallel processes, one thread each, and channels_last).

Prints wall time, the report's own stage timings and the ratio now / before; writes them to ``--out``. The two
settings train with different thread counts, so their accuracies differ within seed noise (torch's CPU reductions
depend on it); the benchmark prints both verdicts' first line to show they agree. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {
    "before": {
        "DENSIFY_TRAIN_JOBS": "1",
        "DENSIFY_TORCH_THREADS": "2",
        "DENSIFY_MEMORY_FORMAT": "contiguous",
    },
    "now": {},
}


def run(name: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="densify-demo-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DENSIFY_")}
        env.update(SETTINGS[name], DENSIFY_CACHE=str(Path(tmp) / "cache"), NO_ALBUMENTATIONS_UPDATE="1")
        out = Path(tmp) / "report"
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "densify", "evaluate", "--out", str(out)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        report = json.loads((out / "report.json").read_text())
    timings = report["timings"]
    return {
        "wall_s": round(wall, 1),
        "stages": {k: timings.get(k) for k in ("coverage", "data_quality", "training", "report")},
        "environment": {
            k: report["environment"].get(k) for k in ("torch_threads", "train_jobs", "train_threads")
        },
        "verdict": report["verdict"]["summary"][0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default="bench-demo.json")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for _ in range(args.repeats):
        for name in SETTINGS:
            results[name].append(run(name))
            r = results[name][-1]
            print(f"{name}: {r['wall_s']} s  stages {r['stages']}  {r['environment']}", flush=True)
            print(f"  verdict: {r['verdict']}", flush=True)
    best = {name: min(r["wall_s"] for r in rs) for name, rs in results.items()}
    ratio = best["now"] / best["before"]
    print(f"best wall time: before {best['before']} s, now {best['now']} s; now / before {ratio:.2f}")
    Path(args.out).write_text(
        json.dumps({"results": results, "best_s": best, "ratio": ratio}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()

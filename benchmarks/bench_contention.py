"""How densify behaves on a shared machine: one job alone against two at once, per thread setting.

    python benchmarks/bench_contention.py [--jobs 2] [--repeats 1] [--out bench-contention.json]

The job is a small but complete audit (``densify evaluate``: the reference encoder's fit, coverage of two recipes,
one training run each), run as its own process, as a user would. For each setting it runs one job alone, then
``--jobs`` identical jobs at the same time, and reports each setting's wall time alone and its *slowdown*: the mean
wall time of the concurrent jobs over the time alone. A fair share of 2 cores between 2 jobs is a slowdown of
about 2 (issue 16 asks for at most 2.5). Settings:

- densify's defaults (nothing set: torch and faiss use every core, training runs go in parallel processes with one
  thread each, passive waiting);
- ``DENSIFY_TORCH_THREADS`` 1 or 2 (faiss follows ``DENSIFY_FAISS_THREADS``, set alike; since 2026-11-28, 1 also
  trains the runs in parallel processes and 2 one at a time);
- ``OMP_WAIT_POLICY`` unset (the OpenMP runtime's default: a waiting thread spins before it sleeps; run with
  ``DENSIFY_OMP_WAIT_POLICY=default`` so densify does not set it) or ``PASSIVE`` (it sleeps at once, densify's
  default since this benchmark), which matters when more threads than cores compete.

Measured 2026-11-28 on the 2-vCPU machine (``benchmarks/contention-results.txt``; the 2-thread settings in one
run, stopped after them, the 1-thread ones with ``--threads 1`` later): 2 threads, default wait, 80.3 s alone, two
at once 498.7 s each (6.2x); 2 threads passive, 90.8 s alone, 121.6 / 134.8 s (1.4x); 1 thread, default, 120.5 s
alone, 117.9 / 120.9 s (1.0x); 1 thread passive, 118.4 s alone, 113.9 s each (1.0x).

Run it on an otherwise idle machine: anything else running changes every number. The settings run in one
interleaved order so drift hits them alike; ratios are within one run.
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

JOB = [
    "evaluate", "--data", "fashion-mini", "--recipes", "none,affine-light", "--encoder", "reference",
    "--train-size", "1000", "--heldout-size", "1000", "--seeds", "2", "--steps", "200", "--n-boot", "200",
]  # fmt: skip
SETTINGS = [
    {
        "threads": None,
        "wait": None,
    },  # densify's defaults (since 2026-11-28: training runs in parallel processes)
    {"threads": 2, "wait": None},
    {"threads": 2, "wait": "PASSIVE"},
    {"threads": 1, "wait": None},
    {"threads": 1, "wait": "PASSIVE"},
]


def _env(setting: dict, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENSIFY_")}
    env.update(NO_ALBUMENTATIONS_UPDATE="1", DENSIFY_CACHE=str(cache))
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    if setting["threads"] is None:  # every default of densify, its wait policy included
        return env
    env["DENSIFY_TORCH_THREADS"] = env["DENSIFY_FAISS_THREADS"] = str(setting["threads"])
    if setting["wait"]:
        env["OMP_WAIT_POLICY"] = setting["wait"]
    else:  # the OpenMP runtime's own default (densify would otherwise set PASSIVE itself)
        env["DENSIFY_OMP_WAIT_POLICY"] = "default"
    return env


def _jobs(setting: dict, n: int, root: Path) -> list[float]:
    """Start ``n`` jobs at once (each with its own output and an empty cache); their wall times in seconds."""
    densify = Path(sys.executable).parent / "densify"
    procs = []
    for _ in range(n):
        work = Path(tempfile.mkdtemp(dir=root))
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(densify), *JOB, "--out", str(work / "r")],
            env=_env(setting, work / "cache"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append((proc, start))
    times = []
    for proc, start in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"job failed: {err.decode()[-500:]}")
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-contention.json"))
    parser.add_argument(
        "--threads", type=int, choices=(1, 2), help="Only the settings with this thread count."
    )
    parser.add_argument(
        "--defaults", action="store_true", help="Only densify's defaults (no thread settings)."
    )
    args = parser.parse_args(argv)
    settings = [s for s in SETTINGS if args.threads in (None, s["threads"]) and s["threads"] is not None]
    if args.defaults or args.threads is None:
        settings = [s for s in SETTINGS if s["threads"] is None] + ([] if args.defaults else settings)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for repeat in range(args.repeats):
            for setting in settings:
                alone = _jobs(setting, 1, root)[0]
                together = _jobs(setting, args.jobs, root)
                row = {
                    **setting,
                    "repeat": repeat,
                    "alone_s": round(alone, 1),
                    "together_s": [round(t, 1) for t in together],
                    "slowdown": round(sum(together) / len(together) / alone, 2),
                }
                rows.append(row)
                print(row, flush=True)
    args.out.write_text(
        json.dumps({"job": JOB, "jobs": args.jobs, "cpus": os.cpu_count(), "rows": rows}, indent=2)
    )
    print("| torch/faiss threads | OMP_WAIT_POLICY | alone (s) | 2 at once (s, mean) | slowdown |")
    print("|---|---|---|---|---|")
    for r in rows:
        mean = sum(r["together_s"]) / len(r["together_s"])
        threads, wait = (
            (r["threads"], r["wait"] or "default") if r["threads"] else ("densify's defaults", "PASSIVE")
        )
        print(f"| {threads} | {wait} | {r['alone_s']} | {mean:.1f} | {r['slowdown']}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

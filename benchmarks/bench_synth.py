"""Rendering speed of the known-factor datasets (``synth:``): images per second on one core, per family and size.

    python benchmarks/bench_synth.py [--n 20000] [--repeats 3]

The manifold-lab issue asks for at least 5,000 images/s at 32x32 on one core. numpy's element-wise kernels are
single-threaded, so this is one core's speed whatever the machine; the best of ``--repeats`` runs is reported.
"""

from __future__ import annotations

import argparse
import time

from densify.data._synth import FAMILIES, parse_synth, render, sample_factors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"| family | size | images/s (best of {args.repeats}) |")
    print("|---|---|---|")
    for size in (32, 64):
        for family in FAMILIES:
            factors, labels = sample_factors(parse_synth(f"synth:{family}"), "train", args.n)
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                render(family, factors, labels, size)
                best = min(best, time.perf_counter() - start)
            print(f"| {family} | {size}x{size} | {args.n / best:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

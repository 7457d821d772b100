"""How many recipes a bootstrap interval of Spearman's rho needs before it means what it says.

    python benchmarks/bench_rho_interval.py [--trials 300] [--boot 500]

The verdict reports, next to rho between a training-free predictor and the measured gains, a 95% percentile
bootstrap interval over recipes (densify.audit.bootstrap_rho). With three recipes every resample that is not
constant has rho = +1 or -1, and an audit of two recipes plus ``none`` printed "95% bootstrap CI [-1.00, -1.00]":
certainty where there is none. This simulates recipes as pairs drawn from a bivariate normal of correlation r
(population Spearman 6/pi asin(r/2)) and reports, per number of recipes n, how often the interval holds the
population value (its coverage; nominal 0.95) and its mean width. densify reports the interval from
``MIN_INTERVAL_RECIPES`` recipes up: the smallest n whose coverage is at least 0.9 at every r tried (and at every
larger n). Results: benchmarks/rho-interval-results.txt.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from densify.audit._stats import MIN_INTERVAL_RECIPES, _percentile_interval


def coverage(n: int, r: float, trials: int, boot: int, rng) -> tuple[float, float]:
    pop = 6 / math.pi * math.asin(r / 2)
    hits, widths = 0, []
    for t in range(trials):
        x = rng.normal(size=n)
        y = r * x + math.sqrt(1 - r * r) * rng.normal(size=n)
        lo, hi = _percentile_interval(x, y, n_boot=boot, seed=t)
        hits += lo <= pop <= hi
        widths.append(hi - lo)
    return hits / trials, float(np.mean(widths))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--boot", type=int, default=500)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    sizes = (3, 4, 5, 6, 7, 8, 10, 12)
    worst = {}
    for r in (0.0, 0.5, 0.8):
        cells = []
        for n in sizes:
            cov, width = coverage(n, r, args.trials, args.boot, rng)
            worst[n] = min(worst.get(n, 1.0), cov)
            cells.append(f"n={n}: {cov:.2f} (width {width:.2f})")
        print(f"r={r}: " + "  ".join(cells), flush=True)
    enough = next(n for n in sizes if all(worst[m] >= 0.9 for m in sizes if m >= n))
    print(f"smallest n with coverage >= 0.90 at every r (and every larger n): {enough}; "
          f"densify's MIN_INTERVAL_RECIPES = {MIN_INTERVAL_RECIPES}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

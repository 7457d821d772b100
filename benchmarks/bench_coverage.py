"""Speed and scale of the coverage estimator, each figure a ratio against a baseline measured in the same run.

    python benchmarks/bench_coverage.py [--only threads,knn,prdc,prdc60k,prdcwhy,search1m,ivfscan,listmajor,ivfhalf,fashion] [--repeats 3]

threads  faiss search (60k x 10k, d=128) and the reference CNN (100 training steps, 10k encodings) with 1 and 2 threads.
knn      held-out coverage of 60k training points for 10k held-out points (d=128): densify's exact
         ``heldout_coverage`` against a bare faiss IndexFlatL2 search of the same queries (the floor), and the
         SGEMM bound (2·M·N·d flops at this machine's measured float32 GEMM rate).
prdc     PRDC at 10k x 10k (d=128): densify against the reference ``prdc`` package (same values).
prdc60k  PRDC at 60k x 60k (d=128) in a subprocess: wall time and peak resident memory (VmHWM).
prdcwhy  PRDC 10k x 10k against the reference, each in a fresh process: first call and best of the rest, densify's
         faiss at 2 and 1 threads, idle and beside one busy process (why the speed-up differs between runs).
search1m approximate against exact search at 1M training x 100k held-out points (d=128, clustered points on a
         10-dimensional curved manifold, not isotropic noise; training misses a fifth of its blobs): held-out coverage both ways, the error of the
         nearest distances (densification's input), each search's time, and what the approximate search logs on
         its sampled queries (issue 16's target: coverage within 0.005).
ivfscan  the approximate index's nprobe: for 16x16 thumbnails of bench_scale.py's images (d=256, the duplicate
         search) and the manifold points of search1m (d=128) at 250k and 1M base points, the time per query and
         recall of the true 5-6 nearest of 5,000 queries when probing lists that hold 500 .. 62,500 points, against
         exact search (why densify scans a fixed number of points, at most SCAN_POINTS, not a share of the lists).
listmajor the approximate index searched list by list (densify's ``list_major_search``: the queries probing a list
         in one matrix product) against faiss' own query-by-query IVF search, 50,000 queries of 250k base points, in
         d = 32, 64, 128 (manifold points) and 256 (bench_scale.py's thumbnails, the duplicate search), with faiss at
         2 and 1 threads; the same candidates both ways (why densify searches list by list from LIST_MAJOR_MIN_D).
fashion  densify coverage on full Fashion-MNIST (60k train, 10k held-out; Debian's dataset-fashion-mnist),
         8 recipes x 2 views, reference encoder, no cache: wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

FASHION = "/usr/share/datasets/fashion-mnist"
RECIPES8 = ["none", "flip", "vflip", "crop-pad", "affine-light", "affine-heavy", "cutout", "randaugment"]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def gaussian(n: int, d: int = 128, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32) + np.float32(shift)
    return x / np.linalg.norm(x, axis=1, keepdims=True)  # unit vectors, like densify's embeddings


def sgemm_gflops() -> float:
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    t = best_of(lambda: a @ a, 3)
    return 2 * 2048**3 / t / 1e9


def bench_threads(repeats: int) -> None:
    import faiss
    import torch

    from densify.data import load_data
    from densify.embed._cnn import ReferenceEncoder

    base, queries = gaussian(60_000), gaussian(10_000, seed=1)
    data = load_data("fashion-mini")
    print("| workload | 1 thread (s) | 2 threads (s) | 1 / 2 |")
    print("| --- | ---: | ---: | ---: |")
    for label, run in (
        ("faiss IndexFlatL2 search 60k x 10k, k=6", lambda: _faiss_search(base, queries, 6)),
        ("reference CNN: 100 training steps", lambda: ReferenceEncoder(steps=100).fit(data.train)),
    ):
        t = {}
        for threads in (1, 2, 1, 2):
            faiss.omp_set_num_threads(threads)
            os.environ["DENSIFY_TORCH_THREADS"] = str(threads)
            torch.set_num_threads(threads)
            t[threads] = min(t.get(threads, np.inf), best_of(run, 1))
        print(f"| {label} | {t[1]:.2f} | {t[2]:.2f} | {t[1] / t[2]:.2f} |", flush=True)
    os.environ.pop("DENSIFY_TORCH_THREADS")
    faiss.omp_set_num_threads(os.cpu_count() or 1)


def _faiss_search(base, queries, k):
    import faiss

    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    return index.search(queries, k)


def bench_knn(repeats: int) -> None:
    from densify.coverage import heldout_coverage

    train, held = gaussian(60_000), gaussian(10_000, seed=1)
    heldout_coverage(train[:1000], held[:100])  # warm up
    floor = best_of(lambda: _faiss_search(train, held, 1), repeats)
    self_search = best_of(lambda: _faiss_search(held, held, 6), repeats)
    ours = best_of(lambda: heldout_coverage(train, held, k=5), repeats)
    bound = 2 * len(train) * len(held) * train.shape[1] / (sgemm_gflops() * 1e9)
    print(
        f"held-out coverage 60k x 10k, d=128: densify {ours:.2f} s; bare faiss search of held-out in train (k=1) "
        f"{floor:.2f} s; bare faiss self-search of held-out (k=6) {self_search:.2f} s; SGEMM bound {bound:.2f} s"
    )
    print(
        f"ratio densify / faiss floor: {ours / floor:.2f}; densify / both bare searches: "
        f"{ours / (floor + self_search):.2f}; densify / SGEMM bound: {ours / bound:.2f}; "
        f"faiss / SGEMM bound: {floor / bound:.2f}"
    )


def bench_prdc(repeats: int) -> None:
    """densify's PRDC against the reference package in the same process (the reference's first call and, as the
    fair figure, its best warm call), and against the SGEMM bound of the three 10k x 10k distance products PRDC
    needs (real-real and fake-fake for the radii, fake-real for the four statistics)."""
    import warnings

    import prdc as reference

    from densify.coverage import prdc

    real, fake = gaussian(10_000), gaussian(10_000, seed=1, shift=0.05)
    prdc(real[:200], fake[:200])
    ours = best_of(lambda: prdc(real, fake, 5), repeats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = []
        for _ in range(2):
            start = time.perf_counter()
            ref = reference.compute_prdc(real, fake, 5)
            times.append(time.perf_counter() - start)
    mine = prdc(real, fake, 5)
    same = all(abs(getattr(mine, k) - float(ref[k])) <= 1e-6 for k in ref)
    bound = 3 * 2 * len(real) * len(fake) * real.shape[1] / (sgemm_gflops() * 1e9)
    print(
        f"PRDC 10k x 10k, d=128: densify {ours:.2f} s; reference prdc first call {times[0]:.2f} s, warm "
        f"{times[1]:.2f} s; speed-up {times[0] / ours:.1f}x (first), {times[1] / ours:.1f}x (warm); "
        f"identical values: {same}; SGEMM bound of the three products {bound:.2f} s (densify {ours / bound:.2f}x it, "
        f"the reference {times[1] / bound:.1f}x)"
    )


_PRDC_TIMES = """
import json, sys, time, warnings, os
import numpy as np
which, repeats = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
def unit(x): return x / np.linalg.norm(x, axis=1, keepdims=True)
real = unit(rng.standard_normal((10000, 128)).astype(np.float32))
fake = unit(np.random.default_rng(1).standard_normal((10000, 128)).astype(np.float32) + np.float32(0.05))
if which == "densify":
    from densify.coverage import prdc as run
    fn = lambda: run(real, fake, 5)
else:
    import prdc as reference
    fn = lambda: reference.compute_prdc(real, fake, 5)
times = []
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _ in range(repeats):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def _prdc_times(which: str, repeats: int, env: dict) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", _PRDC_TIMES, which, str(repeats)], check=True, capture_output=True, text=True,
        env={**os.environ, **env},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_prdc_conditions(repeats: int) -> None:
    """Why the PRDC speed-up over the reference differs between runs (2.4x when issue 16 was filed, 7.7x in the
    2026-11-24 run): each side timed in a fresh process, first call (cold) and best warm call, with densify's
    faiss at 1 and 2 threads, on an idle machine and beside one busy process spinning on a core."""
    rows = []
    for load in ("idle", "one busy process"):
        spinner = None
        if load != "idle":
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            ref = _prdc_times("reference", repeats, {})
            for threads in ("2", "1"):
                ours = _prdc_times("densify", repeats, {"DENSIFY_FAISS_THREADS": threads})
                rows.append((load, threads, ours, ref))
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    print("| machine | densify faiss threads | densify first / best (s) | reference first / best (s) "
          "| speed-up, best vs best | speed-up, first vs first |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for load, threads, ours, ref in rows:
        print(
            f"| {load} | {threads} | {ours[0]:.2f} / {min(ours):.2f} | {ref[0]:.2f} / {min(ref):.2f} "
            f"| {min(ref) / min(ours):.1f}x | {ref[0] / ours[0]:.1f}x |",
            flush=True,
        )


def bench_prdc60k(repeats: int) -> None:
    code = (
        "import time, numpy as np\n"
        "from densify.coverage import prdc\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.standard_normal((60000, 128)).astype(np.float32); y = rng.standard_normal((60000, 128)).astype(np.float32) + 0.05\n"
        "x /= np.linalg.norm(x, axis=1, keepdims=True); y /= np.linalg.norm(y, axis=1, keepdims=True)\n"
        "t = time.perf_counter(); r = prdc(x, y, 5); t = time.perf_counter() - t\n"
        "peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "print(f'PRDC 60k x 60k, d=128: {t:.1f} s, peak resident {peak / 2**20:.2f} GiB, {r}')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def bench_fashion(repeats: int) -> None:
    from densify.data import load_data
    from densify.estimate import estimate_coverage

    if not os.path.isdir(FASHION):
        print(f"skipped: {FASHION} is missing (apt-get install dataset-fashion-mnist)")
        return
    start = time.perf_counter()
    data = load_data(f"idx:{FASHION}")
    run = estimate_coverage(
        data,
        RECIPES8,
        views=2,
        cache_dir=None,
        progress=lambda s, d, t: print(f"  {time.perf_counter() - start:6.1f} s  {s} {d}/{t}", flush=True),
    )
    total = time.perf_counter() - start
    print(
        f"full Fashion-MNIST coverage, 8 recipes x 2 views, reference encoder: {total:.0f} s wall "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in run.timings.items())})"
    )
    for r in run.results:
        m = r.metrics
        print(
            f"  {r.recipe:14s} coverage gain {m['coverage_gain'].value:+.4f}  densification {m['densification'].value:.3f}"
            f"  fidelity {m['fidelity'].value:.3f}  label consistency {m['label_consistency'].value:.3f}"
        )


def manifold_points(
    n: int, d: int = 128, seed: int = 0, dim: int = 10, clusters: int = 50, used: int | None = None
) -> np.ndarray:
    """n unit vectors near a curved ``dim``-dimensional manifold in d dimensions (a mixture of ``clusters``
    Gaussian blobs in latent space through a fixed random tanh map, plus 2% noise), like an encoder's embeddings;
    drawn from the first ``used`` blobs only when given (a training set that misses part of the manifold)."""
    fixed = np.random.default_rng(12345)
    centres, lift = fixed.normal(0, 2, (clusters, dim)), fixed.normal(0, 1 / np.sqrt(dim), (dim, d))
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = centres[rng.integers(0, used or clusters, m)] + rng.normal(0, 0.6, (m, dim))
        x = np.tanh(z @ lift) + rng.normal(0, 0.02, (m, d))
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def bench_search1m(repeats: int) -> None:
    from densify.coverage._knn import knn, kth_neighbour_distance, search_log, search_mode

    # the training points miss 10 of the 50 blobs, so that coverage is not trivially 1
    train, held = manifold_points(1_000_000, used=40), manifold_points(100_000, seed=1)
    radii = kth_neighbour_distance(held, 5)  # 100k base points: exact in every mode, as in an audit
    out = {}
    for mode in ("approximate", "exact"):
        search_log(reset=True)
        start = time.perf_counter()
        with search_mode(mode):
            nearest = knn(held, train, 1)[0][:, 0]
        out[mode] = (time.perf_counter() - start, nearest, search_log(reset=True))
        print(f"{mode}: {out[mode][0]:.1f} s", flush=True)
    (ta, a, log), (te, e, _) = out["approximate"], out["exact"]
    cov_a, cov_e = float((a < radii).mean()), float((e < radii).mean())
    excess = float(np.mean(np.log(np.maximum(a, 1e-12)) - np.log(np.maximum(e, 1e-12))))
    print(
        f"1M x 100k, d=128: held-out coverage approximate {cov_a:.4f}, exact {cov_e:.4f} (difference "
        f"{abs(cov_a - cov_e):.4f}; target <= 0.005); mean log nearest-distance excess (densification's error) "
        f"{excess:.5f}; exact nearest found for {np.mean(a == e):.4f} of the queries; time approximate {ta:.1f} s, "
        f"exact {te:.1f} s ({te / ta:.1f}x); logged: {log}"
    )


def bench_ivf_scan(repeats: int) -> None:
    import faiss
    from bench_scale import _images

    from densify.coverage._knn import SCAN_POINTS, approximate_index
    from densify.quality._duplicates import thumbnails

    def study(name: str, base: np.ndarray, queries: np.ndarray, k: int) -> None:
        n, d = base.shape
        start = time.perf_counter()
        index = approximate_index(base)
        built = time.perf_counter() - start
        lists = index.nlist
        flat = faiss.IndexFlatL2(d)
        flat.add(base)
        exact_s = best_of(lambda: flat.search(queries, k), 1)
        true = flat.search(queries, k)[1]
        print(f"{name}, N={n:,}, d={d}: {lists} lists of {n / lists:.0f} points, built in {built:.1f} s; "
              f"exact {exact_s / len(queries) * 1e6:.0f} us/query", flush=True)  # fmt: skip
        print(
            "| nprobe | points scanned | us/query | x exact | recall | nearest exact |\n| ---: | ---: | ---: | ---: | ---: | ---: |"
        )
        chosen = min(lists, max(32, -(-SCAN_POINTS * lists // n)))
        for nprobe in sorted({4, 8, 16, 32, 64, max(32, lists // 16), chosen}):
            index.nprobe = nprobe
            took = best_of(lambda: index.search(queries, k), 1)
            found = index.search(queries, k)[1]
            recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(found, true, strict=True)])
            mark = (
                " (densify)"
                if nprobe == chosen
                else " (1/16, before)"
                if nprobe == max(32, lists // 16)
                else ""
            )
            print(f"| {nprobe}{mark} | {nprobe * n / lists:,.0f} | {took / len(queries) * 1e6:.0f} | "
                  f"{exact_s / took:.1f} | {recall:.4f} | {np.mean(found[:, 0] == true[:, 0]):.4f} |", flush=True)  # fmt: skip

    for n in (250_000, 1_000_000):
        images, _ = _images(n, 1)
        thumbs, _ = thumbnails(images[..., None])
        del images
        study("thumbnails", thumbs, thumbs[np.random.default_rng(5).choice(n, 5000, replace=False)], 6)
        del thumbs
    for n in (250_000, 1_000_000):
        study("manifold", manifold_points(n, used=40), manifold_points(5000, seed=1), 5)


def bench_list_major(repeats: int) -> None:
    import faiss
    from bench_scale import _images

    from densify.coverage._knn import LIST_MAJOR_MIN_D, approximate_index, list_major_search
    from densify.quality._duplicates import thumbnails

    n, m, k = 250_000, 50_000, 7
    images, _ = _images(n, 1)
    sets = {f"manifold d={d}": manifold_points(n, d=d) for d in (32, 64, 128)}
    sets["thumbnails d=256"] = thumbnails(images[..., None])[0]
    del images
    print(f"list-major (densify from d >= {LIST_MAJOR_MIN_D}) against faiss' IVF search, {m:,} queries of "
          f"{n:,} base points, k={k}, best of {repeats}\n"
          "| data | faiss threads | faiss search s | list-major s | ratio | same ids |\n| --- | ---: | ---: | ---: | ---: | ---: |")  # fmt: skip
    for name, base in sets.items():
        base = np.ascontiguousarray(base, dtype=np.float32)
        index = approximate_index(base)
        queries = base[np.random.default_rng(5).choice(n, m, replace=False)]
        for threads in (2, 1):
            faiss.omp_set_num_threads(threads)
            theirs = best_of(lambda index=index, queries=queries: index.search(queries, k), repeats)
            ours = best_of(lambda index=index, queries=queries: list_major_search(index, queries, k), repeats)
            same = float(np.mean(index.search(queries, k)[1] == list_major_search(index, queries, k)[1]))
            print(
                f"| {name} | {threads} | {theirs:.1f} | {ours:.1f} | {ours / theirs:.2f} | {same:.4f} |",
                flush=True,
            )
    faiss.omp_set_num_threads(os.cpu_count() or 1)


def bench_ivf_half(repeats: int) -> None:
    """Half-precision inverted lists against float32 ones (``HALF_ROUNDING_SHARE = -1`` forces float32), in one
    run: the lists' bytes, the approximate k-NN's time (best of ``repeats``), how many queries the boundary test
    left unsure, and whether neighbours and distances are the same bits."""
    from bench_scale import _images

    from densify.coverage import _knn, search_mode
    from densify.quality._duplicates import thumbnails

    images, _ = _images(250_000, 1)
    sets = {
        "thumbnails 250,000 x 256": (thumbnails(images[..., None])[0], 60_000, 6),
        "manifold 1,000,000 x 32": (manifold_points(1_000_000, d=32), 200_000, 6),
    }
    del images
    original = _knn._inner_certain
    unsure: list[int] = []

    def counted(*args, **kwargs):
        out = original(*args, **kwargs)
        if not kwargs.get("last"):
            unsure.append(int((~out).sum()))
        return out

    _knn._inner_certain = counted
    print("| data | lists | lists' MB | k-NN s | unsure queries | same neighbours and distances |\n"
          "| --- | --- | ---: | ---: | ---: | --- |")  # fmt: skip
    for name, (base, m, k) in sets.items():
        base = np.ascontiguousarray(base, dtype=np.float32)
        queries = base[np.random.default_rng(5).choice(len(base), m, replace=False)]
        results = {}
        for kind, share in (("float32", -1.0), ("float16", _knn.HALF_ROUNDING_SHARE)):
            _knn.HALF_ROUNDING_SHARE = share
            index = _knn.approximate_index(base)
            code = index.code_size * index.ntotal / 2**20
            del index
            unsure.clear()
            with search_mode("approximate"):
                took = best_of(lambda base=base, queries=queries, k=k: _knn.knn(queries, base, k), repeats)
                results[kind] = _knn.knn(queries, base, k)
            same = (
                ""
                if kind == "float32"
                else str(
                    all(
                        np.array_equal(a, b)
                        for a, b in zip(results["float32"], results["float16"], strict=True)
                    )
                )
            )
            n_unsure = unsure[-1] if unsure and kind == "float16" else "-"
            print(f"| {name} | {kind} | {code:.0f} | {took:.1f} | {n_unsure} | {same} |", flush=True)
        _knn.HALF_ROUNDING_SHARE = share
    _knn._inner_certain = original


SECTIONS = {
    "threads": bench_threads,
    "knn": bench_knn,
    "prdc": bench_prdc,
    "prdc60k": bench_prdc60k,
    "prdcwhy": bench_prdc_conditions,
    "search1m": bench_search1m,
    "ivfscan": bench_ivf_scan,
    "listmajor": bench_list_major,
    "ivfhalf": bench_ivf_half,
    "fashion": bench_fashion,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name in args.only.split(","):
        print(f"\n## {name}", flush=True)
        SECTIONS[name](args.repeats)


if __name__ == "__main__":
    main()

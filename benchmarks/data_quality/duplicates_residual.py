"""A second near-duplicate test beside the ratio test: does every pixel agree? (issue 17: every planted cross-split
duplicate found).

    python benchmarks/data_quality/duplicates_residual.py [--datasets digits,fashion,intel,flowers] [--seeds 1,2,3,4]

Why: with the ratio test alone (``find_duplicates(..., ratio=0.1)``), 39 of the 40 planted near copies of
``detect.py`` (seed 0) were found; the miss, a JPEG + noise copy of an 8 x 8 digit "1", correlates at 0.9971 with
its original, but every plain "1" in the training set correlates at 0.98 with it (distance ratio 0.147). The
ratio test compares distances averaged over all pixels. The candidate adds a test of the *largest* pixel
disagreement once brightness and contrast are fitted (``residual_deviation``, in units of the query's pixel
standard deviation): a re-encoding spreads small errors over every pixel, a look-alike differs strongly somewhere.
A best candidate (fine correlation >= 0.95, as before) is a near duplicate when it passes the ratio test *or* its
residual deviation is at most ``TOLERANCE``.

``TOLERANCE`` = 0.4 was read off seed 0's plants (the selection data, reported separately): planted near copies
had deviations of 0.20-0.34 on digits and 0.29-0.51 on Fashion-MNIST, 0.30-0.98 on the photos (where the ratio
test finds them all), while the best candidates of held-out images that are not copies started at 0.49 (digits),
1.08 (Fashion-MNIST), 0.58 (intel-scenes) and 1.07 (flowers).

The rule, fixed before any other seed was run: on fresh plants (seeds 1-4: other held-out and training images
copied, other noise), over the four datasets, the residual test becomes the default if it newly flags at most 2
distinct non-planted images per dataset (union over the seeds; cross-split leaks and within-train duplicates
together; every one is listed in the results to be looked at). Recall cannot fall (the tests are joined by "or").
Whether every planted cross-split duplicate is found on the fresh seeds is reported either way.

Pixels only: no encoder, seconds per dataset. Results: benchmarks/data_quality/duplicates_residual-results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import detect  # noqa: E402  (benchmarks/data_quality/detect.py: the datasets and the plants)

TOLERANCE = 0.4
RESULT = HERE / "duplicates_residual-results.json"


def _flags(planted, residual: float | None) -> dict:
    from densify.quality import _duplicates as dup

    train, held = dup.describe(planted.train.images), dup.describe(planted.heldout.images)
    return {
        "leak": dup.find_duplicates(held, train, residual=residual),
        "within": dup.find_duplicates(train, residual=residual),
    }


def _score(found: dict, where: dict, n_train: int) -> dict:
    leak, within = found["leak"], found["within"]
    leak_hit = leak["match"][where["leaks"]] >= 0
    # the leaked copies are appended first, the within-train copies after them
    copies = n_train - 2 * detect.PLANTED
    dup_hit = within["match"][where["dup_rows"]] >= 0
    planted_train = set(map(int, where["dup_rows"])) | set(map(int, where["dup_src"]))
    planted_train |= set(range(copies, copies + detect.PLANTED))
    leaks = set(map(int, where["leaks"]))
    other_leak = sorted(int(i) for i in np.flatnonzero(leak["match"] >= 0) if int(i) not in leaks)
    other_dup = sorted(
        int(i)
        for i in np.flatnonzero(within["match"] >= 0)
        if int(i) not in planted_train and int(within["match"][i]) not in planted_train
    )
    return {
        "leak_recall": {k: float(leak_hit[where["leak_kind"] == k].mean()) for k in ("exact", "near")},
        "duplicate_recall": {k: float(dup_hit[where["dup_kind"] == k].mean()) for k in ("exact", "near")},
        "missed_near_leaks": [int(h) for h, hit in zip(where["leaks"], leak_hit, strict=True) if not hit],
        "other_leak": other_leak,
        "other_duplicate": other_dup,
    }


def run(name: str, seed: int, photos: Path) -> dict:
    from densify.quality import _duplicates as dup

    data = detect.load(name, photos)
    planted, where = detect.plant(data, seed=seed)
    n_train = len(planted.train)
    base = _score(_flags(planted, None), where, n_train)
    found = _flags(planted, TOLERANCE)
    new = _score(found, where, n_train)
    added = []
    for split, key in (("heldout", "other_leak"), ("train", "other_duplicate")):
        result = found["leak" if split == "heldout" else "within"]
        ref_images = planted.train.images
        images = planted.heldout.images if split == "heldout" else ref_images
        for i in sorted(set(new[key]) - set(base[key])):
            j = int(result["match"][i])
            u, _ = dup.fine_descriptors(images[i : i + 1])
            v, _ = dup.fine_descriptors(ref_images[j : j + 1])
            r = float(u[0] @ v[0])
            deviation = float(dup.residual_deviation(u, v[:, None], np.array([[r]]))[0, 0])
            added.append({"split": split, "index": i, "match": j, "correlation": round(r, 4),
                          "deviation": round(deviation, 3),
                          "labels": [int(np.asarray(planted.heldout.labels if split == "heldout"
                                                    else planted.train.labels)[i]),
                                     int(np.asarray(planted.train.labels)[j])]})  # fmt: skip
    return {"ratio_only": base, "with_residual": new, "added": added}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="digits,fashion,intel,flowers")
    parser.add_argument("--seeds", default="1,2,3,4", help="plant seeds (0 was the selection data)")
    parser.add_argument("--photos", type=Path, default=detect.ROOT.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    results["tolerance"] = TOLERANCE
    for name in args.datasets.split(","):
        for seed in map(int, args.seeds.split(",")):
            entry = run(name, seed, args.photos)
            results.setdefault(name, {})[str(seed)] = entry
            b, w = entry["ratio_only"], entry["with_residual"]
            print(f"{name} seed {seed}: near leaks {b['leak_recall']['near']:.2f} -> {w['leak_recall']['near']:.2f}, "
                  f"near dups {b['duplicate_recall']['near']:.2f} -> {w['duplicate_recall']['near']:.2f}, "
                  f"exact {w['leak_recall']['exact']:.2f}/{w['duplicate_recall']['exact']:.2f}, "
                  f"other flags {len(b['other_leak']) + len(b['other_duplicate'])} -> "
                  f"{len(w['other_leak']) + len(w['other_duplicate'])}, added {entry['added']}", flush=True)  # fmt: skip
            args.json.write_text(json.dumps(results, indent=1) + "\n")
    verdict = {}
    for name in args.datasets.split(","):
        seeds = [s for s in results[name] if s != "0"]
        distinct = {(a["split"], a["index"]) for s in seeds for a in results[name][s]["added"]}
        missed = sum(len(results[name][s]["with_residual"]["missed_near_leaks"]) for s in seeds)
        verdict[name] = {"added_distinct": len(distinct), "missed_near_leaks": missed, "runs": len(seeds)}
    adopt = all(v["added_distinct"] <= 2 for v in verdict.values())
    results["verdict"] = {"per_dataset": verdict, "adopt": adopt}
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["verdict"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Detection of injected data faults by ``densify.quality`` on four datasets (issue 17).

    python benchmarks/data_quality/detect.py [--datasets fashion,digits,intel,flowers] [--photos ../shared/data]

For each dataset (a stratified 2,000-image training split, or all of digits' 1,297, and 1,000 held-out images;
photos at 32x32) and each feature encoder:
- **label noise**: a known share of training labels flipped (2, 5, 10, 20 %), *uniform* (to any other class,
  seeded) or *class-pair* (class c to class (c + 1) mod C); confident learning on out-of-fold probabilities, scored
  against the flipped set: precision and recall of the flagged set, the precision at recall 0.5 and the average
  precision of the self-confidence ranking (the rank densify sorts its table by), and the same for the k-NN label
  disagreement;
- **duplicates**: 20 held-out images planted in train (10 byte-exact, 10 re-encoded as JPEG quality 75 with a
  brightness shift of +12 and Gaussian noise of sigma 3; half of each with another label) and 20 training images
  planted again in train (exact / perturbed alike): recall of each kind, and the flags on images not planted;
- **outliers**: 20 training images replaced by off-manifold images (10 uniform noise, 10 of another class's image
  inverted): recall and the false-flag rate on the rest.

Encoders: ``pixels`` and ``random-cnn`` (label-free: their features do not depend on the labels, so they are
computed once per dataset from the clean split) and ``reference`` (the small CNN trained on the given, noisy,
labels; at 10 % uniform noise only, to show what a label-trained encoder does to confident learning).

The selection rule, written before the full run: densify's default data-quality encoder is the label-free encoder
with the best worst-case (over datasets) precision at recall 0.5 under 10 % uniform noise; a tie (within 0.02)
goes to the cheaper one (pixels). Results: benchmarks/data_quality/detect-results.json and a markdown table in
docs/data-quality-tables.md.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DATASETS = {
    "fashion": ("idx:/usr/share/datasets/fashion-mnist", 2000, None),
    "digits": ("digits", None, None),
    "intel": ("folder:{photos}/intel-scenes", 2000, 32),
    "flowers": ("folder:{photos}/flowers", 2000, 32),
}
LEVELS = (0.02, 0.05, 0.10, 0.20)
KINDS = ("uniform", "pair")
LABEL_FREE = ("pixels", "random-cnn")
PLANTED = 20


def load(name: str, photos: Path):
    from densify.data import load_data

    spec, train, resize = DATASETS[name]
    size = (resize, resize) if resize else None
    return load_data(
        spec.format(photos=photos), train_size=train, heldout_size=1000 if name != "digits" else 500, seed=0,
        resize=size,
    )  # fmt: skip


def flip_labels(labels: np.ndarray, n_classes: int, share: float, kind: str, seed: int):
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(labels), bool)
    flipped[rng.permutation(len(labels))[: round(share * len(labels))]] = True
    new = labels.copy()
    if kind == "uniform":
        new[flipped] = (labels[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    else:
        new[flipped] = (labels[flipped] + 1) % n_classes
    return new, flipped


def ranking_scores(score: np.ndarray, truth: np.ndarray) -> dict:
    """Precision at recall 0.5 and average precision of ranking by ``score`` ascending (low: suspicious)."""
    order = np.argsort(score, kind="stable")
    hits = np.cumsum(truth[order])
    total = truth.sum()
    k = int(np.searchsorted(hits, 0.5 * total)) + 1
    precision = hits / np.arange(1, len(hits) + 1)
    return {
        "precision_at_recall_0.5": round(float(hits[k - 1] / k), 4),
        "average_precision": round(float((precision * truth[order]).sum() / max(total, 1)), 4),
    }


def label_scores(issues, flipped: np.ndarray) -> dict:
    rows = [r for r in issues.rows if r["split"] == "train"]
    flagged = np.array(["label" in r["issues"].split(";") for r in rows])
    quality = np.array([r["label_quality"] for r in rows])
    knn = np.array([r["knn_disagreement"] for r in rows])
    hit = int((flagged & flipped).sum())
    return {
        "flagged": int(flagged.sum()),
        "precision": round(hit / max(int(flagged.sum()), 1), 4),
        "recall": round(hit / max(int(flipped.sum()), 1), 4),
        "self_confidence": ranking_scores(quality, flipped),
        "knn_disagreement": ranking_scores(-knn, flipped),
        "estimated_noise": round(issues.summary["train"]["estimated_noise"], 4),
    }


def perturb(image: np.ndarray, rng) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buffer = io.BytesIO()
    im.save(buffer, format="JPEG", quality=75)
    out = np.asarray(Image.open(io.BytesIO(buffer.getvalue()))).astype(np.float64).reshape(image.shape)
    out = out + 12 + rng.normal(0, 3, out.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def plant(data, seed: int = 0):
    """Data with planted duplicates and outliers, and where they are."""
    from densify.data import DataSplits, ImageSet

    rng = np.random.default_rng(seed)
    train, held = data.train, data.heldout
    n_classes = len(data.classes)
    images, labels = np.array(train.images), np.array(train.labels)
    # outliers: replace training images in place
    out_rows = rng.choice(len(images), PLANTED, replace=False)
    for j, row in enumerate(out_rows):
        if j < PLANTED // 2:
            images[row] = rng.integers(0, 256, images[row].shape, dtype=np.uint8)
        else:
            other = rng.choice(np.flatnonzero(labels != labels[row]))
            images[row] = 255 - images[other]
    keep = np.setdiff1d(np.arange(len(images)), out_rows)
    # cross-split: held-out images appended to train
    leak_src = rng.choice(len(held), PLANTED, replace=False)
    added, added_labels, leak_kind = [], [], []
    for j, h in enumerate(leak_src):
        exact = j % 2 == 0
        added.append(held.images[h] if exact else perturb(held.images[h], rng))
        relabel = (j // 2) % 2 == 1
        added_labels.append((held.labels[h] + 1) % n_classes if relabel else held.labels[h])
        leak_kind.append("exact" if exact else "near")
    # within train: training images (not outliers) appended again
    dup_src = rng.choice(keep, PLANTED, replace=False)
    dup_kind = []
    for j, t in enumerate(dup_src):
        exact = j % 2 == 0
        added.append(images[t] if exact else perturb(images[t], rng))
        added_labels.append(labels[t])
        dup_kind.append("exact" if exact else "near")
    n = len(images)
    new_train = ImageSet(
        np.concatenate([images, np.stack(added)]), np.concatenate([labels, added_labels]), train.classes,
        train.name,
    )  # fmt: skip
    planted = replace(data, train=new_train)
    assert isinstance(planted, DataSplits)
    where = {
        "outliers": out_rows,
        "leaks": leak_src,  # held-out rows that now have a train copy
        "leak_kind": np.array(leak_kind),
        "dup_rows": np.arange(n + PLANTED, n + 2 * PLANTED),  # the appended copies
        "dup_src": dup_src,
        "dup_kind": np.array(dup_kind),
    }
    return planted, where


def photos_args(doc: str, argv=None) -> argparse.Namespace:
    """The outlier benchmarks' command line: ``--photos`` (the folder of the photo sets)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data")
    return parser.parse_args(argv)


def planted_outliers(name: str, photos: Path):
    """Dataset ``name`` with :func:`plant`'s faults, and where its planted outliers are: (data, training labels,
    planted rows, the noise rows, the inverted rows, a mask of the other training images)."""
    planted, where = plant(load(name, photos))
    labels = np.asarray(planted.train.labels)
    rows = np.asarray(where["outliers"], int)
    others = np.ones(len(labels), bool)
    others[rows] = False
    return planted, labels, rows, rows[: PLANTED // 2], rows[PLANTED // 2 :], others


def fault_scores(issues, where) -> dict:
    rows = {(r["split"], r["index"]): r for r in issues.rows}
    n_train = sum(1 for r in issues.rows if r["split"] == "train")
    n_held = len(issues.rows) - n_train
    leak_found = np.array(["leak" in rows[("heldout", int(h))]["issues"] for h in where["leaks"]])
    dup_found = np.array(
        [
            "duplicate" in rows[("train", int(a))]["issues"]
            and "duplicate" in rows[("train", int(b))]["issues"]
            for a, b in zip(where["dup_rows"], where["dup_src"], strict=True)
        ]
    )
    planted_train = set(map(int, where["dup_rows"])) | set(map(int, where["dup_src"]))
    planted_train |= set(range(n_train - 2 * PLANTED, n_train - PLANTED))  # the leaked copies in train
    other_dup = sum(
        1
        for (s, i), r in rows.items()
        if s == "train" and i not in planted_train and "duplicate" in r["issues"]
    )
    other_leak = sum(
        1
        for (s, i), r in rows.items()
        if s == "heldout" and i not in set(map(int, where["leaks"])) and "leak" in r["issues"]
    )
    out_found = np.array(["outlier" in rows[("train", int(o))]["issues"] for o in where["outliers"]])
    other_out = sum(
        1
        for (s, i), r in rows.items()
        if s == "train" and i not in set(map(int, where["outliers"])) and "outlier" in r["issues"]
    )
    return {
        "leak_recall": {k: float(leak_found[where["leak_kind"] == k].mean()) for k in ("exact", "near")},
        "leak_other_flags": other_leak,
        "heldout_images": n_held,
        "duplicate_recall": {k: float(dup_found[where["dup_kind"] == k].mean()) for k in ("exact", "near")},
        "duplicate_other_flags": other_dup,
        "outlier_recall": float(out_found.mean()),
        "outlier_other_flags": other_out,
        "train_images": n_train,
    }


def run_dataset(name: str, args, results: dict) -> None:
    from densify.estimate import clean_embeddings
    from densify.quality import find_data_issues

    data = load(name, args.photos)
    n_classes = len(data.classes)
    cache = args.cache
    entry = results.setdefault(name, {"train": len(data.train), "heldout": len(data.heldout), "runs": {}})
    features = {}
    for enc in LABEL_FREE:
        start = time.perf_counter()
        features[enc] = clean_embeddings(data, encoder=enc, cache_dir=cache)
        entry.setdefault("embed_seconds", {})[enc] = round(time.perf_counter() - start, 1)
    for kind in KINDS:
        for level in LEVELS:
            labels, flipped = flip_labels(np.asarray(data.train.labels), n_classes, level, kind, seed=1)
            noisy = replace(data, train=replace(data.train, labels=labels))
            for enc in (*LABEL_FREE, "reference") if (kind, level) == ("uniform", 0.10) else LABEL_FREE:
                key = f"{kind}-{level:g}-{enc}"
                if key in entry["runs"]:
                    continue
                start = time.perf_counter()
                if enc in LABEL_FREE:
                    tf, hf = features[enc]
                else:
                    tf, hf = clean_embeddings(noisy, encoder=enc, cache_dir=cache)
                issues = find_data_issues(noisy, tf, hf)
                entry["runs"][key] = {
                    **label_scores(issues, flipped),
                    "seconds": round(time.perf_counter() - start, 1),
                }
                print(name, key, json.dumps(entry["runs"][key]), flush=True)
                save(results)
    if "faults" not in entry:
        planted, where = plant(data)
        entry["faults"] = {}
        for enc in LABEL_FREE:
            tf, hf = clean_embeddings(planted, encoder=enc, cache_dir=cache)
            entry["faults"][enc] = fault_scores(find_data_issues(planted, tf, hf), where)
            print(name, "faults", enc, json.dumps(entry["faults"][enc]), flush=True)
        save(results)


RESULT = HERE / "detect-results.json"


def save(results: dict) -> None:
    from densify._io import write_text_atomic

    write_text_atomic(RESULT, json.dumps(results, indent=1) + "\n")


def table(results: dict) -> str:
    lines = [
        "## Label-noise detection (training split; confident learning on out-of-fold probe probabilities)",
        "",
    ]
    lines.append(
        "| dataset | encoder | noise | flipped share | flagged | precision | recall | P@R0.5 (self-confidence) "
        "| AP | P@R0.5 (k-NN) | estimated noise |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, entry in results.items():
        for key, r in entry["runs"].items():
            kind, level, enc = key.split("-", 2)
            lines.append(
                f"| {name} | {enc} | {kind} | {float(level):.0%} | {r['flagged']} | {r['precision']:.2f} "
                f"| {r['recall']:.2f} | {r['self_confidence']['precision_at_recall_0.5']:.2f} "
                f"| {r['self_confidence']['average_precision']:.2f} "
                f"| {r['knn_disagreement']['precision_at_recall_0.5']:.2f} | {r['estimated_noise']:.3f} |"
            )
    lines += ["", "## Planted duplicates, leakage and outliers", ""]
    lines.append(
        "| dataset | encoder | leak recall exact / near | other leak flags | duplicate recall exact / near "
        "| other duplicate flags | outlier recall | other outlier flags |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for name, entry in results.items():
        for enc, f in entry.get("faults", {}).items():
            lines.append(
                f"| {name} | {enc} | {f['leak_recall']['exact']:.2f} / {f['leak_recall']['near']:.2f} "
                f"| {f['leak_other_flags']} of {f['heldout_images']} "
                f"| {f['duplicate_recall']['exact']:.2f} / {f['duplicate_recall']['near']:.2f} "
                f"| {f['duplicate_other_flags']} of {f['train_images']} | {f['outlier_recall']:.2f} "
                f"| {f['outlier_other_flags']} of {f['train_images']} |"
            )
    return "\n".join(lines) + "\n"


def choose(results: dict) -> dict:
    """The fixed rule: best worst-case P@R0.5 at 10 % uniform noise among label-free encoders; ties (0.02) to
    pixels."""
    worst = {
        enc: min(
            e["runs"][f"uniform-0.1-{enc}"]["self_confidence"]["precision_at_recall_0.5"]
            for e in results.values()
        )
        for enc in LABEL_FREE
    }
    best = max(worst.values())
    chosen = next(enc for enc in LABEL_FREE if worst[enc] >= best - 0.02)
    return {"worst_case_precision_at_recall_0.5": worst, "chosen": chosen}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=ROOT / "predictor-study" / "cache")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    results = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    for name in args.datasets.split(","):
        if name not in DATASETS:
            sys.exit(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
        run_dataset(name, args, results)
    if all(n in results for n in DATASETS):
        results_choice = choose(results)
        print(json.dumps(results_choice))
        (args.docs / "data-quality-tables.md").write_text(
            "# Data-quality detection: tables\n\nGenerated by `python benchmarks/data_quality/detect.py`; prose in "
            "[data-quality.md](data-quality.md).\n\n" + table(results)
            + f"\nEncoder choice (fixed rule): {json.dumps(results_choice)}\n"
        )  # fmt: skip


if __name__ == "__main__":
    main()

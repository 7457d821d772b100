"""Does the audit notice a held-out set drawn unlike the training set? (``densify.quality.heldout_shift``)

    python benchmarks/data_quality/shift.py [--only NAME,...] [--reference]

The check: a seeded half of the training images is the reference; the share of the other half inside some
reference k-NN ball (k = 5) against the held-out images' share; shifted when the deficit's 95% interval is above 0
and the deficit is at least 0.1. The audit runs it on the duplicate search's 16 x 16 grayscale thumbnails.

How the features were chosen (2026-11-29, before this script): on the predictor study's 11 unshifted conditions and
shapes-gap-500 (the one with a known train/test shift: training shapes rotated 0-20 degrees, held-out 0-360), in
four spaces. The audit's label-trained ``reference`` encoder called every condition shifted (deficits 0.18-0.86: it
has seen the probe half, so it pulls those images together); random-CNN features and 32 principal components of
the pixels (fitted on the reference half) raised no false alarm but saw nothing of shapes-gap (+0.016, +0.003); the
thumbnails raised none (-0.034 to +0.023) and saw shapes-gap (+0.35). Those 12 conditions chose the space, so they
are not evidence of how well it detects a shift.

Evidence, fixed before it was run: eleven fresh shifts, five of known-factor data (a gap in one factor between the
training and held-out ranges) and six of real images whose held-out images were changed (blur, translation,
rotation, darkening, greyscale, noise). The rule: the audit keeps the check as a warning if it raises no false
alarm on the 11 unshifted conditions; its sensitivity is what the fresh shifts show, reported whatever it is.
Expected blind spots, stated before the run: the thumbnails are grayscale and normalised for brightness and
contrast, so darkening and greyscale should go unseen.

The other direction (added 2026-11-29, fifth session, fixed before these conditions were run): intel-blur came out
at -0.15, held-out images inside *more* reference balls than the probe half (blurring pulls images toward their
neighbours), which the one-sided rule does not report. ``heldout_shift`` now also reports ``concentrated``: the
interval lies below zero and the held-out share exceeds the probe's by at least the floor. It is a data-quality line
(held-out images more alike than training images), not a ranking warning: no trained condition shows what it does
to a ranking. Its false alarms are already known from the 11 unshifted conditions (deficits -0.034 to +0.023: none);
its sensitivity is what five fresh changes of held-out images show (kind "fresh concentration"), reported whatever it
is, with the expectation stated first: blur-like changes (Gaussian blur, downscaling and upscaling, a median filter)
should come out negative where the training share leaves room (below 0.9); JPEG at quality 10 is not predicted (its
block edges add structure as its quantisation removes it). intel-blur suggested the rule and is not evidence.

Results: benchmarks/data_quality/shift-results.json (seconds per condition; ``--reference`` adds the reference
encoder's figures, minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "predictors"))
import study  # noqa: E402  (benchmarks/predictors/study.py: the conditions)

PHOTOS = ROOT.parent / "shared" / "data"
RESULT = HERE / "shift-results.json"
SYNTH = "synth:{family}?train=2000&heldout=1000&{gap}"


def _blur(x):
    import cv2

    return np.stack([cv2.GaussianBlur(i, (0, 0), 1.0).reshape(i.shape) for i in x])


def _translate(x, pixels=4):
    out = np.zeros_like(x)
    out[:, :, pixels:] = x[:, :, :-pixels]
    return out


def _rotate(x, degrees=30.0):
    import cv2

    h, w = x.shape[1:3]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.stack([cv2.warpAffine(i, m, (w, h)).reshape(i.shape) for i in x])


def _darken(x):
    return (x.astype(np.float32) * 0.5).round().astype(np.uint8)


def _grey(x):
    g = x.astype(np.float32).mean(axis=3, keepdims=True).round().astype(np.uint8)
    return np.repeat(g, x.shape[3], axis=3)


def _noise(x, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(x.astype(np.float32) + rng.normal(0, 25, x.shape), 0, 255).round().astype(np.uint8)


def _lowres(x, factor=2):
    import cv2

    h, w = x.shape[1:3]
    small = [cv2.resize(i, (w // factor, h // factor), interpolation=cv2.INTER_AREA) for i in x]
    return np.stack(
        [cv2.resize(i, (w, h), interpolation=cv2.INTER_LINEAR).reshape(x.shape[1:]) for i in small]
    )


def _median(x):
    import cv2

    return np.stack([cv2.medianBlur(np.ascontiguousarray(i), 3).reshape(i.shape) for i in x])


def _jpeg10(x):
    import cv2

    def once(i):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(i), [cv2.IMWRITE_JPEG_QUALITY, 10])
        if not ok:
            raise RuntimeError("cv2.imencode failed")
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(i.shape)

    return np.stack([once(i) for i in x])


def _blur_small(x):
    import cv2

    return np.stack([cv2.GaussianBlur(i, (0, 0), 0.7).reshape(i.shape) for i in x])


#: fresh changes that concentrate held-out images (the other direction, module docstring)
CONCENTRATING = {"fashion-lowres2", "flowers-blur", "flowers-median3", "fashion-blur07", "intel-jpeg10"}

#: fresh shifts: (spec or study condition, train size, held-out size, change of the held-out images or None)
FRESH = {
    "shapes-scale-gap": (SYNTH.format(family="shapes", gap="scale=0.5:0.6/0.5:0.9"), 500, 1000, None),
    "colours-rotation-gap": (SYNTH.format(family="colours", gap="rotation=0:20/0:360"), 500, 1000, None),
    "arrows-scale-gap": (SYNTH.format(family="arrows", gap="scale=0.6:0.7/0.6:0.9"), 500, 1000, None),
    "shapes-hue-gap": (SYNTH.format(family="shapes", gap="hue=0:60/0:360"), 500, 1000, None),
    "shapes-brightness-gap": (
        SYNTH.format(family="shapes", gap="brightness=0.8:1.0/0.3:1.0"),
        500,
        1000,
        None,
    ),
    "intel-blur": ("intel-2000", None, None, _blur),
    "fashion-translate4": ("fashion-2000", None, None, _translate),
    "digits-rotate30": ("digits-800", None, None, _rotate),
    "flowers-darken": ("flowers-2000", None, None, _darken),
    "intel-greyscale": ("intel-2000", None, None, _grey),
    "fashion-noise25": ("fashion-2000", None, None, _noise),
    # the other direction (module docstring), added 2026-11-29 (fifth session)
    "fashion-lowres2": ("fashion-2000", None, None, _lowres),
    "flowers-blur": ("flowers-2000", None, None, _blur),
    "flowers-median3": ("flowers-2000", None, None, _median),
    "fashion-blur07": ("fashion-2000", None, None, _blur_small),
    "intel-jpeg10": ("intel-2000", None, None, _jpeg10),
}


def _load(name: str):
    from densify.data import ImageSet, load_data

    if name in study.CONDITIONS:
        c = study.CONDITIONS[name]
        spec, train, held, change, resize = c.spec, c.train, c.heldout, None, c.resize
    else:
        spec, train, held, change = FRESH[name]
        resize = None
        if spec in study.CONDITIONS:
            c = study.CONDITIONS[spec]
            spec, train, held, resize = c.spec, c.train, c.heldout, c.resize
    data = load_data(spec.format(photos=PHOTOS), train_size=train, heldout_size=held, seed=0,
                     resize=(resize, resize) if resize else None)  # fmt: skip
    if change is not None:
        h = data.heldout
        data = replace(data, heldout=ImageSet(change(np.asarray(h.images)), h.labels, h.classes, h.name))
    return data


def measure(name: str, reference: bool) -> dict:
    from densify.estimate import clean_embeddings
    from densify.quality import heldout_shift
    from densify.quality._duplicates import thumbnails

    data = _load(name)
    out = {}
    start = time.perf_counter()
    out["thumbnails"] = heldout_shift(thumbnails(data.train.images)[0], thumbnails(data.heldout.images)[0])
    out["seconds"] = round(time.perf_counter() - start, 2)
    encoders = ("random-cnn", "reference") if reference else ("random-cnn",)
    for enc in encoders:
        t, h = clean_embeddings(data, encoder=enc, cache_dir=None)
        out[enc] = heldout_shift(t, h)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=None, help="comma-separated condition names")
    parser.add_argument("--reference", action="store_true", help="also the label-trained reference encoder")
    parser.add_argument("--json", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    names = [*study.CONDITIONS, *FRESH]
    if args.only:
        names = [n for n in args.only.split(",") if n]
        unknown = [n for n in names if n not in study.CONDITIONS and n not in FRESH]
        if unknown:
            parser.error(f"unknown condition {unknown[0]!r}")
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    for name in names:
        entry = measure(name, args.reference)
        entry["kind"] = (
            "fresh concentration"
            if name in CONCENTRATING
            else "fresh shift"
            if name in FRESH
            else ("known shift" if "gap" in name else "unshifted")
        )
        results[name] = entry
        s = entry["thumbnails"]
        print(f"{name:22s} {entry['kind']:12s} train {s['train_share']:.3f} held-out {s['heldout_share']:.3f} "
              f"deficit {s['deficit']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}] shifted {s['shifted']} "
              f"concentrated {s.get('concentrated')}",
              flush=True)  # fmt: skip
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    unshifted = [n for n, e in results.items() if isinstance(e, dict) and e.get("kind") == "unshifted"]
    fresh = [n for n, e in results.items() if isinstance(e, dict) and e.get("kind") == "fresh shift"]
    false_alarms = [n for n in unshifted if results[n]["thumbnails"]["shifted"]]
    detected = [n for n in fresh if results[n]["thumbnails"]["shifted"]]
    concentrating = [
        n for n, e in results.items() if isinstance(e, dict) and e.get("kind") == "fresh concentration"
    ]
    results["verdict"] = {
        "false_alarms": false_alarms, "unshifted": len(unshifted), "detected": detected, "fresh": len(fresh),
        "keep": not false_alarms,
        "concentrated_false_alarms": [n for n in unshifted if results[n]["thumbnails"].get("concentrated")],
        "concentrated_detected": [n for n in concentrating if results[n]["thumbnails"].get("concentrated")],
        "concentrating": len(concentrating),
    }  # fmt: skip
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["verdict"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

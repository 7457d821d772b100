"""Peak memory of an audit as the dataset grows: lazy (memory-mapped) sources against reading everything in.

    python benchmarks/bench_memory.py [--sizes 10000,50000,200000] [--kinds idx,folder] [--folder-max 50000]

Generates N 128x128 images (10 classes; a class-specific pattern plus noise) as a raw IDX folder (grayscale) and
as an ImageFolder tree of RGB PNGs (up to --folder-max images: PNG encoding and decoding dominate beyond), then runs
``densify evaluate --no-train`` on each (2,000 training images, the default; a fixed 1,000 held-out images; the
pixels:pca32 encoder, so that the run measures data handling rather than encoder training) in a fresh process and records its peak resident memory (ru_maxrss) and
wall time three ways: every source mapped (``DENSIFY_IN_MEMORY_MAX=0``), densify's default (sources larger than
1 GiB mapped), and mapping disabled (``DENSIFY_IN_MEMORY_MAX`` huge: the whole dataset decoded into memory, the
behaviour before issue 16). Issue 16's
target: peak memory flat within 20 % from 10k to 200k images. Results: benchmarks/memory-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIDE = 128
CLASSES = 10


def _images(n: int, start: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start .. start + n`` of the generated set: class c is a sinusoidal grating of its own frequency and
    angle, shifted per image, plus noise (seeded by the image index, so chunks concatenate to the same set)."""
    labels = (np.arange(start, start + n) * 7919) % CLASSES
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    out = np.empty((n, SIDE, SIDE, channels), np.uint8)
    rng = np.random.default_rng(start)
    for j, c in enumerate(labels):
        angle = np.pi * c / CLASSES
        freq = 2 + c
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
        img = 128 + 90 * wave + rng.normal(0, 20, (SIDE, SIDE))
        out[j] = np.clip(img, 0, 255).astype(np.uint8)[..., None]
    return out, labels.astype(np.uint8)


def write_idx(root: Path, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with (
        open(root / "train-images-idx3-ubyte", "wb") as images,
        open(root / "train-labels-idx1-ubyte", "wb") as lab,
    ):
        images.write(struct.pack(">BBBB3I", 0, 0, 8, 3, n, SIDE, SIDE))
        lab.write(struct.pack(">BBBBI", 0, 0, 8, 1, n))
        for start in range(0, n, 5000):
            x, y = _images(min(5000, n - start), start, 1)
            images.write(x.tobytes())
            lab.write(y.tobytes())


def write_folder(root: Path, n: int) -> None:
    from PIL import Image

    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for start in range(0, n, 2000):
        x, y = _images(min(2000, n - start), start, 1)
        for j, (img, c) in enumerate(zip(x, y, strict=True)):
            rgb = np.repeat(img, 3, axis=2)
            rgb[..., 1] = 255 - rgb[..., 1]  # colour, so decoding is RGB
            Image.fromarray(rgb).save(root / f"class{c}" / f"{start + j:07d}.png", compress_level=1)


def measure(spec: str, limit: int | None, cache: Path, out: Path) -> dict:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", DENSIFY_CACHE=str(cache))
    if limit is not None:
        env["DENSIFY_IN_MEMORY_MAX"] = str(limit)
    cmd = [sys.executable, "-m", "densify", "evaluate", "--data", spec, "--no-train", "--heldout-size", "1000",
           "--recipes", "flip,affine-light", "--encoder", "pixels:pca32", "--out", str(out), "--force"]  # fmt: skip
    return run_measured(cmd, env)


def run_measured(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` in a fresh process: its wall time and peak resident memory (ru_maxrss); exits on failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode()[-600:] if proc.stderr else ""
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err}")
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,50000,200000")
    parser.add_argument("--kinds", default="idx,folder")
    parser.add_argument("--folder-max", type=int, default=50000)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "memory-results.json")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="densify-memory-"))
    results = []
    for kind in args.kinds.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            if kind == "folder" and n > args.folder_max:
                continue
            data = work / f"{kind}-{n}"
            start = time.perf_counter()
            if not data.exists():
                (write_idx if kind == "idx" else write_folder)(data, n)
            made = time.perf_counter() - start
            row = {"kind": kind, "n": n, "generate_seconds": round(made, 1)}
            for mode, limit in (("lazy", 0), ("default", None), ("in-memory", 1 << 50)):
                cache = work / f"cache-{kind}-{n}-{mode}"
                row[mode] = measure(f"{kind}:{data}", limit, cache, work / "out")
                if kind == "folder" and mode == "lazy":  # a second load maps the decoded cache
                    row["lazy-again"] = measure(f"{kind}:{data}", limit, cache, work / "out")
                shutil.rmtree(cache, ignore_errors=True)
            results.append(row)
            print(json.dumps(row), flush=True)
            if args.work is None:
                shutil.rmtree(data, ignore_errors=True)
    for kind in {r["kind"] for r in results}:
        rows = [r for r in results if r["kind"] == kind]
        lazy = [r["lazy"]["peak_rss_mb"] for r in rows]
        default = [r["default"]["peak_rss_mb"] for r in rows]
        print(f"{kind}: mapped peak RSS {min(lazy):.0f}..{max(lazy):.0f} MB (max/min {max(lazy) / min(lazy):.2f}); "
              f"default {min(default):.0f}..{max(default):.0f} MB; "
              f"in memory {rows[0]['in-memory']['peak_rss_mb']:.0f}..{rows[-1]['in-memory']['peak_rss_mb']:.0f} MB")  # fmt: skip
    from densify._io import write_text_atomic

    write_text_atomic(args.json, json.dumps({"side": SIDE, "results": results}, indent=1) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

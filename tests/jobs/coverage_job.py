"""A coverage estimate run as a script, alone or under ``torchrun`` (tests/test_distributed.py compares them).

usage: python coverage_job.py OUT.json [ENCODER]; ENCODER ``reference`` (a short-trained reference CNN, its state
broadcast from rank 0) or any ``densify.embed.get_encoder`` name.
"""

import json
import sys

from densify._dist import is_main
from densify.data import load_data
from densify.embed._cnn import ReferenceEncoder
from densify.estimate import estimate_coverage

out, encoder = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "reference"
data = load_data("fashion-mini", train_size=2100, heldout_size=300, seed=0)
run = estimate_coverage(
    data,
    ["none", "flip", "affine-light"],
    encoder=ReferenceEncoder(seed=0, steps=30) if encoder == "reference" else encoder,
    views=1,
    n_boot=200,
    cache_dir=None,
    samples=100,
)
if is_main():
    report = run.to_dict()
    report.pop("timings")
    for recipe in report["recipes"].values():
        recipe.pop("seconds")
    report["samples"] = {name: a.tolist() for name, a in sorted(run.samples.items())}
    with open(out, "w") as fh:
        json.dump(report, fh, sort_keys=True)

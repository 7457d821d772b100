"""report.html in a real headless browser (Debian's chromium): it loads without errors, shows every plot, and the
numbers it shows are report.json's. Marked slow; `make test` runs it, and CI (DENSIFY_REQUIRE_BROWSER=1) fails
rather than skips when no browser is installed."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from densify.audit import AuditSettings, run_audit

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",
]


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("DENSIFY_REQUIRE_BROWSER"):
        pytest.fail("no chromium found; `make test` installs Debian's chromium (apt-get install chromium)")
    pytest.skip("no chromium installed (apt-get install chromium)")


def _run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_report_html_in_headless_chromium(tmp_path: Path):
    browser = _browser()
    out = tmp_path / "report"
    report = run_audit(
        AuditSettings(
            recipes=(
                "flip",
                "vflip",
                "crop-pad",
                "affine-light",
                "affine-heavy",
                "cutout",
                "flip-crop-cutout",
            ),
            encoder="pixels:pca16",
            train_size=400,
            heldout_size=200,
            seeds=2,
            steps=30,
            batch=32,
            n_boot=200,
        ),
        out,
    )
    url = (out / "report.html").resolve().as_uri()

    dom = _run(browser, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    plots = len(list((out / "plots").glob("*.png")))
    assert int(attrs["images"]) == plots and int(attrs["images-loaded"]) == plots, attrs  # every plot shows
    assert "errors" not in attrs, attrs["errors"]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console

    cells = re.findall(r'<span data-path="([^"]+)" data-scale="([^"]+)"[^>]*>([^<]+)</span>', dom.stdout)
    assert len(cells) > 50
    for path, scale, text in cells:
        node = report
        for part in html.unescape(path).split("/"):
            node = node[int(part)] if isinstance(node, list) else node[part]
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert float(text) == pytest.approx(float(scale) * node, abs=0.6 * 10**-decimals), path

    for width in (
        1280,
        1920,
    ):  # reads without scrolling sideways: every table (flags included) fits the window
        dom = _run(browser, tmp_path / f"profile-{width}", f"--window-size={width},1600", "--dump-dom", url)
        body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
        attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
        assert int(attrs["view-width"]) == width, attrs
        assert int(attrs["page-width"]) <= width and int(attrs["tables-right"]) <= width, (width, attrs)

    shot = tmp_path / "report.png"
    result = _run(browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2400", url)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 20  # text, tables and plots, not a blank page
    keep = os.environ.get("DENSIFY_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)

"""The report bundle's folder: who owns it, and writing it so a reader never sees a mix of two runs.

Layout of ``--out``::

    report.json      every number and setting (schema ``densify.report/1``); written last, so its presence
                     marks a complete bundle
    metrics.csv      a row per recipe
    plots/*.png      the figures
    report.html      self-contained (images embedded)
    .densify/        run.json (the run in progress) and the cache of finished steps (embeddings, metrics, runs)

An existing ``--out`` is only reused when it is empty or holds a densify audit: a different run is refused unless
``resume`` (reuse what still applies) or ``force`` (start over) is given.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from densify._io import write_bytes_atomic, write_text_atomic
from densify.errors import DensifyError

STATE = ".densify"
REPORT = "report.json"


class OutError(DensifyError):
    """An ``--out`` folder that cannot be used."""


def check_writable(out: Path) -> None:
    """Raise :class:`OutError` unless ``out`` is (or can be created as) a writable folder; creates nothing."""
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutError(f"--out {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutError(f"--out {out}: {probe} is not writable")


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not keys:
        return "the data changed"
    shown = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def claim(out: Path, run_id: str, settings: dict[str, Any], *, resume: bool, force: bool) -> None:
    """Make ``out`` this run's folder, or refuse with a one-line :class:`OutError`.

    Without ``resume`` the cache of finished steps is cleared (a fresh run); with it, kept (steps whose inputs
    are unchanged are reused; the cache keys hold every input, so a changed setting recomputes what it affects).
    """
    state = out / STATE
    previous = None
    for candidate in (state / "run.json", out / REPORT):
        if candidate.is_file():
            try:
                previous = json.loads(candidate.read_text())
            except (OSError, ValueError):
                previous = {}
            break
    if out.exists() and not out.is_dir():
        raise OutError(f"--out {out} is a file, not a folder")
    if previous is None and out.is_dir() and any(out.iterdir()):
        raise OutError(f"--out {out} is not empty and holds no densify report; choose a new or empty folder")
    if previous is not None and previous.get("run_id") != run_id and not (resume or force):
        raise OutError(
            f"--out {out} holds a report of a different run ({_describe_difference(previous.get('settings', {}), settings)});"
            " pass --resume to update it, --force to replace it, or choose another --out"
        )
    if state.is_dir() and not resume:
        shutil.rmtree(state / "cache", ignore_errors=True)
        shutil.rmtree(state / "train", ignore_errors=True)
    write_text_atomic(
        state / "run.json",
        json.dumps({"run_id": run_id, "settings": settings}, indent=2, sort_keys=True) + "\n",
    )


def write_bundle(out: Path, files: dict[str, bytes]) -> list[Path]:
    """Write the bundle's files (relative path -> bytes), each atomically, ``report.json`` last; the old
    ``report.json`` is removed first so a bundle interrupted while being written reads as incomplete."""
    (out / REPORT).unlink(missing_ok=True)
    written = []
    stale = {p for p in (out / "plots").glob("*.png")} if (out / "plots").is_dir() else set()
    for name, data in sorted(files.items(), key=lambda kv: kv[0] == REPORT):
        path = out / name
        write_bytes_atomic(path, data)
        stale.discard(path)
        written.append(path)
    for path in stale:  # plots of recipes no longer in the run
        path.unlink(missing_ok=True)
    return written


def read_report(folder: str | Path) -> dict[str, Any]:
    """The ``report.json`` of a bundle folder, or a one-line :class:`DensifyError`."""
    folder = Path(folder)
    path = folder / REPORT if folder.is_dir() else folder
    if not path.is_file():
        raise DensifyError(f"{folder}: no {REPORT} (not a densify report bundle, or an incomplete one)")
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DensifyError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(report, dict) or not str(report.get("schema", "")).startswith("densify.report/"):
        raise DensifyError(f"{path}: not a densify report (no 'schema': 'densify.report/N')")
    return report

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
from collections.abc import Iterator
from contextlib import contextmanager
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
        raise OutError(f"out folder {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutError(f"out folder {out}: {probe} is not writable")


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not keys:
        return "the data changed"
    shown = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def check_claim(out: Path, run_id: str, settings: dict[str, Any], *, resume: bool, force: bool) -> None:
    """Refuse with a one-line :class:`OutError` unless ``out`` may become this run's folder; writes nothing."""
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
        raise OutError(f"out folder {out} is a file, not a folder")
    if previous is None and out.is_dir() and any(p.name != STATE for p in out.iterdir()):
        raise OutError(
            f"out folder {out} is not empty and holds no densify report; choose a new or empty folder"
        )
    if previous is not None and previous.get("run_id") != run_id and not (resume or force):
        raise OutError(
            f"out folder {out} holds a report of a different run ({_describe_difference(previous.get('settings', {}), settings)});"
            " resume to update it (--resume), force to replace it (--force), or choose another folder"
        )


def claim(out: Path, run_id: str, settings: dict[str, Any], *, resume: bool, force: bool) -> None:
    """Make ``out`` this run's folder (call it holding :func:`lock`), or refuse as :func:`check_claim` does.

    Without ``resume`` the cache of finished steps is cleared (a fresh run); with it, kept (steps whose inputs
    are unchanged are reused; the cache keys hold every input, so a changed setting recomputes what it affects).
    """
    check_claim(out, run_id, settings, resume=resume, force=force)
    state = out / STATE
    if state.is_dir() and not resume:
        shutil.rmtree(state / "cache", ignore_errors=True)
        shutil.rmtree(state / "train", ignore_errors=True)
    write_text_atomic(
        state / "run.json",
        json.dumps({"run_id": run_id, "settings": settings}, indent=2, sort_keys=True) + "\n",
    )


@contextmanager
def lock(out: Path) -> Iterator[None]:
    """Hold ``out``'s advisory lock (``.densify/lock``) for one audit; a second one is refused at once.

    The lock is the operating system's (``flock``): it is released when the process ends, even when killed,
    so a crashed audit never leaves the folder locked.
    """
    import fcntl

    state = out / STATE
    try:
        state.mkdir(parents=True, exist_ok=True)
        handle = open(state / "lock", "a+")  # noqa: SIM115 (held for the whole audit)
    except OSError as exc:
        raise OutError(f"out folder {out}: cannot create its lock file ({exc.strerror or exc})") from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise OutError(
                f"out folder {out} is in use by another densify audit ({holder}); wait for it or choose another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def write_bundle(out: Path, files: dict[str, bytes]) -> list[Path]:
    """Replace the bundle in ``out`` by ``files`` (relative path -> bytes) without ever losing a complete one.

    Every file is first written in full to a staging folder beside the bundle (``.densify/staging``): a failure
    there (a full disk, an error, a kill) leaves the previous bundle untouched, and the staging folder is removed.
    Only then are the files moved into place by renames within one file system (no new space needed),
    ``report.json`` last, and plots of recipes no longer in the run removed.
    """
    staging = out / STATE / f"staging-{os.getpid()}"
    for old in (out / STATE).glob("staging-*"):  # left by a killed audit (the caller holds the lock)
        shutil.rmtree(old, ignore_errors=True)
    try:
        for name, data in files.items():
            write_bytes_atomic(staging / name, data)  # raises a one-line DensifyError on a full disk
        stale = set((out / "plots").glob("*.png")) if (out / "plots").is_dir() else set()
        written = []
        for name in sorted(files, key=lambda n: n == REPORT):
            path = out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, path)
            stale.discard(path)
            written.append(path)
    except OSError as exc:
        raise OutError(
            f"out folder {out}: cannot write the report ({exc.strerror or exc}); the previous report is kept"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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
    from densify.audit._schema import check_report

    return check_report(report, str(path))

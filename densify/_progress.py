"""Progress of long work, wherever it runs: a rich bar on a terminal, plain timestamped lines in a file or pipe.

A 1.5-hour audit piped to a log must not print nothing between its command and its table. ``progress_display``
returns a context manager whose ``update(stage, done, total)`` either drives a transient rich bar (terminal) or
writes a line such as ``[21:04:05] training (flip seed 1): 1,250/12,600 (9.9%), 21.3/s, ETA 8m53s`` when the stage
changes, when it completes, and at most every ``every`` seconds in between.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class LineProgress:
    """Timestamped progress lines (stage, done/total, rate, ETA) for output that is not a terminal."""

    def __init__(self, stream: TextIO, every: float = 30.0, clock=time.monotonic, now=datetime.now) -> None:
        self.stream, self.every, self.clock, self.now = stream, every, clock, now
        self.stage: str | None = None
        self.group: str | None = None
        self.started = self.last = 0.0
        self.first_done = 0

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.stream.flush()

    def update(self, stage: str, done: int, total: int) -> None:
        t = self.clock()
        group = stage.split(" (")[0]  # "training (flip seed 1)": the rate and ETA span the whole "training"
        if group != self.group:
            self.group, self.started, self.first_done = group, t, done
        changed = stage != self.stage
        finished = total > 0 and done >= total
        if not (changed or finished or t - self.last >= self.every):
            return
        self.stage, self.last = stage, t
        line = f"[{self.now():%H:%M:%S}] {stage}: {done:,}/{total:,}"
        if total > 0:
            line += f" ({100 * done / total:.1f}%)"
        elapsed, progressed = t - self.started, done - self.first_done
        if elapsed > 0 and progressed > 0 and total > done:
            rate = progressed / elapsed
            line += f", {rate:.3g}/s, ETA {_duration((total - done) / rate)}"
        print(line, file=self.stream, flush=True)


class _BarProgress:
    """A transient rich bar: description, bar, count, elapsed time, remaining time."""

    def __init__(self, console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task = None

    def __enter__(self) -> _BarProgress:
        self.bar.__enter__()
        self.task = self.bar.add_task("starting", total=1)
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def update(self, stage: str, done: int, total: int) -> None:
        self.bar.update(self.task, description=stage, completed=done, total=total)


def progress_display(console=None, every: float = 30.0):
    """A rich bar when ``console`` (default: stderr) is a terminal, else :class:`LineProgress` on its stream."""
    from rich.console import Console

    console = console or Console(stderr=True)
    if console.is_terminal:
        return _BarProgress(console)
    return LineProgress(console.file if console.file is not None else sys.stderr, every=every)


def run_progress(update, runs: int):
    """A trainer callback ``(recipe, seed, step, total)`` that reports all ``runs`` training runs as one stage,
    ``training (RECIPE seed S)``, counted in steps, so the rate and ETA cover the whole training. Runs may
    interleave (parallel jobs): each run's latest step counts, a run ends at ``step == total``, and a key that
    comes back after its run ended is a new run (a scaling study repeats keys)."""
    state: dict = {"finished": 0, "live": {}}

    def progress(recipe: str, seed: int, step: int, total: int) -> None:
        live = state["live"]
        live[(recipe, seed)] = step
        # the stage names every run going on, so it changes when a run starts or ends, not with each report
        stage = "training (" + ", ".join(f"{r} seed {s}" for r, s in live) + ")"
        if step >= total:
            del live[(recipe, seed)]
            state["finished"] += 1
        n = max(runs, state["finished"] + len(live))
        update(stage, state["finished"] * total + sum(live.values()), n * total)

    return progress

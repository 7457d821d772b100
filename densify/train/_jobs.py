"""Training runs in parallel processes, one torch thread each.

A trainer run of a small model on 2 CPU cores is hardly faster with 2 torch threads than with 1 (measured by
``benchmarks/bench_train.py --layout``: 10.3 s against 9.7 s; augmentation and small convolutions do not split
well), so the runs of a comparison are spread over processes instead (``benchmarks/bench_demo.py``: the default
audit's training 0.42x the time of one run at a time on 2 threads): ``jobs`` forked workers, each running whole runs with one thread.
One thread per run also makes the result of a run independent of the machine's core count and of ``jobs``
(torch's CPU reductions depend on the thread count), and single-threaded processes share a busy machine fairly.

The workers are forked, so the data is shared copy-on-write, never pickled; a forked child may only use one
OpenMP thread (a second hangs in the runtime the parent already started: measured), which is why a parallel run
always has exactly one.
"""

from __future__ import annotations

import os
import queue as queue_module
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from densify._torch import env_count
from densify.errors import TrainError

#: progress messages a worker sends per run: every this many steps, and the last
PROGRESS_EVERY = 10


def default_jobs() -> int:
    """Parallel runs when none are asked for: ``DENSIFY_TRAIN_JOBS``, else this process's cores when torch
    trains on the CPU in a single process and ``DENSIFY_TORCH_THREADS`` is unset or 1; else 1 (a GPU, torchrun
    ranks, or runs asked to use several threads each train one at a time)."""
    from densify._dist import local_cores, world_size
    from densify._torch import train_threads

    if os.environ.get("DENSIFY_TRAIN_JOBS"):
        return check_jobs(os.environ["DENSIFY_TRAIN_JOBS"], "DENSIFY_TRAIN_JOBS")
    if world_size() > 1 or train_threads() > 1:
        return 1
    import torch

    return 1 if torch.cuda.is_available() else local_cores()


def check_jobs(value: Any, name: str = "jobs") -> int:
    """``value`` as a positive int, else TrainError naming ``name`` and the value; several jobs also need one
    torch thread per run (a forked worker cannot use more)."""
    try:
        jobs = int(value)
    except (TypeError, ValueError):
        jobs = 0
    if jobs < 1 or str(value).strip() != str(jobs):
        raise TrainError(f"{name} must be a positive integer, got {value!r}")
    if jobs > 1 and (env_count("DENSIFY_TORCH_THREADS") or 0) > 1:  # an explicit request only
        raise TrainError(
            f"{name} {jobs} trains runs in parallel processes with one torch thread each, but "
            f"DENSIFY_TORCH_THREADS={os.environ.get('DENSIFY_TORCH_THREADS')}; unset it or use 1 job"
        )
    return jobs


@dataclass(frozen=True)
class Task:
    """One (recipe, seed) run: the recipe as the caller named it, its canonical name, the seed, its checkpoint."""

    ref: str
    name: str
    seed: int
    checkpoint: Path | None


# What forked workers train: set in the parent just before the pool starts, inherited by fork (never pickled).
_shared: dict[str, Any] = {}


def _one_thread(parent: int) -> None:
    """Worker start-up: one thread, and death with the parent (Linux): a worker orphaned by a killed audit would
    go on training and hold the audit's lock on ``--out``, so that ``--resume`` is refused."""
    os.environ["DENSIFY_TORCH_THREADS"] = "1"  # train_run sets torch's count from it
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _run(task: Task):
    from densify.train._loop import train_run

    progress = _shared["queue"]  # None when nobody listens: then nothing is sent

    def report(step: int, total: int) -> None:
        if progress is not None and (step % PROGRESS_EVERY == 0 or step == total):
            progress.put((task.name, task.seed, step, total))

    result = train_run(
        _shared["data"],
        task.ref,
        task.seed,
        _shared["config"],
        strength=_shared["strength"],
        checkpoint=task.checkpoint,
        init=_shared["init"],
        progress=report,
    )
    return task, result


def run_parallel(
    data,
    tasks: Sequence[Task],
    config,
    *,
    strength: float,
    init,
    jobs: int,
    progress: Callable[[str, int, int, int], None] | None,
    finished: Callable[[Task, Any], None],
) -> None:
    """Train ``tasks`` in ``jobs`` forked single-threaded workers; ``finished(task, result)`` is called in this
    process as each run ends (in the order they end), ``progress`` with the workers' step reports. A worker's
    error stops the other workers and is raised here (a worker that dies, e.g. killed for memory, as a
    TrainError); the runs it cut short continue from their checkpoints next time."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("fork")
    messages = context.Queue()

    def relay() -> None:
        """Hand every step report that has arrived to ``progress`` (the queue is always emptied: a worker cannot
        exit while reports it sent still fill the pipe)."""
        while True:
            try:
                message = messages.get_nowait()
            except queue_module.Empty:
                return
            if progress is not None:
                progress(*message)

    _shared.update(
        data=data, config=config, strength=strength, init=init, queue=None if progress is None else messages
    )
    # non-daemonic workers (unlike multiprocessing.Pool's): a dead worker is reported, not waited for forever
    executor = ProcessPoolExecutor(
        min(jobs, len(tasks)), mp_context=context, initializer=_one_thread, initargs=(os.getpid(),)
    )
    try:
        pending = {executor.submit(_run, task) for task in tasks}
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            relay()
            for future in done:
                finished(*future.result())  # a worker's exception is raised here
        relay()
    except BrokenProcessPool as exc:
        raise TrainError(
            "a training worker process died (killed, or out of memory?); finished runs are kept: run again "
            "to continue, or use --jobs 1"
        ) from exc
    except BaseException:
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.terminate()  # stop the other runs now (their checkpoints stay)
        raise
    finally:
        # Workers exit only once their last reports are in the pipe: keep emptying it until they have gone.
        workers = list((getattr(executor, "_processes", None) or {}).values())
        manager = getattr(executor, "_executor_manager_thread", None)
        executor.shutdown(wait=False, cancel_futures=True)
        while any(worker.is_alive() for worker in workers):
            relay()
            time.sleep(0.01)
        if manager is not None:
            manager.join()  # what shutdown(wait=True) would have waited for, now that the workers have gone
        _shared.clear()
        messages.close()

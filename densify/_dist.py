"""Several processes under ``torchrun``: process group set-up from the environment, rank helpers, collectives.

The trainer splits each optimiser step's batch (``batch_indices``) across ranks (rank r takes every world-th
index), so the global batch, the data order and every augmented view are the same as in one process; gradients
are averaged by ``DistributedDataParallel``. The coverage estimator shards its embedding work (rank r encodes
every world-th batch of images or views) and gathers the shards on rank 0, which computes the metrics and
broadcasts the result. gloo on CPU, NCCL on GPU. Alone (no ``torchrun``, or one process) every helper is a no-op.
"""

from __future__ import annotations

import os


def init_from_env() -> tuple[int, int]:
    """(rank, world size); initialises the process group when started by ``torchrun`` with more than one process."""
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    import atexit

    atexit.register(_close)
    return dist.get_rank(), dist.get_world_size()


def _close() -> None:
    """At exit, wait for the other ranks and tear the process group down: a rank leaving while gloo's threads
    still run aborted the process (``terminate called without an active exception``, about 1 run in 5)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def local_cores() -> int:
    """This process's share of the machine's cores: all of them alone, an equal share for each of the
    ``LOCAL_WORLD_SIZE`` processes ``torchrun`` starts on a node (so ranks do not oversubscribe the cores)."""
    return max(1, (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def rank() -> int:
    import torch.distributed as dist

    return (
        dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0"))
    )


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def mean_over_ranks(value, world: int):
    """The mean of a scalar tensor over ranks (the tensor itself when running alone)."""
    if world == 1:
        return value
    import torch.distributed as dist

    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def broadcast(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank (picklable objects; ``obj`` itself when running alone)."""
    if world_size() == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather(obj) -> list | None:
    """Every rank's ``obj`` in rank order on rank 0, None on the other ranks (``[obj]`` when running alone)."""
    if world_size() == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out

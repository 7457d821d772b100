"""Distributed data parallel under ``torchrun``: process group set-up from the environment, rank helpers.

Each optimiser step's batch (``batch_indices``) is split across ranks (rank r takes every world-th index), so
the global batch, the data order and every augmented view are the same as in one process; gradients are averaged
by ``DistributedDataParallel``. gloo on CPU, NCCL on GPU.
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
    return dist.get_rank(), dist.get_world_size()


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

"""Several processes, one per GPU (or several CPU processes with gloo): torch.distributed + DDP.

Launched either by ``torchrun --nproc_per_node N -m latentstudio.train ...`` (which sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) or by
``latentstudio train --gpus N``, which spawns the processes itself through :func:`spawn`.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def process_info_from_env() -> ProcessInfo:
    """What torchrun (or :func:`spawn`) told this process; a single process otherwise."""
    return ProcessInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))


def init_process_group(info: ProcessInfo, device: torch.device) -> None:
    """Join the group: nccl between GPUs, gloo between CPU processes."""
    if info.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over processes, in place (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_process(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true in any process (e.g. one of them was asked to stop)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)], device=device)).item() > 0)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _spawned_main(rank: int, world_size: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    fn(*args)


def spawn(fn: Callable[..., Any], world_size: int, args: tuple = ()) -> None:
    """Run ``fn(*args)`` in ``world_size`` fresh processes set up as torchrun would set them up.

    ``fn`` must be importable by name (a module-level function). Raises if any process fails.
    """
    import torch.multiprocessing as mp

    mp.spawn(_spawned_main, args=(world_size, _free_port(), fn, args), nprocs=world_size, join=True)

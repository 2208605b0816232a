"""Distributed training under ``torchrun``: who am I, and how to agree with the others.

``torchrun --nproc_per_node=N -m antlers train ...`` sets RANK, LOCAL_RANK and WORLD_SIZE; we then
start a process group (nccl on CUDA, gloo on CPU). Without torchrun everything here degrades to a
single process: rank 0 of 1, and the reductions return their input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist

__all__ = [
    "DistInfo",
    "all_reduce_sum",
    "barrier",
    "broadcast_buffers",
    "broadcast_object",
    "cleanup",
    "setup",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place: ``rank`` of ``world_size``; ``local_rank`` picks its GPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and prints progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> DistInfo:
    """Join the process group that torchrun described in the environment (if any)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not torch_dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend=backend)
    return info


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all processes (identity in a single process)."""
    if not info.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    torch_dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process.

    DDP keeps parameters identical, but each process updates its BatchNorm statistics on its own
    shard after the last broadcast; this makes every rank evaluate and save the same model.
    """
    if info.enabled:
        for buffer in module.buffers():
            torch_dist.broadcast(buffer, src=0)


def broadcast_object(value: Any, info: DistInfo) -> Any:
    """Rank 0's ``value`` (any picklable object made by this program), on every process."""
    if not info.enabled:
        return value
    box = [value]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        torch_dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and torch_dist.is_initialized():
        torch_dist.destroy_process_group()

"""Distributed training under ``torchrun``: who am I, and how to agree with the others.

``torchrun --nproc_per_node=N -m antlers train ...`` sets RANK, LOCAL_RANK and WORLD_SIZE; we then
start a process group (nccl on CUDA, gloo on CPU). Without torchrun everything here degrades to a
single process: rank 0 of 1, and the reductions return their input.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
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
    "gather_in_order",
    "pool_sum",
    "setup",
    "timeout",
]

DEFAULT_TIMEOUT_S = 600.0


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
        torch_dist.init_process_group(backend=backend, timeout=timeout())
    return info


def timeout() -> datetime.timedelta:
    """How long a rank waits for the others, in joining and in every collective, before it fails
    with an error (and torchrun stops the rest): ``ANTLERS_DIST_TIMEOUT`` seconds, default 600
    (torch's own default is 30 minutes). It must exceed the longest time one rank works alone:
    rank 0 writing a checkpoint while the others wait in the next step's all-reduce."""
    given = os.environ.get("ANTLERS_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(given)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise ValueError(f"ANTLERS_DIST_TIMEOUT must be a number of seconds > 0, got {given!r}")
    return datetime.timedelta(seconds=seconds)


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all processes (identity in a single process)."""
    if not info.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    torch_dist.all_reduce(tensor)
    return tensor.tolist()


def _collective_device() -> torch.device:
    """Where the process group's tensors must live: this rank's GPU for nccl, else the CPU."""
    if torch_dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def pool_sum(values: torch.Tensor, sharded: bool) -> torch.Tensor:
    """``values`` summed over every rank when this process evaluated one shard of a split
    (``sharded``: its loader's ``world_size`` > 1), else unchanged; on the CPU. Pool the counts a
    metric is made of (correct answers, a confusion matrix), never the metric: a mean of
    per-rank mIoUs is not the mIoU of the split."""
    if not sharded:
        return values
    pooled = values.to(_collective_device(), copy=True)
    torch_dist.all_reduce(pooled)
    return pooled.cpu()


def gather_in_order(items: list[Any], indices: Sequence[int], sharded: bool) -> list[Any]:
    """Every rank's ``items`` (one per sample; ``indices``: the samples' places in the split),
    on every rank, in the split's order, each sample once: a sampler's padding repeats are
    dropped, as torchvision's references do with ``np.unique`` over image ids. The items are
    this program's own objects (tensors, lists), pickled between the ranks."""
    if not sharded:
        return list(items)
    parts: list[Any] = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(parts, (list(indices), list(items)))
    merged: dict[int, Any] = {}
    for part_indices, part_items in parts:
        for i, item in zip(part_indices, part_items, strict=True):
            merged.setdefault(int(i), item)
    return [merged[i] for i in sorted(merged)]


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

"""The training loop's small parts: device choice, optimizer, EMA, signals, metric reduction."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from antlers.config import TrainConfig
from antlers.engine import dist

if TYPE_CHECKING:
    from antlers.engine.trainer import Loop

__all__ = ["StopFlag", "build_optimizer", "make_ema", "pick_device", "should_stop", "to_device"]


def pick_device(name: str) -> torch.device:
    """ "auto" is CUDA when available, else CPU; "cuda" without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use auto or cpu")
    return torch.device(name)


def to_device(t: Any, device: torch.device, channels_last: bool) -> Any:
    """A batch value as the model takes it: on ``device``, 4-D tensors channels_last when asked;
    lists (per-image boxes of different lengths) element by element."""
    if isinstance(t, list | tuple):
        return [to_device(x, device, channels_last) for x in t]
    t = t.to(device, non_blocking=True)
    if channels_last and t.dim() == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    return t


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; no weight decay on biases and normalisation parameters (ndim<2)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.peak_lr, momentum=config.momentum, nesterov=True)
    # fused: one kernel for all parameters instead of a loop of small ops, a shorter training
    # step for the U-Net on two CPU cores (docs/experiments/segment-recipe.md, step speed)
    fused = all(p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=config.peak_lr, fused=fused)


def make_ema(model: nn.Module, decay: float | None) -> Any:
    """torch's AveragedModel keeping an exponential moving average of weights and buffers.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (as timm's
    ModelEmaV2 does), so a short run's average is not dominated by its random start. The update
    is one fused ``_foreach_lerp_`` per dtype (as torch's ``get_ema_multi_avg_fn``): a loop over
    parameters cost as much as the training step itself on a GPU (docs/experiments/cuda-ema.md).
    Integer buffers (BatchNorm's batch counter) are copied, not averaged.
    """
    if not decay:  # None or 0: no EMA
        return None
    from torch.optim.swa_utils import AveragedModel

    def average(averaged: list[torch.Tensor], current: list[torch.Tensor], n: Any) -> None:
        d = min(decay, (1 + int(n)) / (10 + int(n)))
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1 - d)  # averaged * d + current * (1 - d)
        else:
            torch._foreach_copy_(averaged, current)

    return AveragedModel(model, multi_avg_fn=average, use_buffers=True)


class StopFlag:
    """Context manager: SIGINT/SIGTERM set ``raised`` instead of killing the process.

    The loop checks the flag after each step, saves and stops. A second signal while the
    first is being handled restores the default behaviour (so a stuck run can still be killed).
    Handlers are only installed in the main thread.
    """

    def __init__(self) -> None:
        self.raised = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.raised:
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
        self.raised = True

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def should_stop(
    config: TrainConfig, loop: Loop, stop: StopFlag, info: dist.DistInfo, device: torch.device
) -> str | None:
    """Why to stop after this step, agreed by all processes: signal, max_steps, time or None.

    Under torchrun ``loop.elapsed`` becomes the processes' mean: each one's clock runs from its
    own start of the epoch (rank 0 starts later, having written the checkpoints), and the
    learning rate planned from the clock must be the same everywhere or the weights diverge.
    """
    signalled = float(stop.raised)
    if info.enabled:
        signalled, total = dist.all_reduce_sum([signalled, loop.elapsed], info, device)
        loop.elapsed = total / info.world_size
    if signalled:
        return "signal"
    if config.max_steps is not None and loop.step >= config.max_steps:
        return "max_steps"
    return "time" if config.time and loop.elapsed >= config.time else None

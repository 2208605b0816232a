"""How much arithmetic a training step does, and the rate a run achieved.

``step_flops`` counts the floating-point operations of one training step, forward and backward,
as torch's ``FlopCounterMode`` sees them run: 2 per multiply-accumulate of every matmul and
convolution (which hold nearly all of a CNN's arithmetic; element-wise work is not counted). It is
measured, not the usual estimate of 3x the forward pass: the first layer computes no gradient for
its input, so a CNN's step is a little under 3x. The count runs on a copy of the model, so no
weight, gradient or BatchNorm statistic of the run changes, and restores the random state.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["step_flops", "throughput_line"]


def step_flops(task: Any, model: nn.Module, batch: dict[str, Any]) -> int:
    """FLOPs of ``task.loss(model, batch)`` and its backward pass (the optimizer step aside)."""
    from torch.utils.flop_counter import FlopCounterMode

    twin = copy.deepcopy(model).train()
    with torch.random.fork_rng(devices=[]), FlopCounterMode(display=False) as counter:
        task.loss(twin, batch)["loss"].backward()
    return int(counter.get_total_flops())


def throughput_line(images: int, seconds: float, flops_per_image: float | None) -> str:
    """ "N images in T s of training: R images/s, G GFLOP/s" for the run's summary."""
    rate = images / max(seconds, 1e-9)
    line = f"{images} images in {seconds:.1f} s of training: {rate:.0f} images/s"
    if flops_per_image:
        line += f", {rate * flops_per_image / 1e9:.1f} GFLOP/s (forward and backward)"
    return line

"""The forward pass's precision: autocast on CUDA (``amp``) and bf16 on CPUs that multiply it
natively (``cpu_amp``)."""

from __future__ import annotations

import functools
from contextlib import nullcontext
from typing import Any

import torch

from antlers.config import TrainConfig

__all__ = ["autocast", "autocast_dtype", "cpu_has_bf16"]


def autocast_dtype(device: torch.device, config: TrainConfig) -> torch.dtype | None:
    """The dtype the forward pass runs in under autocast, None for none: on CUDA with
    ``config.amp`` bf16 (fp16 where bf16 is unsupported); on the CPU with ``config.cpu_amp`` bf16
    where the CPU has native bf16."""
    if device.type == "cuda" and config.amp:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and config.cpu_amp and cpu_has_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX). Without those instructions
    oneDNN emulates bf16; even with them some models train slower in bf16 (LR-ASPP,
    docs/experiments/cpu-precision.md), which is why ``cpu_amp`` is opt-in per task."""
    cpu = torch.cpu
    return any(
        getattr(cpu, name, lambda: False)()
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )

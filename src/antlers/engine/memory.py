"""Refuse, before the first step, a batch that cannot fit in memory (docs/reliability.md).

A training step keeps every layer's output until the backward pass has used it, so its memory
grows with the batch: too large a ``--batch-size`` would get the process killed by the kernel
minutes into a run, with nothing saved. ``check_step_memory`` measures instead of guessing: a
copy of the model runs the task's loss on two images of the first batch, forward hooks add up
the bytes of every leaf module's outputs, and the step's need is estimated as

    need = 2 x (output bytes per image) x batch size    (the outputs, and their gradients)
         + 4 x (parameter bytes)                        (weights, gradients, Adam's two moments)

against what the device has free (CUDA: ``torch.cuda.mem_get_info``; CPU: ``MemAvailable`` in
/proc/meminfo). The probe runs only when the batch could plausibly not fit: when batch x input
bytes per image x ``OUTPUT_BOUND`` reaches the free memory (a generous bound: a U-Net of width 64
keeps a few hundred times its input in layer outputs, ResNet-50 at 224 pixels about 170 times);
smaller batches, every ordinary run, cost nothing. The batch is drawn and the copy run without
gradients under a forked RNG, so the real model, its batch norm statistics and the run's random
numbers are untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from antlers.io.system import available_ram

__all__ = ["available_bytes", "check_step_memory", "output_bytes", "step_bytes"]

PROBE_IMAGES = 2  # images of the first batch the probe runs on
OUTPUT_BOUND = 1000  # layer-output bytes per float32 input byte below which no probe is needed


def output_bytes(model: nn.Module, forward: Callable[[nn.Module], Any]) -> int:
    """Bytes of every tensor that ``model``'s leaf modules return while ``forward(model)`` runs."""
    total = 0

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        total += sum(t.numel() * t.element_size() for t in _tensors(output))

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        forward(model)
    finally:
        for handle in handles:
            handle.remove()
    return total


def step_bytes(per_image: float, batch_size: int, model: nn.Module) -> int:
    """The estimate in the module docstring, in bytes."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return int(2 * per_image * batch_size + 4 * params)


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` in bytes, or None where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return available_ram()


def check_step_memory(
    task: Any, model: nn.Module, loader: Any, batch_size: int, device: torch.device
) -> None:
    """ValueError naming ``--batch-size`` when one training step would need more memory than
    ``device`` has free; does nothing when the free memory is unknown or the loader is empty."""
    free = available_bytes(device)
    if free is None:
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():  # the loader may draw too
        first = next(iter(loader.epoch(0)), None)
        if first is None:
            return
        if batch_size * first["image"][0].numel() * 4 * OUTPUT_BOUND < free:
            return
        n = min(PROBE_IMAGES, len(first["image"]))
        probe = {
            k: _to(device, v[:n] if isinstance(v, (Tensor, list)) else v) for k, v in first.items()
        }
        twin = copy.deepcopy(model).train()
        per_image = output_bytes(twin, lambda m: task.loss(m, probe)) / n
    need = step_bytes(per_image, batch_size, model)
    if need > free:
        raise ValueError(
            f"--batch-size {batch_size}: one training step needs about {_size(need)} "
            f"({_size(per_image)} of layer outputs per image), more than the {_size(free)} "
            f"free on {device.type}; choose a smaller --batch-size"
        )


def _size(count: float) -> str:
    """Bytes for a person: '1.5 GiB', '12.0 MiB', '3.2 KiB'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count / 2**10:.1f} KiB"


def _tensors(value: Any) -> list[Tensor]:
    """The tensors in a module's output: a tensor, or tuples, lists and dicts of them."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _to(device: torch.device, value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, list):
        return [_to(device, v) for v in value]
    return value

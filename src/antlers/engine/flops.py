"""How much arithmetic a training step does, and the rate a run achieved.

``counted`` runs a function under torch's ``FlopCounterMode`` and returns what the function
returned with the floating-point operations it did: 2 per multiply-accumulate of every matmul and
convolution (which hold nearly all of a CNN's arithmetic; element-wise work is not counted). The
trainer counts its own first step this way, forward and backward under the run's precision, so
the figure is measured, not the usual estimate of 3x the forward pass (the first layer computes no
gradient for its input, so a CNN's step is a little under 3x), and no extra step is run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["counted", "throughput", "throughput_line"]

T = TypeVar("T")


def counted(fn: Callable[[], T]) -> tuple[T, int]:
    """``fn()``'s result and the FLOPs of the matmuls and convolutions it ran, backward included."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        result = fn()
    return result, int(counter.get_total_flops())


def throughput(
    images: int, seconds: float, flops_per_image: float | None
) -> tuple[float, float | None]:
    """(images/s, GFLOP/s) of a run; GFLOP/s is None when no step was counted."""
    rate = images / max(seconds, 1e-9)
    return rate, rate * flops_per_image / 1e9 if flops_per_image else None


def throughput_line(images: int, seconds: float, flops_per_image: float | None) -> str:
    """ "N images in T s of training: R images/s, G GFLOP/s" for the run's summary."""
    rate, gflops = throughput(images, seconds, flops_per_image)
    line = f"{images} images in {seconds:.1f} s of training: {rate:.0f} images/s"
    if gflops is not None:
        line += f", {gflops:.1f} GFLOP/s (forward and backward)"
    return line

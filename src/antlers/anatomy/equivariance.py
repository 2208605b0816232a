"""Translation equivariance, measured: does shifting the input shift the output the same way?

Zero (up to rounding) for stride-1 convolutions and pointwise layers between them; not zero for a
stride-2 layer or a pooling, whose outputs move by a fraction of a unit.

Which outputs are compared, per dimension, for a shift by ``d`` pixels: output unit ``i`` sees
the input window ``[lo_i, lo_i + r)`` given by its receptive field (side ``r``, jump ``j``,
padding included: a valid convolution's unit ``i`` sees the window starting at ``i``).
``f(shift(x))[i]`` is compared with ``shift(f(x))[i] = f(x)[i - d]``; unit ``i`` is kept when

1. its window lies in ``[max(0, d), min(H, H + d))``, where ``shift(x)`` holds moved content
   (no fill, no padding, nothing pushed out),
2. the window of unit ``i - d`` lies in ``[0, H)`` (no padding in ``f(x)[i - d]``), and
3. ``0 <= i - d < H'``.

With jump 1 (stride-1 layers, any padding, pointwise layers between) both sides then see the
same pixels, so the result is 0 up to rounding. With jump ``j > 1`` (a stride-2 layer, a
pooling) unit ``i - d`` sees pixels ``d x j`` away instead of ``d``: the content moved by
``d / j`` of a unit, not by ``d`` units, and the result is not 0.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from antlers.anatomy.trace import RF, Tracer, eval_mode, input_rf
from antlers.conv.arithmetic import ReceptiveField

__all__ = ["equivariance"]


def equivariance(module: nn.Module, x: Tensor, shift: tuple[int, int] = (0, 1)) -> float:
    """Translation-equivariance error: ``max |f(shift(x)) - shift(f(x))|`` away from the borders.

    ``shift((dy, dx))`` moves the content of the last two dimensions by ``dy`` rows down and
    ``dx`` columns right, filling with zeros: ``shift(t)[..., i, j] = t[..., i - dy, j - dx]``.
    The same pixel shift is applied to the input ``x`` (``(N, C, H, W)`` or ``(C, H, W)``) and to
    the output ``f(x)`` (``(N, C', H', W')``), index for index. Only the output units clear of
    the borders are compared (rules 1-3 of the module docstring).

    The module runs in eval mode under ``torch.no_grad()`` and is given back in its modes.

    Raises:
        ValueError: if ``x`` is not 3-d or 4-d, the shift is not smaller than the image, the
            output is not ``(N, C', H', W')`` with a known receptive field (no flatten, linear
            or adaptive pooling), or no output unit is clear of the borders.
    """
    if x.dim() not in (3, 4):
        raise ValueError(f"x must be (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    batch = x if x.dim() == 4 else x.unsqueeze(0)
    dy, dx = shift
    height, width = batch.shape[-2:]
    if abs(dy) >= height or abs(dx) >= width:
        raise ValueError(f"shift {shift} must be smaller than the image {height}x{width}")
    with torch.no_grad(), eval_mode(module):
        y, rf = _forward_with_rf(module, batch)
        y_of_shifted = module(_shift(batch, (dy, dx)))
    if y.dim() != 4 or rf is None or len(rf) != 2:
        raise ValueError(
            "equivariance needs a module whose output is a feature map (N, C, H, W) with a "
            f"known receptive field (convolutions, pooling, pointwise layers); got output shape "
            f"{tuple(y.shape)}"
        )
    rows = _clear_of_borders(rf[0], height, y.shape[-2], dy)
    cols = _clear_of_borders(rf[1], width, y.shape[-1], dx)
    if not rows or not cols:
        raise ValueError(
            f"no output unit is clear of the borders: input {height}x{width}, receptive field "
            f"{rf[0].size}x{rf[1].size}, shift {shift}; use a larger input"
        )
    diff = y_of_shifted - _shift(y, (dy, dx))
    index = partial(torch.tensor, device=diff.device)
    diff = diff.index_select(-2, index(rows)).index_select(-1, index(cols))
    return float(diff.abs().max())


def _shift(t: Tensor, shift: tuple[int, int]) -> Tensor:
    """``out[..., i, j] = t[..., i - dy, j - dx]`` where that exists, 0 elsewhere."""
    dy, dx = shift
    height, width = t.shape[-2:]
    out = torch.zeros_like(t)
    out[..., max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = t[
        ..., max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)
    ]
    return out


def _clear_of_borders(rf: ReceptiveField, n_in: int, n_out: int, d: int) -> list[int]:
    """Output indices kept by rules 1-3 of the module docstring, along one dimension."""
    keep = []
    for i in range(n_out):
        lo, hi = rf.window(i)
        lo_before, hi_before = rf.window(i - d)
        if (
            max(0, d) <= lo
            and hi <= min(n_in, n_in + d)
            and lo_before >= 0
            and hi_before <= n_in
            and 0 <= i - d < n_out
        ):
            keep.append(i)
    return keep


def _forward_with_rf(module: nn.Module, x: Tensor) -> tuple[Tensor, RF | None]:
    """``module(x)`` and the receptive field of its output (``None`` if not a feature map)."""
    tracer = Tracer(module)
    tracer.remember(x, input_rf(x))
    try:
        y = module(x)
    finally:
        tracer.remove()
    if not isinstance(y, Tensor):
        raise ValueError(f"equivariance needs a module that returns a tensor, got {type(y)}")
    return y, tracer.rf_of(y)

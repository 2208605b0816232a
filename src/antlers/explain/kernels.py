"""First-layer kernels as pictures: the lecture's AlexNet edge and colour detectors.

A kernel ``(Cin, K, K)`` is drawn as a ``K x K`` tile: in colour when ``Cin = 3`` (the RGB
weights as a colour image), else the mean over its input channels in grey. Each tile is
normalised to its own range (min -> 0, max -> 1), as in AlexNet's figure 3, so the shape of every
kernel shows whatever its scale; tiles are laid out in a wide grid with white gaps.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["evolution_rows", "kernel_grid", "kernel_tiles"]


def kernel_tiles(weight: Tensor | np.ndarray) -> Tensor:
    """(Cout, Cin, K, K) -> (Cout, 3 or 1, K, K) in [0, 1], each kernel normalised on its own.

    weight: a tensor or a NumPy array (the NumPy CNN's kernels)."""
    tiles = torch.as_tensor(weight).detach().float().cpu()
    if tiles.dim() != 4:
        raise ValueError(f"kernels must be (Cout, Cin, K, K), got shape {tuple(tiles.shape)}")
    if tiles.shape[1] != 3:
        tiles = tiles.mean(dim=1, keepdim=True)
    low = tiles.amin(dim=(1, 2, 3), keepdim=True)
    high = tiles.amax(dim=(1, 2, 3), keepdim=True)
    return (tiles - low) / (high - low).clamp_min(1e-12)


def kernel_grid(weight: Tensor | np.ndarray, columns: int | None = None, scale: int = 1) -> Tensor:
    """The kernels as one RGB image (3, H, W) in [0, 1]: tiles in a grid, 1-pixel white gaps.

    columns: tiles per row; default about 1.5 x as many columns as rows (96 kernels: 12 x 8).
    scale: each kernel pixel becomes ``scale x scale`` pixels (nearest), for small kernels.
    """
    from torchvision.utils import make_grid

    tiles = kernel_tiles(weight)
    if scale > 1:
        tiles = tiles.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    n = tiles.shape[0]
    columns = columns or max(1, min(n, math.ceil(math.sqrt(1.5 * n))))
    return make_grid(tiles, nrow=columns, padding=1, pad_value=1.0).clamp(0, 1)


def evolution_rows(
    snapshots: dict[int, Tensor], rows: int = 6, kernels: int = 16
) -> dict[int, Tensor]:
    """Up to ``rows`` evenly spaced epochs (first and last included) -> their first kernels."""
    epochs = sorted(snapshots)
    if len(epochs) > rows:
        picks = {round(i * (len(epochs) - 1) / (rows - 1)) for i in range(rows)}
        epochs = [epochs[i] for i in sorted(picks)]
    return {e: snapshots[e][:kernels] for e in epochs}

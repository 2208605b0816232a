"""The explain module's pictures: kernel grids and their evolution, feature maps, top-k rows,
Grad-CAM overlays and the moose detector's heat maps. Matplotlib's Figure API (no pyplot);
save with :func:`antlers.viz.figures.save_figure` (atomic PNG). Images are tensors
(C, H, W) in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from antlers.explain.feature_maps import strongest_channels
from antlers.explain.kernels import evolution_rows, kernel_grid
from antlers.explain.topk import TopK, crop_window
from antlers.viz.figures import new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "feature_maps_figure",
    "grad_cam_figure",
    "heatmaps_figure",
    "kernel_evolution_figure",
    "kernels_figure",
    "top_k_figure",
]


def _hwc(image: Tensor) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) or (H, W) floats for imshow."""
    array = image.detach().float().cpu().clamp(0, 1).numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)[..., :3]


def _show(ax: Axes, image: Tensor, title: str = "") -> None:
    array = _hwc(image)
    ax.imshow(
        array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
    )
    if title:
        ax.set_title(title, fontsize=8)
    ax.axis("off")


def kernels_figure(weight: Tensor | np.ndarray, title: str) -> Figure:
    """Kernels (Cout, Cin, K, K) (a tensor or NumPy) as a grid of tiles, each normalised on its
    own (:func:`antlers.explain.kernels.kernel_grid`)."""
    grid = kernel_grid(weight, scale=max(1, 24 // weight.shape[-1]))
    aspect = grid.shape[1] / grid.shape[2]
    width = min(8.0, max(3.0, grid.shape[2] / 40))  # a few small kernels: a small picture
    fig = new_figure(width, width * aspect + 0.5)
    _show(fig.subplots(), grid, title)
    return fig


def kernel_evolution_figure(snapshots: dict[int, Tensor], kernels: int = 16) -> Figure:
    """The first ``kernels`` kernels at up to 6 epochs, one row per epoch (0 = initial)."""
    rows = evolution_rows(snapshots, kernels=kernels)
    fig = new_figure(9, 0.75 * len(rows) + 0.6)
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (epoch, weight) in zip(axes, rows.items(), strict=True):
        grid = kernel_grid(weight, columns=len(weight), scale=max(1, 24 // weight.shape[-1]))
        ax.imshow(_hwc(grid), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(f"epoch {epoch}", rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("first-layer kernels during training (each normalised on its own)", fontsize=10)
    return fig


def _coloured(maps: Tensor, cmap: str = "magma") -> Tensor:
    """(N, h, w) -> (N, 3, h, w) in [0, 1], each map normalised to its own range, coloured."""
    from matplotlib import colormaps

    low = maps.flatten(1).amin(1)[:, None, None]
    high = maps.flatten(1).amax(1)[:, None, None]
    unit = ((maps - low) / (high - low).clamp_min(1e-12)).numpy()
    rgb = colormaps[cmap](unit)[..., :3]  # (N, h, w, 3)
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float()


def _resize(tiles: Tensor, size: int) -> Tensor:
    """(N, C, h, w) -> (N, 3, size, size), nearest neighbour (pixels stay visible)."""
    tiles = tiles.expand(-1, 3, -1, -1) if tiles.shape[1] == 1 else tiles
    return F.interpolate(tiles.float(), size=(size, size), mode="nearest")


def _grid_axes(ax: Axes, tiles: Tensor, columns: int) -> None:
    """Show (N, 3, size, size) tiles as one image, ``columns`` per row, 2-pixel white gaps."""
    from torchvision.utils import make_grid

    ax.imshow(_hwc(make_grid(tiles, nrow=columns, padding=2, pad_value=1.0)))
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def feature_maps_figure(
    image: Tensor, maps: dict[str, Tensor], channels: int = 8, layers: int = 8
) -> Figure:
    """The image, then per layer (row, at most ``layers``) its ``channels`` most active maps,
    each normalised to its own range."""
    shown = {n: m for n, m in maps.items() if m.shape[1] * m.shape[2] > 1}
    if len(shown) > layers:  # evenly spaced, first and last kept (ResNets have 20+ convs)
        names = list(shown)
        picks = sorted({round(i * (len(names) - 1) / (layers - 1)) for i in range(layers)})
        shown = {names[i]: shown[names[i]] for i in picks}
    fig = new_figure(1.0 * channels + 1.6, 1.05 * (len(shown) + 1))
    axes = fig.subplots(len(shown) + 1, 1, squeeze=False)[:, 0]
    _grid_axes(axes[0], _resize(image[None].clamp(0, 1), 48), 1)
    axes[0].set_ylabel(
        f"input\n{image.shape[1]}x{image.shape[2]}", rotation=0, ha="right", va="center", fontsize=8
    )
    for ax, (name, m) in zip(axes[1:], shown.items(), strict=True):
        picked = strongest_channels(m, channels)
        _grid_axes(ax, _resize(_coloured(m[picked]), 48), channels)
        ax.set_ylabel(
            f"{name}\n{m.shape[0]}x{m.shape[1]}x{m.shape[2]}",
            rotation=0,
            ha="right",
            va="center",
            fontsize=8,
        )
    fig.suptitle("feature maps: the most active channels of each layer", fontsize=10)
    return fig


def top_k_figure(
    result: TopK, images: Tensor, channels: Sequence[int] | None = None, title: str = ""
) -> Figure:
    """One row per channel: its top-k receptive-field patches, best first (the lecture's rows).

    images: the dataset the search ran over, (N, C, H, W) uint8 or float in [0, 1].
    channels: default the 8 channels with the largest top-1 value.
    """
    if channels is None:
        channels = result.values[:, 0].argsort(descending=True)[:8].tolist()
    k = result.values.shape[1]
    patches = []
    for c in channels:
        for j in range(k):
            image = images[int(result.indices[c, j])]
            image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
            patches.append(crop_window(image, result.windows[c, j]))
    size = max(48, max(patches[0].shape[1:]))
    fig = new_figure(0.9 * k + 0.9, 0.9 * len(channels) + 0.6)
    ax = fig.subplots()
    _grid_axes(ax, _resize(torch.stack(patches), size), k)
    ax.set_yticks([2 + (size + 2) * r + size / 2 for r in range(len(channels))])
    ax.set_yticklabels([f"ch {c}" for c in channels], fontsize=8)
    ax.tick_params(length=0)
    rf = result.rf[0].size, result.rf[1].size
    fig.suptitle(
        title or f"{result.layer}: top {k} patches per channel (receptive field {rf[0]}x{rf[1]})",
        fontsize=10,
    )
    return fig


def _overlay(
    ax: Axes, image: Tensor, heat: np.ndarray, extent: tuple | None = None, vmax: float = 1.0
) -> None:
    array = _hwc(image)
    h, w = array.shape[:2]
    ax.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=1, extent=(0, w, h, 0))
    ax.imshow(
        heat,
        cmap="jet",
        alpha=0.45,
        vmin=0,
        vmax=vmax,
        extent=extent or (0, w, h, 0),
        interpolation="bilinear",
    )
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")


def grad_cam_figure(images: Tensor, cams: Tensor, titles: Sequence[str]) -> Figure:
    """Each image above its Grad-CAM overlay (jet colours, red = 1), in one composed picture."""
    n, size = len(images), 64
    pictures = _resize(images.clamp(0, 1), size)
    heat = _resize(_coloured(cams.float(), "jet"), size)
    blended = 0.55 * pictures + 0.45 * heat
    fig = new_figure(1.1 * n + 0.4, 2.6)
    ax = fig.subplots()
    _grid_axes(ax, torch.cat([pictures, blended]), n)
    ax.xaxis.tick_top()
    ax.set_xticks([2 + (size + 2) * j + size / 2 for j in range(n)])
    ax.set_xticklabels(titles, fontsize=7, rotation=20, ha="left")
    ax.tick_params(length=0)
    return fig


def heatmaps_figure(
    image: Tensor,
    probabilities: Tensor,
    classes: Sequence[str],
    window: tuple[int, int],
    stride: tuple[int, int],
) -> Figure:
    """The image, then one panel per class: P(class) of every window, drawn at window centres.

    One colour scale for all classes, from 0 to the highest probability anywhere (red).
    """
    k, rows, cols = probabilities.shape
    top = (window[0] - stride[0]) / 2
    left = (window[1] - stride[1]) / 2
    extent = (left, left + cols * stride[1], top + rows * stride[0], top)
    columns = min(k + 1, 4)
    lines = -(-(k + 1) // columns)
    aspect = image.shape[1] / image.shape[2]
    fig = new_figure(3.0 * columns, 3.0 * aspect * lines + 0.4)
    axes = fig.subplots(lines, columns, squeeze=False).flat
    for ax in axes:
        ax.axis("off")
    _show(
        axes[0],
        image,
        f"image {image.shape[1]}x{image.shape[2]}, window {window[0]}x{window[1]} / {stride[0]}",
    )
    for ax, name, heat in zip(axes[1:], classes, probabilities, strict=False):
        _overlay(ax, image, heat.numpy(), extent, vmax=float(probabilities.max()))
        ax.set_title(f"P({name}) max {float(heat.max()):.2f}", fontsize=9)
    return fig

"""Figures: small matrices with their numbers, kernels beside the images they filter, curves,
confusion matrices and captioned image grids (kernel grids: :mod:`antlers.explain.figures`).

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, no global state, no
display needed) and saved atomically as PNG by :func:`save_figure`. Arrays are NumPy; images are
(H, W) grayscale or (H, W, 3) RGB floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from antlers.io.files import atomic_write_with

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "confusion_figure",
    "curve_figure",
    "filtered_grid_figure",
    "image_grid_figure",
    "matrices_figure",
    "new_figure",
    "save_figure",
    "side_by_side_figure",
]


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches with a constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Render ``fig`` to PNG and write it atomically to ``path`` (pixel images, tensors or PIL:
    :func:`antlers.viz.images.save_png`)."""
    return atomic_write_with(path, lambda f: fig.savefig(f, format="png", dpi=dpi))


def _show_matrix(ax: Axes, a: np.ndarray, title: str) -> None:
    """Draw a small 2-D array as a grey image with each number written in its cell."""
    limit = float(np.abs(a).max()) or 1.0
    ax.imshow(a, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (r, c), v in np.ndenumerate(a):
        text = str(int(v)) if float(v).is_integer() else f"{v:.2f}"
        colour = "white" if abs(v) > 0.6 * limit else "black"
        ax.text(c, r, text, ha="center", va="center", fontsize=9, color=colour)
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(a.shape[1]))
    ax.set_yticks(range(a.shape[0]))


def matrices_figure(panels: Sequence[tuple[str, np.ndarray]]) -> Figure:
    """Small matrices side by side with their numbers: e.g. input, kernel, output."""
    fig = new_figure(3.2 * len(panels), 3.0)
    for ax, (title, a) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        _show_matrix(ax, np.asarray(a, dtype=float), title)
    return fig


def _show_image(ax: Axes, image: np.ndarray, title: str, signed: bool = False) -> None:
    if signed and image.min() < 0:
        # Scale to the 99.5th percentile so a few strong edges don't wash out the rest.
        limit = float(np.percentile(np.abs(image), 99.5)) or 1.0
        ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
    elif signed:  # a non-negative response (a blur): show it as an image
        ax.imshow(image, cmap="gray", vmin=0, vmax=float(image.max()) or 1.0)
    elif image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(image, 0, 1))
    ax.set_title(title, fontsize=10)
    ax.axis("off")


def side_by_side_figure(
    image: np.ndarray, kernel: np.ndarray, output: np.ndarray, kernel_name: str
) -> Figure:
    """Input image, the kernel (numbers shown), and the filtered output (signed colour map)."""
    fig = new_figure(12, 4)
    axes = fig.subplots(1, 3, width_ratios=[4, 1.5, 4])
    _show_image(axes[0], image, f"input {image.shape[0]}x{image.shape[1]}")
    _show_matrix(axes[1], kernel, f"kernel: {kernel_name}")
    _show_image(axes[2], output, f"output {output.shape[0]}x{output.shape[1]}", signed=True)
    return fig


def filtered_grid_figure(image: np.ndarray, outputs: dict[str, np.ndarray]) -> Figure:
    """A photo and its responses to several kernels, in one row."""
    n = len(outputs) + 1
    fig = new_figure(3.2 * n, 2.8)
    axes = fig.subplots(1, n)
    _show_image(axes[0], image, "photo")
    for ax, (name, out) in zip(axes[1:], outputs.items(), strict=True):
        _show_image(ax, out, name, signed=True)
    return fig


def curve_figure(
    series: dict[str, Sequence[float]], xlabel: str, ylabel: str, title: str = ""
) -> Figure:
    """Line plot of one or more named series against their index."""
    fig = new_figure(6, 3.5)
    ax = fig.subplots()
    for name, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return fig


def confusion_figure(matrix: np.ndarray, classes: Sequence[str]) -> Figure:
    """Row-normalised confusion matrix with the counts written in each cell."""
    k = len(classes)
    fig = new_figure(1.0 + 0.6 * k, 0.8 + 0.55 * k)
    ax = fig.subplots()
    rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(matrix):
        if v:
            ax.text(
                c,
                r,
                str(v),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[r, c] > 0.5 else "black",
            )
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return fig


def image_grid_figure(images: Any, captions: Sequence[str], columns: int = 8) -> Figure:
    """uint8 images (B, C, H, W) in a grid, each with a caption."""
    n = len(images)
    columns = min(columns, n)
    rows = -(-n // columns)
    fig = new_figure(1.6 * columns, 1.8 * rows)
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            image = images[i].permute(1, 2, 0).numpy()
            ax.imshow(image[..., 0] if image.shape[2] == 1 else image, cmap="gray")
            ax.set_title(captions[i], fontsize=7)
    return fig

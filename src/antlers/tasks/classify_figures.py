"""Figures and the HTML report page of a classification run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

__all__ = ["confusion_figure", "image_grid_figure", "report_html"]


def confusion_figure(matrix: np.ndarray, classes: Sequence[str]) -> Figure:
    """Row-normalised confusion matrix with the counts written in each cell."""
    k = len(classes)
    fig = Figure(figsize=(1.0 + 0.6 * k, 0.8 + 0.55 * k), layout="constrained")
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


def image_grid_figure(images: Tensor, captions: Sequence[str], columns: int = 8) -> Figure:
    """uint8 images (B, C, H, W) in a grid, each with a caption."""
    n = len(images)
    columns = min(columns, n)
    rows = -(-n // columns)
    fig = Figure(figsize=(1.6 * columns, 1.8 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            image = images[i].permute(1, 2, 0).numpy()
            ax.imshow(image[..., 0] if image.shape[2] == 1 else image, cmap="gray")
            ax.set_title(captions[i], fontsize=7)
    return fig


def report_html(run_dir: Path, report: dict[str, Any]) -> Path:
    """report.html linking the run's files, with the per-class accuracy table."""
    from antlers.viz import write_report_html

    per_class = {c: f"{a:.1%}" for c, a in report["per_class_accuracy"].items()}
    summary = f"test accuracy {report['accuracy']:.2%}"
    figures = ("curves", "confusion", "misclassified")
    return write_report_html(run_dir, summary, "accuracy", per_class, figures)

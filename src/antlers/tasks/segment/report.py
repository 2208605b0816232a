"""Segmentation report: overlays on held-out images, per-class IoU bars, the confusion matrix.

Files written into the run folder: ``overlays.png`` (image, truth, prediction for held-out
images), ``iou.png`` (per-class IoU, pooled over the test set), ``confusion.png`` (pixel counts,
rows = true class, row-normalised colours) and ``report.html`` linking them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

__all__ = ["iou_figure", "overlays_figure", "test_confusion", "write_report"]

REPORT_FIGURES = ("curves", "overlays", "iou", "confusion")  # shown in report.html, in order


@torch.no_grad()
def test_confusion(task: Any, model: nn.Module, images: Tensor, masks: Tensor, k: int) -> tuple:
    """(confusion matrix (K, K), predicted ids (N, H, W)) for uint8 images and masks (255 =
    ignore)."""
    from antlers.data.segset import IGNORE_INDEX
    from antlers.engine.metrics import confusion_matrix

    model.eval()
    device = next(model.parameters()).device
    predicted = torch.cat(
        [
            task.logits(model, images[i : i + 100].to(device).float().div(255)).argmax(1).cpu()
            for i in range(0, len(images), 100)
        ]
    )
    return confusion_matrix(predicted, masks.long(), k, IGNORE_INDEX), predicted


def overlays_figure(
    images: Tensor, truth: Tensor, predicted: Tensor, classes: Sequence[str], titles: bool = True
) -> Figure:
    """Columns of held-out images: the image, the true classes over it, the predicted ones."""
    from antlers.tasks.segment.predict import overlay, palette

    n = len(images)
    fig = Figure(figsize=(1.6 * n + 1.6, 5.2), layout="constrained")
    axes = fig.subplots(3, n, squeeze=False)
    for i in range(n):
        panels = (
            images[i],
            overlay(images[i], truth[i].long(), classes, alpha=0.7),
            overlay(images[i], predicted[i], classes, alpha=0.7),
        )
        for row, (ax, panel) in enumerate(zip(axes[:, i], panels, strict=True)):
            picture = panel.expand(3, -1, -1) if panel.shape[0] == 1 else panel
            ax.imshow(picture.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0 and titles:
                ax.set_ylabel(("image", "truth", "predicted")[row])
    from matplotlib.patches import Patch

    colours = palette(classes)
    handles = [
        Patch(color=np.array(c) / 255, label=name) for c, name in zip(colours, classes, strict=True)
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    return fig


def iou_figure(iou: Sequence[float], classes: Sequence[str], miou: float) -> Figure:
    """Horizontal bars of each class's IoU, the mIoU as a dashed line."""
    from antlers.tasks.segment.predict import palette

    fig = Figure(figsize=(5.5, 0.4 * len(classes) + 1.0), layout="constrained")
    ax = fig.subplots()
    values = np.nan_to_num(np.asarray(iou, dtype=float))
    colours = [np.array(c) / 255 for c in palette(classes)]
    ax.barh(range(len(classes)), values, color=colours, edgecolor="black", linewidth=0.5)
    for y, v in enumerate(values):
        ax.text(min(v, 0.9) + 0.01, y, f"{v:.3f}", va="center", fontsize=8)
    ax.axvline(miou, color="black", linestyle="--", linewidth=1, label=f"mIoU {miou:.3f}")
    ax.set_yticks(range(len(classes)), classes)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("IoU on the test set (pooled over all its pixels)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def write_report(task: Any, run_dir: Path, model: nn.Module, data: Any) -> dict[str, Any]:
    """overlays.png, iou.png, confusion.png and report.html; returns the test metrics."""
    from antlers.tasks.segment.metrics import metrics_from_confusion
    from antlers.viz.figures import confusion_figure, save_figure
    from antlers.viz.html import write_report_html

    classes = data.model_config.classes
    test = data.test_set
    images, masks = test.arrays()
    matrix, predicted = test_confusion(task, model, images, masks, len(classes))
    scores = metrics_from_confusion(matrix)
    shown = slice(0, min(8, len(test)))
    save_figure(
        overlays_figure(images[shown], masks[shown], predicted[shown], classes),
        run_dir / "overlays.png",
    )
    save_figure(iou_figure(scores["iou"], classes, scores["miou"]), run_dir / "iou.png")
    save_figure(confusion_figure(matrix.numpy(), classes), run_dir / "confusion.png")
    report = {
        "miou": scores["miou"],
        "pixel_accuracy": scores["pixel_accuracy"],
        "iou": dict(zip(classes, scores["iou"], strict=True)),
    }
    summary = (
        f"test mIoU {report['miou']:.3f} (pooled over the test set's pixels) · pixel accuracy "
        f"{report['pixel_accuracy']:.2%}"
    )
    cells = {c: f"{v:.3f}" for c, v in report["iou"].items()}
    write_report_html(run_dir, summary, "IoU", cells, REPORT_FIGURES)
    return report

"""Classification report: confusion matrix, per-class accuracy, misclassified test images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["confusion_matrix", "write_report_figures"]


def confusion_matrix(predicted: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """(K, K) counts: row = true class, column = predicted class."""
    index = target * num_classes + predicted
    return torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)


@torch.no_grad()
def _predict_all(task: Any, model: nn.Module, images: Tensor) -> Tensor:
    device = next(model.parameters()).device
    chunks = [
        task.predict(model, images[i : i + 500].to(device).float().div(255)).cpu()
        for i in range(0, len(images), 500)
    ]
    return torch.cat(chunks)


def write_report_figures(task: Any, run_dir: Path, model: nn.Module, data: Any) -> dict[str, Any]:
    """confusion.png, misclassified.png and per-class accuracy (returned and in report.html)."""
    from antlers.viz.figures import confusion_figure, image_grid_figure, save_figure

    classes = data.meta["classes"]
    probs = _predict_all(task, model, data.val_images)
    predicted, target = probs.argmax(1), data.val_labels
    matrix = confusion_matrix(predicted, target, len(classes))
    per_class = (matrix.diag() / matrix.sum(1).clamp_min(1)).tolist()
    save_figure(confusion_figure(matrix.numpy(), classes), run_dir / "confusion.png")
    wrong = (predicted != target).nonzero().flatten()[:32]
    captions = [
        f"{classes[target[i]]} → {classes[predicted[i]]} {probs[i].max():.0%}" for i in wrong
    ]
    if len(wrong):
        save_figure(
            image_grid_figure(data.val_images[wrong], captions), run_dir / "misclassified.png"
        )
    report = {
        "per_class_accuracy": dict(zip(classes, per_class, strict=True)),
        "accuracy": float((predicted == target).float().mean()),
    }
    report_html(run_dir, report)
    return report


def report_html(run_dir: Path, report: dict[str, Any]) -> Path:
    """report.html linking the run's files, with the per-class accuracy table."""
    from antlers.viz.html import write_report_html

    per_class = {c: f"{a:.1%}" for c, a in report["per_class_accuracy"].items()}
    summary = f"test accuracy {report['accuracy']:.2%}"
    figures = ("curves", "confusion", "misclassified")
    return write_report_html(run_dir, summary, "accuracy", per_class, figures)

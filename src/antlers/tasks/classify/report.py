"""Classification report: confusion matrix, per-class accuracy, misclassified test images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from antlers.engine.metrics import confusion_matrix

__all__ = ["write_report"]

REPORT_FIGURES = ("curves", "confusion", "misclassified")  # shown in report.html, in order


@torch.no_grad()
def _predict_all(task: Any, model: nn.Module, images: Any) -> Tensor:
    """Class probabilities (N, K) of the ImageSet ``images``, 500 images at a time."""
    device = next(model.parameters()).device
    chunks = [
        task.probabilities(model, images.batch(index).to(device).float().div(255)).cpu()
        for index in torch.arange(len(images)).split(500)
    ]
    return torch.cat(chunks)


def write_report(task: Any, run_dir: Path, model: nn.Module, data: Any) -> dict[str, Any]:
    """confusion.png, misclassified.png and per-class accuracy (returned and in report.html)."""
    from antlers.viz.figures import confusion_figure, image_grid_figure, save_figure
    from antlers.viz.html import write_report_html

    classes, images = data.model_config.classes, data.test_set
    probs = _predict_all(task, model, images)
    predicted, target = probs.argmax(1), data.test_set.labels
    matrix = confusion_matrix(predicted, target, len(classes))
    per_class = (matrix.diag() / matrix.sum(1).clamp_min(1)).tolist()
    save_figure(confusion_figure(matrix.numpy(), classes), run_dir / "confusion.png")
    wrong = (predicted != target).nonzero().flatten()[:32]
    captions = [
        f"{classes[target[i]]} → {classes[predicted[i]]} {probs[i].max():.0%}" for i in wrong
    ]
    if len(wrong):
        save_figure(image_grid_figure(images.batch(wrong), captions), run_dir / "misclassified.png")
    report = {
        "per_class_accuracy": dict(zip(classes, per_class, strict=True)),
        "accuracy": float((predicted == target).float().mean()),
    }
    summary = f"test accuracy {report['accuracy']:.2%}"
    cells = {c: f"{a:.1%}" for c, a in report["per_class_accuracy"].items()}
    write_report_html(run_dir, summary, "accuracy", cells, REPORT_FIGURES)
    return report

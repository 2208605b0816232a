"""The end-of-training report of a detection run: per-class AP, PR curves at IoU 0.5 and drawn
test detections, linked from report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from antlers.tasks.detect.figures import (
    detection_captions,
    detections_grid,
    draw_boxes,
    pr_curve_figure,
)
from antlers.tasks.detect.predict import SHOW_THRESHOLD
from antlers.viz.images import save_png

__all__ = ["write_report"]

REPORT_FIGURES = ("curves", "pr_curve", "detections")  # shown in report.html, in order


@torch.no_grad()
def write_report(task: Any, run_dir: Path, model: nn.Module, data: Any) -> dict[str, Any]:
    """pr_curve.png, detections.png (test images) and report.html with per-class AP."""
    from antlers.tasks.detect.loader import DetectionLoader
    from antlers.tasks.detect.metrics import coco_evaluate, coco_results
    from antlers.viz.figures import save_figure
    from antlers.viz.html import write_report_html

    classes = data.model_config.classes
    loader = DetectionLoader(data.test_set, 32)
    truth, predictions = task.collect(model, loader)
    scores = coco_evaluate(truth, coco_results(predictions))
    save_figure(
        pr_curve_figure(scores.recall, scores.precision50, classes), run_dir / "pr_curve.png"
    )
    pictures = []
    for i in range(min(8, len(predictions))):
        keep = predictions[i]["scores"] >= SHOW_THRESHOLD
        shown = {k: v[keep] for k, v in predictions[i].items()}
        captions, colours = detection_captions(shown, classes)
        pictures.append(draw_boxes(data.test_set[i]["image"], shown["boxes"], captions, colours))
    if pictures:
        save_png(detections_grid(pictures), run_dir / "detections.png")
    report = {**scores.metrics(), "per_class_ap": dict(zip(classes, scores.per_class, strict=True))}
    summary = f"test AP {report['ap']:.3f} · AP50 {report['ap50']:.3f} · AP75 {report['ap75']:.3f}"
    cells = {c: f"{a:.3f}" for c, a in report["per_class_ap"].items()}
    write_report_html(run_dir, summary, "AP", cells, REPORT_FIGURES)
    return report

"""Segmentation metrics from one confusion matrix, pooled over the whole dataset.

Every pixel whose target is not ``ignore_index`` (255) adds one count to ``matrix[target,
predicted]`` (:func:`antlers.engine.metrics.confusion_matrix`); the metrics come from the summed
matrix, so they are **pooled over the dataset** (each pixel counts once, whatever image it is
in), not averaged per image:

* pixel accuracy = trace / total;
* IoU of class k = TP / (TP + FP + FN) = M[k, k] / (row k + column k - M[k, k]);
* mIoU = the mean of the IoUs of the classes that occur in the targets or the predictions
  (a class that is in neither has no IoU: NaN, left out of the mean).

This is what torchmetrics' ``MulticlassJaccardIndex`` computes when it is updated batch by batch
(the tests check it), and what the Pascal VOC and Cityscapes benchmarks report.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["metrics_from_confusion"]


def metrics_from_confusion(matrix: Tensor) -> dict[str, float | list[float]]:
    """{"pixel_accuracy", "miou", "iou": per-class list (NaN where a class never occurs)}."""
    m = matrix.double()
    tp = m.diag()
    union = m.sum(0) + m.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.nan)
    present = union > 0
    return {
        "pixel_accuracy": float(tp.sum() / m.sum().clamp_min(1)),
        "miou": float(iou[present].mean()) if present.any() else float("nan"),
        "iou": iou.tolist(),
    }

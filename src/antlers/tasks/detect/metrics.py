"""COCO detection metrics through pycocotools: AP@[.5:.95], AP50, AP75, per-class AP, PR curves.

Our predictions and ground truth are turned into pycocotools' own structures (a COCO "dataset"
dict and a results list; boxes as [x, y, width, height] pixels, category ids 1..K for labels
0..K-1) and ``COCOeval`` does the rest, so the numbers are the COCO challenge's numbers.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["CocoScores", "coco_evaluate", "coco_ground_truth", "coco_results"]


@dataclass
class CocoScores:
    """COCOeval's summary: AP over IoU .5:.95, at .5 and .75, per class, and PR curves at .5."""

    ap: float
    ap50: float
    ap75: float
    per_class: list[float]  # AP@[.5:.95] of each class (nan: no ground truth of that class)
    recall: np.ndarray  # (101,) recall thresholds
    precision50: np.ndarray  # (101, K) precision at IoU 0.5 (-1 where undefined)

    def metrics(self) -> dict[str, float]:
        return {"ap": self.ap, "ap50": self.ap50, "ap75": self.ap75}


def _xywh(boxes: Tensor) -> list[list[float]]:
    """xyxy (n, 4) -> COCO's [x0, y0, width, height] per box."""
    b = boxes.detach().cpu().double().clone()
    b[:, 2:] -= b[:, :2]
    return b.tolist()


def coco_ground_truth(
    boxes: list[Tensor], labels: list[Tensor], size: tuple[int, int], num_classes: int
) -> dict[str, Any]:
    """A COCO dataset dict: image i has id i + 1; label k has category id k + 1."""
    images = [{"id": i + 1, "height": size[0], "width": size[1]} for i in range(len(boxes))]
    annotations = []
    for i, (b, lab) in enumerate(zip(boxes, labels, strict=True)):
        for xywh, k in zip(_xywh(b), lab.tolist(), strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(k) + 1,
                    "bbox": xywh,
                    "area": xywh[2] * xywh[3],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": k + 1, "name": str(k)} for k in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_results(predictions: list[dict[str, Tensor]]) -> list[dict[str, Any]]:
    """COCO results list (image i -> id i + 1) from per-image {"boxes", "labels", "scores"}."""
    results = []
    for i, p in enumerate(predictions):
        for xywh, k, s in zip(
            _xywh(p["boxes"]), p["labels"].tolist(), p["scores"].tolist(), strict=True
        ):
            results.append(
                {"image_id": i + 1, "category_id": int(k) + 1, "bbox": xywh, "score": float(s)}
            )
    return results


def coco_evaluate(truth: dict[str, Any], results: list[dict[str, Any]]) -> CocoScores:
    """Run COCOeval (bbox) on a ground-truth dict and a results list; quiet."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    k = len(truth["categories"])
    if not results or not truth["annotations"]:
        empty = np.full((101, k), -1.0)
        return CocoScores(0.0, 0.0, 0.0, [float("nan")] * k, np.linspace(0, 1, 101), empty)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = truth
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"]  # (T IoUs, R recalls, K, A areas, M maxDets)
    per_class = []
    for c in range(k):
        p = precision[:, :, c, 0, -1]
        per_class.append(float(p[p > -1].mean()) if (p > -1).any() else float("nan"))
    stats = evaluation.stats
    return CocoScores(
        ap=max(float(stats[0]), 0.0),
        ap50=max(float(stats[1]), 0.0),
        ap75=max(float(stats[2]), 0.0),
        per_class=per_class,
        recall=np.asarray(evaluation.params.recThrs),
        precision50=precision[0, :, :, 0, -1],
    )

"""The sliding-window baseline: the lecture's "moose detector" used as a detector.

A classifier slid over every window of an image is a convolution; made fully convolutional
(``antlers.explain.fully_convolutional``) it gives, in one pass, class logits (B, K, H', W') for
the windows whose top-left corners are at (i * stride_h, j * stride_w). Turning that heat map
into detections:

1. probabilities: softmax over the K classes at every position (``logits=True``);
2. every (position, class) with probability above ``threshold`` is a box, the window itself:
   [j s_w, i s_h, j s_w + w_w, i s_h + w_h] (xyxy pixels), scored by the probability;
3. per-class NMS (torchvision.ops.batched_nms) removes the overlapping windows around an object.

``background`` names a class that means "no object" (it never becomes a box). The boxes are
evaluated with the same COCO metric as the two-stage detector (``evaluate_sliding``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms

from antlers.tasks.detect.metrics import CocoScores, coco_evaluate, coco_ground_truth, coco_results

__all__ = ["evaluate_sliding", "heatmap_boxes", "sliding_window_detect"]


def heatmap_boxes(
    heatmaps: Tensor,
    window: tuple[int, int],
    stride: tuple[int, int],
    threshold: float = 0.5,
    nms: float = 0.3,
    logits: bool = True,
    background: int | None = None,
    max_detections: int = 100,
) -> list[dict[str, Tensor]]:
    """Per image {"boxes" (N, 4), "labels" (N,), "scores" (N,)} from heat maps (B, K, H', W')."""
    if heatmaps.ndim != 4:
        raise ValueError(f"heat maps must be (B, K, H', W'), got shape {tuple(heatmaps.shape)}")
    probabilities = heatmaps.float().softmax(dim=1) if logits else heatmaps.float()
    if background is not None:
        probabilities = probabilities.clone()
        probabilities[:, background] = 0
    (wh, ww), (sh, sw) = window, stride
    results = []
    for p in probabilities:
        k, i, j = torch.nonzero(p > threshold, as_tuple=True)
        boxes = torch.stack([j * sw, i * sh, j * sw + ww, i * sh + wh], dim=1).float()
        scores = p[k, i, j]
        keep = batched_nms(boxes, scores, k, nms)[:max_detections]
        results.append({"boxes": boxes[keep], "labels": k[keep], "scores": scores[keep]})
    return results


@torch.no_grad()
def sliding_window_detect(
    model: nn.Module, images: Tensor, **options: Any
) -> list[dict[str, Tensor]]:
    """Detections of a fully convolutional classifier (attributes ``window`` and ``stride``)
    on images (B, C, H, W); ``options`` go to ``heatmap_boxes``."""
    model.eval()
    return heatmap_boxes(model(images), tuple(model.window), tuple(model.stride), **options)


@torch.no_grad()
def evaluate_sliding(model: nn.Module, loader: Any, num_classes: int, **options: Any) -> CocoScores:
    """COCO AP of the sliding-window detector over a detection loader (same metric as the
    two-stage detector's); the classifier's class k must be the data's label k."""
    boxes, labels, predictions = [], [], []
    for batch in loader.epoch(0):
        predictions += sliding_window_detect(model, batch["image"], **options)
        boxes += batch["boxes"]
        labels += batch["labels"]
    size = tuple(batch["image"].shape[-2:])
    return coco_evaluate(
        coco_ground_truth(boxes, labels, size, num_classes), coco_results(predictions)
    )

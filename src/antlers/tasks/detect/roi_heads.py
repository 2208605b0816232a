"""Stage 2, "classify each box, possibly as nothing": the RoI head (Girshick 2015, Fast R-CNN).

Each proposal's region of the feature map (reduced to 64 channels by a 1x1 conv) is cropped to a
fixed 7x7 grid (torchvision.ops.roi_align, He et al. 2017, Mask R-CNN §3), flattened and passed
through two fully connected layers; then one linear layer scores K + 1 classes (index 0 is
"nothing", the background) and another gives the deltas that refine the proposal's box (one
refinement per proposal, class-agnostic).

Training (Fast R-CNN §2.3): the ground-truth boxes join the proposals; each proposal with IoU >= 0.5
to an object takes its class, the rest are "nothing"; a sample with at most 25% objects is scored
with cross-entropy, and the objects' deltas with smooth L1 (eq. 3).
Inference: per class, boxes scored above ``score_threshold`` go through per-class NMS
(torchvision.ops.batched_nms) and the best ``max_detections`` are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, clip_boxes_to_image, remove_small_boxes, roi_align

from antlers.tasks.detect.boxes import decode, encode, match, sample_fg_bg

__all__ = ["Classified", "RoIHead"]

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # Fast R-CNN's target scaling (torchvision's defaults)


@dataclass
class Classified:
    """One image's proposals after the classifier: refined boxes, best class and its score."""

    boxes: Tensor  # (R, 4) refined boxes
    probabilities: Tensor  # (R, K + 1), column 0 = "nothing"
    labels: Tensor  # (R,) argmax over K + 1 minus 1: -1 means "nothing"
    scores: Tensor  # (R,) the argmax probability


class RoIHead(nn.Module):
    """roi_align crops -> two FC layers -> K + 1 class scores and box deltas."""

    positive_fraction = 0.25  # at most this share of a training sample are objects

    def __init__(
        self,
        channels: int,
        num_classes: int,
        stride: int,
        roi_size: int = 7,
        hidden: int = 256,
        reduced: int = 64,
        batch_per_image: int = 32,
        score_threshold: float = 0.001,
        nms: float = 0.5,
        max_detections: int = 50,
    ):
        super().__init__()
        self.stride, self.roi_size, self.batch = stride, roi_size, batch_per_image
        self.score_threshold, self.nms, self.max_detections = score_threshold, nms, max_detections
        self.reduce = nn.Sequential(nn.Conv2d(channels, reduced, 1), nn.ReLU(inplace=True))
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(reduced * roi_size * roi_size, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(hidden, num_classes + 1)
        self.deltas = nn.Linear(hidden, 4)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.normal_(self.deltas.weight, std=0.001)
        for layer in (self.classifier, self.deltas):
            nn.init.zeros_(layer.bias)

    def forward(self, features: Tensor, rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Class logits (R, K + 1) and deltas (R, 4) for the boxes of every image, concatenated."""
        crops = roi_align(
            self.reduce(features),  # fewer channels: a cheaper crop and first FC layer
            [r.to(features.dtype) for r in rois],
            self.roi_size,
            spatial_scale=1 / self.stride,
            sampling_ratio=1,  # one bilinear sample per bin: a 4x cheaper backward pass
            aligned=True,
        )
        x = self.fc(crops)
        return self.classifier(x).float(), self.deltas(x).float()

    def sample_rois(
        self, proposals: list[Tensor], boxes: list[Tensor], labels: list[Tensor]
    ) -> tuple[list[Tensor], Tensor, Tensor]:
        """Training RoIs per image, class targets (R,) (0 = nothing) and box targets (R, 4)."""
        rois, classes, targets = [], [], []
        for props, truth, label in zip(proposals, boxes, labels, strict=True):
            candidates = torch.cat([props, truth])
            matches = match(candidates, truth, high=0.5, low=0.5, best=False)
            fg, bg = sample_fg_bg(matches, self.batch, self.positive_fraction)
            chosen = torch.cat([fg, bg])
            rois.append(candidates[chosen])
            target = torch.zeros(len(chosen), dtype=torch.long, device=candidates.device)
            target[: len(fg)] = label[matches[fg]] + 1
            classes.append(target)
            deltas = torch.zeros(len(chosen), 4, device=candidates.device)
            deltas[: len(fg)] = encode(truth[matches[fg]], candidates[fg], BOX_WEIGHTS)
            targets.append(deltas)
        return rois, torch.cat(classes), torch.cat(targets)

    def loss(
        self, logits: Tensor, deltas: Tensor, classes: Tensor, targets: Tensor
    ) -> dict[str, Tensor]:
        """Cross-entropy over K + 1 classes + smooth L1 on the objects' deltas."""
        fg = classes > 0
        box = F.smooth_l1_loss(deltas[fg], targets[fg], beta=1.0, reduction="sum")
        return {
            "roi_class": F.cross_entropy(logits, classes),
            "roi_box": box / max(len(classes), 1),
        }

    def classify(
        self, logits: Tensor, deltas: Tensor, rois: Tensor, image_size: tuple[int, int]
    ) -> Classified:
        """One image's RoIs (R, 4) classified: probabilities, refined boxes, argmax labels."""
        probabilities = logits.softmax(dim=1)
        boxes = clip_boxes_to_image(decode(deltas, rois, BOX_WEIGHTS), image_size)
        scores, best = probabilities.max(dim=1)
        return Classified(boxes, probabilities, best - 1, scores)

    def suppress(self, classified: Classified) -> dict[str, Tensor]:
        """Final detections: each (box, class >= 1) scored above threshold, per-class NMS."""
        k = classified.probabilities.shape[1] - 1
        scores = classified.probabilities[:, 1:].reshape(-1)  # (R K,) box-major
        labels = torch.arange(k, device=scores.device).repeat(len(classified.boxes))
        boxes = classified.boxes.repeat_interleave(k, dim=0)
        keep = torch.nonzero(scores > self.score_threshold).flatten()
        keep = keep[remove_small_boxes(boxes[keep], 1.0)]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = batched_nms(boxes, scores, labels, self.nms)[: self.max_detections]
        return {"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]}

"""The two-stage detector: propose candidate boxes, classify each (possibly as nothing), suppress.

    image (B, 3, S, S) in [0, 1]
      -> backbone: a small CNN, feature map (B, C, S/8, S/8)                  (``Backbone``)
      -> region proposal network: anchors scored and moved, NMS -> proposals  (``rpn.py``)
      -> roi_align crops of the feature map -> K + 1 classes + box refinement (``roi_heads.py``)
      -> per-class NMS -> detections: boxes (N, 4) xyxy pixels, labels in [0, K), scores

``forward(images)`` returns the detections; ``forward(images, boxes, labels)`` the training losses;
``stages(images)`` every intermediate result of each image, for drawing. Sized for a CPU: stride 8
on 128-pixel images (a 16x16 grid), 9 anchors per cell whose sizes (16-64 px) match the objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from antlers.nn.blocks import Normalize, conv_bn
from antlers.tasks.base import ModelConfig
from antlers.tasks.detect.roi_heads import Classified, RoIHead
from antlers.tasks.detect.rpn import Proposals, RegionProposalNetwork

__all__ = ["DetectConfig", "DetectorConfig", "Stages", "TwoStageDetector", "build_detector"]


@dataclass(frozen=True)
class DetectorConfig:
    """Everything that shapes the detector; saved in the weights' metadata."""

    num_classes: int
    widths: tuple[int, ...] = (24, 48, 96)  # channels of the three stride-2 stages
    anchor_sizes: tuple[float, ...] = (16.0, 32.0, 64.0)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # height / width
    roi_size: int = 7
    hidden: int = 256
    score_threshold: float = 0.001  # keep the low-score tail: AP counts it (detect-recipe.md)
    nms: float = 0.5
    max_detections: int = 50


class Backbone(nn.Sequential):
    """Three stages, each a stride-2 conv_bn then a conv_bn (the last one two): stride 8.

    Receptive field of a cell: 75 pixels, more than the largest objects (about 0.4 S = 51 px).
    """

    stride = 8

    def __init__(self, widths: tuple[int, ...], mean: list[float], std: list[float]):
        layers: list[nn.Module] = [Normalize(mean, std)]
        c_in = 3
        for stage, width in enumerate(widths):
            layers += [_down(c_in, width), conv_bn(width, width)]
            if stage == len(widths) - 1:
                layers.append(conv_bn(width, width))
            c_in = width
        super().__init__(*layers)


def _down(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution with stride 2 -> BatchNorm -> ReLU: halves H and W."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@dataclass
class Stages:
    """One image through the detector, stage by stage (inference, no gradients)."""

    proposals: Proposals  # candidates before NMS and the proposals kept
    classified: Classified  # each kept proposal: refined box, class (or nothing), score
    detections: dict[str, Tensor]  # after per-class NMS: boxes, labels, scores


class TwoStageDetector(nn.Module):
    """Backbone -> RPN -> RoI head; see the module docstring."""

    def __init__(self, config: DetectorConfig, mean: list[float], std: list[float]):
        super().__init__()
        self.config = config
        self.backbone = Backbone(config.widths, mean, std)
        channels, stride = config.widths[-1], Backbone.stride
        self.rpn = RegionProposalNetwork(
            channels, stride, config.anchor_sizes, config.anchor_ratios
        )
        self.roi_head = RoIHead(
            channels,
            config.num_classes,
            stride,
            roi_size=config.roi_size,
            hidden=config.hidden,
            score_threshold=config.score_threshold,
            nms=config.nms,
            max_detections=config.max_detections,
        )

    def forward(
        self,
        images: Tensor,
        boxes: list[Tensor] | None = None,
        labels: list[Tensor] | None = None,
    ) -> Any:
        """Detections (a dict per image) for ``images``; with ``boxes`` and ``labels``, the
        training losses {"loss", "rpn_objectness", "rpn_box", "roi_class", "roi_box"}."""
        if boxes is not None and labels is not None:
            return self.losses(images, boxes, labels)
        return [s.detections for s in self.stages(images)]

    def losses(
        self, images: Tensor, boxes: list[Tensor], labels: list[Tensor]
    ) -> dict[str, Tensor]:
        size = (images.shape[-2], images.shape[-1])
        features = self.backbone(images)
        logits, deltas, anchors = self.rpn(features)
        losses = self.rpn.loss(logits, deltas, anchors, boxes)
        proposals = self.rpn.propose(logits, deltas, anchors, size)
        rois, classes, targets = self.roi_head.sample_rois(
            [p.boxes for p in proposals], boxes, labels
        )
        class_logits, box_deltas = self.roi_head(features, rois)
        losses |= self.roi_head.loss(class_logits, box_deltas, classes, targets)
        losses["loss"] = sum(losses.values())
        return losses

    @torch.no_grad()
    def stages(self, images: Tensor) -> list[Stages]:
        """Every image's proposals, classified proposals and detections (inference)."""
        size = (images.shape[-2], images.shape[-1])
        features = self.backbone(images)
        logits, deltas, anchors = self.rpn(features)
        proposals = self.rpn.propose(logits, deltas, anchors, size)
        rois = [p.boxes for p in proposals]
        class_logits, box_deltas = self.roi_head(features, rois)
        result = []
        for p, cl, dl in zip(
            proposals,
            class_logits.split([len(r) for r in rois]),
            box_deltas.split([len(r) for r in rois]),
            strict=True,
        ):
            classified = self.roi_head.classify(cl, dl, p.boxes, size)
            result.append(Stages(p, classified, self.roi_head.suppress(classified)))
        return result


@dataclass(frozen=True, kw_only=True)
class DetectConfig(ModelConfig):
    """A detection run's model config: the detector's shape and the data's ``category_ids``
    (the id of each class in the training annotations, for COCO results files)."""

    category_ids: tuple[int, ...] = ()
    detector: DetectorConfig


def build_detector(config: DetectConfig) -> TwoStageDetector:
    """The detector ``config`` describes (its ``detector``, ``mean`` and ``std``)."""
    return TwoStageDetector(config.detector, list(config.mean), list(config.std))

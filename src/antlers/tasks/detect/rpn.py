"""Stage 1, "propose candidate boxes": the region proposal network (Ren et al. 2015, Faster R-CNN).

A 3x3 conv slides over the backbone's feature map; at every cell, for each of its A anchors, a
1x1 conv gives an objectness logit ("is there an object here?") and another the 4 deltas that
move the anchor onto the object (``detect_boxes.encode``). Proposals: decode every anchor, clip
to the image, keep the ``pre_nms`` best scores, suppress overlaps above ``nms`` IoU
(torchvision.ops.nms), keep the ``post_nms`` best. Training loss (Faster R-CNN eq. 1): binary
cross-entropy on a sample of anchors (half foreground at most) + smooth L1 on the foreground
anchors' deltas.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import clip_boxes_to_image, nms, remove_small_boxes

from antlers.tasks.detect.boxes import decode, encode, grid_anchors, match, sample_fg_bg

__all__ = ["Proposals", "RegionProposalNetwork"]


@dataclass
class Proposals:
    """One image's proposals: every anchor's best-scored boxes before and after NMS."""

    candidates: Tensor  # (pre_nms, 4) xyxy, the top-scoring decoded anchors
    candidate_scores: Tensor  # (pre_nms,) objectness probabilities
    boxes: Tensor  # (<= post_nms, 4) the proposals kept after NMS
    scores: Tensor  # (<= post_nms,)


class RegionProposalNetwork(nn.Module):
    """Objectness and box deltas for A anchors per feature-map cell; proposals and their loss."""

    def __init__(
        self,
        channels: int,
        stride: int,
        sizes: tuple[float, ...],
        ratios: tuple[float, ...],
        pre_nms: tuple[int, int] = (300, 300),  # (training, inference)
        post_nms: tuple[int, int] = (128, 64),
        nms: float = 0.7,
        batch_per_image: int = 128,
    ):
        super().__init__()
        self.stride, self.sizes, self.ratios = stride, sizes, ratios
        self.pre_nms, self.post_nms, self.nms, self.batch = pre_nms, post_nms, nms, batch_per_image
        a = len(sizes) * len(ratios)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, a, 1)
        self.deltas = nn.Conv2d(channels, 4 * a, 1)
        for layer in (self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def anchors(self, features: Tensor) -> Tensor:
        """Anchors (H W A, 4) for a feature map (B, C, H, W)."""
        h, w = features.shape[-2:]
        anchors = grid_anchors(h, w, self.stride, self.sizes, self.ratios)
        return anchors.to(features.device)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Objectness logits (B, H W A), deltas (B, H W A, 4) and anchors (H W A, 4)."""
        x = F.relu(self.conv(features))
        b = x.shape[0]
        logits = self.objectness(x).permute(0, 2, 3, 1).reshape(b, -1)  # cell-major, as anchors
        deltas = self.deltas(x).permute(0, 2, 3, 1).reshape(b, -1, 4)
        return logits.float(), deltas.float(), self.anchors(features)

    def propose(
        self, logits: Tensor, deltas: Tensor, anchors: Tensor, image_size: tuple[int, int]
    ) -> list[Proposals]:
        """Each image's proposals (no gradient flows into them, as in Faster R-CNN)."""
        mode = 0 if self.training else 1
        pre, post = self.pre_nms[mode], self.post_nms[mode]
        result = []
        for score, delta in zip(logits.detach(), deltas.detach(), strict=True):
            top = score.topk(min(pre, len(score))).indices
            boxes = clip_boxes_to_image(decode(delta[top], anchors[top]), image_size)
            probs = score[top].sigmoid()
            keep = remove_small_boxes(boxes, 2.0)
            keep = keep[nms(boxes[keep], probs[keep], self.nms)][:post]
            result.append(Proposals(boxes, probs, boxes[keep], probs[keep]))
        return result

    def loss(
        self, logits: Tensor, deltas: Tensor, anchors: Tensor, truth: list[Tensor]
    ) -> dict[str, Tensor]:
        """Objectness BCE over sampled anchors + smooth L1 on the foreground ones' deltas."""
        labels, chosen, fg_deltas, fg_targets = [], [], [], []
        for i, boxes in enumerate(truth):
            matches = match(anchors, boxes, high=0.7, low=0.3, best=True)
            fg, bg = sample_fg_bg(matches, self.batch, 0.5)
            chosen.append(logits[i, torch.cat([fg, bg])])
            labels.append(torch.cat([torch.ones(len(fg)), torch.zeros(len(bg))]))
            fg_deltas.append(deltas[i, fg])
            fg_targets.append(encode(boxes[matches[fg]], anchors[fg]))
        scores, target = torch.cat(chosen), torch.cat(labels).to(logits.device)
        objectness = F.binary_cross_entropy_with_logits(scores, target)
        box = F.smooth_l1_loss(
            torch.cat(fg_deltas), torch.cat(fg_targets), beta=1 / 9, reduction="sum"
        ) / max(len(scores), 1)
        return {"rpn_objectness": objectness, "rpn_box": box}

"""Box arithmetic of a two-stage detector: anchors, the box code, matching and sampling.

Conventions: boxes are float (N, 4) xyxy pixels; a feature map of stride s covers pixel
(x, y) at cell (x // s, y // s), whose centre is ((j + 0.5) s, (i + 0.5) s).

1. Anchors (Ren et al. 2015, Faster R-CNN, §3.1.1): at every cell, A = len(sizes) x len(ratios)
   boxes centred on the cell, of area size^2 and height/width ratio r.
2. Box code (Girshick et al. 2014, R-CNN, appendix C; Faster R-CNN eq. 2): a box relative to a
   reference box is t = ((x - x_a) / w_a, (y - y_a) / h_a, log(w / w_a), log(h / h_a)), divided
   by ``weights`` so the targets have roughly unit variance; decoding inverts it.
3. Matching: each reference gets the ground-truth box it overlaps most; IoU >= high is foreground,
   < low background, in between ignored; each ground truth's best reference is foreground too
   (Faster R-CNN §3.1.2, so that no object is left without one).
4. Sampling: a fixed number of references per image with at most ``fraction`` foreground, drawn
   at random (Faster R-CNN §3.1.3).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.ops import box_iou

__all__ = ["decode", "encode", "grid_anchors", "match", "sample_fg_bg"]

BBOX_CLIP = math.log(1000.0 / 16)  # the largest log-scale change decoded (torchvision's value)
BACKGROUND, IGNORE = -1, -2  # match() results that are not ground-truth indices


def grid_anchors(
    height: int, width: int, stride: int, sizes: tuple[float, ...], ratios: tuple[float, ...]
) -> Tensor:
    """Anchors (H * W * A, 4) xyxy, cell-major: anchor a of cell (i, j) is row (i W + j) A + a."""
    scales = torch.tensor(sizes, dtype=torch.float32)
    r = torch.tensor(ratios, dtype=torch.float32)
    h_ratio = r.sqrt()
    ws = (scales[:, None] / h_ratio[None, :]).reshape(-1)  # (A,) area = size^2, h / w = r
    hs = (scales[:, None] * h_ratio[None, :]).reshape(-1)
    base = torch.stack([-ws, -hs, ws, hs], dim=1) / 2  # (A, 4) centred on 0
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)  # (H W, 1, 4)
    return (centres + base[None]).reshape(-1, 4)


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode(
    boxes: Tensor, references: Tensor, weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
) -> Tensor:
    """Targets t (N, 4) that move ``references`` (N, 4) onto ``boxes`` (N, 4) (recipe step 2)."""
    x, y, w, h = _centre_size(boxes)
    xa, ya, wa, ha = _centre_size(references)
    wx, wy, ww, wh = weights
    return torch.stack(
        [wx * (x - xa) / wa, wy * (y - ya) / ha, ww * torch.log(w / wa), wh * torch.log(h / ha)],
        dim=-1,
    )


def decode(
    deltas: Tensor, references: Tensor, weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
) -> Tensor:
    """Boxes (N, 4) xyxy from deltas (N, 4) applied to ``references`` (N, 4): encode's inverse."""
    xa, ya, wa, ha = _centre_size(references)
    wx, wy, ww, wh = weights
    dw = (deltas[..., 2] / ww).clamp(max=BBOX_CLIP)
    dh = (deltas[..., 3] / wh).clamp(max=BBOX_CLIP)
    x, y = xa + deltas[..., 0] / wx * wa, ya + deltas[..., 1] / wy * ha
    w, h = wa * torch.exp(dw), ha * torch.exp(dh)
    return torch.stack([x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h], dim=-1)


def match(references: Tensor, truth: Tensor, high: float, low: float, best: bool) -> Tensor:
    """For each reference (N, 4): index of its ground-truth box in ``truth`` (M, 4), or
    BACKGROUND (-1, IoU < low) or IGNORE (-2, low <= IoU < high). ``best``: also make each
    ground truth's highest-IoU references foreground (recipe step 3)."""
    if len(truth) == 0:
        return torch.full((len(references),), BACKGROUND, dtype=torch.long)
    iou = box_iou(truth, references)  # (M, N)
    value, index = iou.max(dim=0)
    result = index.clone()
    result[value < high] = IGNORE
    result[value < low] = BACKGROUND
    if best:
        top = iou.max(dim=1, keepdim=True).values  # (M, 1) each truth's best IoU
        _, ref = torch.nonzero((iou == top) & (top > 0), as_tuple=True)
        result[ref] = index[ref]
    return result


def sample_fg_bg(
    matches: Tensor, count: int, fraction: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Indices of sampled foreground and background references (recipe step 4): at most
    ``fraction * count`` foreground (matches >= 0), the rest background (BACKGROUND)."""
    foreground = torch.nonzero(matches >= 0).flatten()
    background = torch.nonzero(matches == BACKGROUND).flatten()
    n_fg = min(int(count * fraction), len(foreground))
    n_bg = min(count - n_fg, len(background))
    fg = foreground[torch.randperm(len(foreground), generator=generator)[:n_fg]]
    bg = background[torch.randperm(len(background), generator=generator)[:n_bg]]
    return fg, bg

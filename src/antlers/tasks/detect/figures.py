"""Detection figures: boxes drawn on images (torchvision.utils.draw_bounding_boxes), the four
stages of one image, and precision-recall curves.

Images are float (3, H, W) in [0, 1]; boxes xyxy pixels. Drawn images come back uint8 (3, H', W'),
enlarged ``zoom`` times (nearest) so that labels stay readable on small scenes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from antlers.viz.figures import new_figure
from antlers.viz.images import to_uint8

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from antlers.tasks.detect.model import Stages

__all__ = ["detections_grid", "draw_boxes", "pr_curve_figure", "stages_figure"]

PALETTE = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4",
    "#42d4f4", "#f032e6", "#bfef45", "#fabed4", "#469990",
]  # fmt: skip


def draw_boxes(
    image: Tensor,
    boxes: Tensor,
    captions: Sequence[str] | None = None,
    colours: Sequence[str] | str = "#ffff00",
    zoom: int = 3,
    width: int = 2,
) -> Tensor:
    """uint8 (3, zoom H, zoom W): ``image`` enlarged, with ``boxes`` and their captions."""
    from torchvision.utils import draw_bounding_boxes

    big = torch.nn.functional.interpolate(image[None].float(), scale_factor=zoom, mode="nearest")
    picture = to_uint8(big[0])
    if len(boxes) == 0:
        return picture
    colour = [colours] * len(boxes) if isinstance(colours, str) else list(colours)
    return draw_bounding_boxes(
        picture,
        boxes.detach().cpu().float() * zoom,
        labels=list(captions) if captions is not None else None,
        colors=colour,
        width=width,
    )


def detection_captions(
    detections: dict[str, Tensor], classes: Sequence[str]
) -> tuple[list[str], list[str]]:
    """ "label 0.93" captions and per-class colours for a detections dict."""
    labels, scores = detections["labels"].tolist(), detections["scores"].tolist()
    captions = [f"{classes[k]} {s:.2f}" for k, s in zip(labels, scores, strict=True)]
    return captions, [PALETTE[k % len(PALETTE)] for k in labels]


def _show(ax: object, picture: Tensor, title: str) -> None:
    ax.imshow(picture.permute(1, 2, 0).numpy())  # type: ignore[attr-defined]
    ax.set_title(title, fontsize=9)  # type: ignore[attr-defined]
    ax.axis("off")  # type: ignore[attr-defined]


def stages_figure(
    image: Tensor, stages: Stages, classes: Sequence[str], top: int = 60, threshold: float = 0.5
) -> Figure:
    """Four panels for one image: the best-scored candidate boxes, the proposals kept by NMS,
    each proposal classified (grey: "nothing"), and the final detections above ``threshold``."""
    p, c = stages.proposals, stages.classified
    cand = p.candidates[:top]
    thing = c.labels >= 0
    class_captions = [
        f"{classes[k]} {s:.2f}" if k >= 0 else ""
        for k, s in zip(c.labels.tolist(), c.scores, strict=True)
    ]
    class_colours = [PALETTE[k % len(PALETTE)] if k >= 0 else "#808080" for k in c.labels]
    keep = stages.detections["scores"] >= threshold
    final = {k: v[keep] for k, v in stages.detections.items()}
    final_captions, final_colours = detection_captions(final, classes)
    panels = [
        (draw_boxes(image, cand, colours="#ffff00", width=1),
         f"1. the {len(cand)} best-scored candidates"),
        (draw_boxes(image, p.boxes, None, "#00ffff", width=1),
         f"2. {len(p.boxes)} proposals kept by NMS"),
        (draw_boxes(image, c.boxes, class_captions, class_colours, width=1),
         f"3. classified: {int(thing.sum())} objects, {int((~thing).sum())} nothing"),
        (draw_boxes(image, final["boxes"], final_captions, final_colours),
         f"4. {len(final['boxes'])} detections (score >= {threshold}) after per-class NMS"),
    ]  # fmt: skip
    fig = new_figure(16, 4.4)
    for ax, (picture, title) in zip(fig.subplots(1, 4), panels, strict=True):
        _show(ax, picture, title)
    return fig


def detections_grid(pictures: Sequence[Tensor], columns: int = 4) -> Tensor:
    """Drawn images (uint8 (3, H, W) each, same size) in one grid image."""
    from torchvision.utils import make_grid

    return make_grid(list(pictures), nrow=columns, padding=4, pad_value=255)


def pr_curve_figure(recall: np.ndarray, precision: np.ndarray, classes: Sequence[str]) -> Figure:
    """Precision against recall at IoU 0.5, one line per class (COCOeval's interpolated curve)."""
    fig = new_figure(6, 4.5)
    ax = fig.subplots()
    for k, name in enumerate(classes):
        p = precision[:, k]
        if (p > -1).any():
            ax.plot(recall[p > -1], p[p > -1], label=name, color=PALETTE[k % len(PALETTE)])
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision-recall at IoU 0.5 (test set)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # no curve at all when nothing was detected
        ax.legend(fontsize=7, loc="lower left")
    return fig

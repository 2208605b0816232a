"""Segmentation predictions on new images: class-id masks, palette PNGs and legend overlays.

An image of any size is segmented at the scale the model was trained at: it is resized so that
its shorter side is the training size, the logits are resized back (bilinear) to the image's own
size, and each pixel takes the class of the largest logit. So the mask has the image's size.

Outputs of ``antlers predict RUN IMAGE... --out DIR``, for each IMAGE named NAME:

* ``DIR/NAME_mask.png``: the class ids as an 8-bit palette PNG (as Pascal VOC stores its masks:
  reading its pixel values gives the ids; viewers show the palette's colours);
* ``DIR/NAME_overlay.png``: the classes drawn over the image with
  ``torchvision.utils.draw_segmentation_masks``, and a legend of the classes present.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from antlers.io.images import image_to_tensor
from antlers.viz.images import save_png, to_uint8

__all__ = ["Segmentation", "overlay", "palette", "predict_files", "segment", "segment_batch"]

# Cityscapes' colours for the scenes' classes (sky's colour for "unlabelled", mostly sky here).
SCENE_PALETTE = {
    "unlabelled": (70, 130, 180),
    "road": (128, 64, 128),
    "sidewalk": (244, 35, 232),
    "building": (70, 70, 70),
    "fence": (190, 153, 153),
    "pole": (153, 153, 153),
    "vegetation": (107, 142, 35),
    "vehicle": (0, 0, 142),
}


def _voc_colour(i: int) -> tuple[int, int, int]:
    """Pascal VOC's colour map: the bits of the class id spread over R, G and B."""
    r = g = b = 0
    for j in range(8):
        r |= ((i >> 0) & 1) << (7 - j)
        g |= ((i >> 1) & 1) << (7 - j)
        b |= ((i >> 2) & 1) << (7 - j)
        i >>= 3
    return r, g, b


def palette(classes: Sequence[str]) -> list[tuple[int, int, int]]:
    """One RGB colour per class: Cityscapes' for the scenes' class names, else VOC's map."""
    return [SCENE_PALETTE.get(c, _voc_colour(i)) for i, c in enumerate(classes)]


@torch.no_grad()
def segment_batch(task: Any, model: torch.nn.Module, images: Tensor, train_size: int) -> Tensor:
    """Class ids (B, H, W) for float images (B, C, H, W) in [0, 1], at the training scale."""
    model.eval()
    h, w = images.shape[-2:]
    scale = train_size / min(h, w)
    x = images.float()
    if abs(scale - 1) > 1e-6:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    logits = task.logits(model, x.to(next(model.parameters()).device)).cpu()
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits.argmax(1)


@dataclass(frozen=True)
class Segmentation:
    """``masks`` (B, H, W) int64: a class id per pixel (indices into ``classes``), at the
    images' own size."""

    masks: Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.masks)

    def shares(self, i: int) -> dict[str, float]:
        """Image ``i``'s fraction of pixels per class present, largest first."""
        ids = self.masks[i]
        counts = torch.bincount(ids.flatten(), minlength=len(self.classes))
        present = [k for k in counts.argsort(descending=True).tolist() if counts[k] > 0]
        return {self.classes[k]: round(float(counts[k]) / ids.numel(), 4) for k in present}

    def to_json(self) -> list[dict[str, Any]]:
        """Per image {"size": [H, W], "classes": {name: share of the pixels}}."""
        return [
            {"size": list(self.masks.shape[1:]), "classes": self.shares(i)}
            for i in range(len(self))
        ]


def segment(task: Any, model: torch.nn.Module, config: Any, images: Any) -> Segmentation:
    """``Run.predict`` for segmentation: class ids (B, H, W) int64 at the images' own size, for
    a float batch (B, C, H, W) in [0, 1] or a list of same-sized PIL images."""
    c, size = config.in_channels, config.image_size[0]
    if isinstance(images, Tensor):
        if images.ndim != 4 or images.shape[1] != c:
            raise ValueError(
                f"images must be (B, {c}, H, W) floats in [0, 1], got shape {tuple(images.shape)}"
            )
        return Segmentation(segment_batch(task, model, images, size), config.classes)
    tensors = [image_to_tensor(im, c) for im in images]
    if len({t.shape for t in tensors}) > 1:
        raise ValueError(
            f"images of different sizes {sorted({tuple(t.shape[1:]) for t in tensors})}: "
            f"predict them one at a time, or resize them to one size"
        )
    return Segmentation(segment_batch(task, model, torch.stack(tensors), size), config.classes)


def overlay(image: Tensor, ids: Tensor, classes: Sequence[str], alpha: float = 0.55) -> Tensor:
    """uint8 (3, H, W): every class drawn over the image (uint8 (C, H, W)) in its colour."""
    from torchvision.utils import draw_segmentation_masks

    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    masks = ids[None] == torch.arange(len(classes))[:, None, None]
    return draw_segmentation_masks(image, masks, alpha=alpha, colors=palette(classes))


def _legend_figure(picture: np.ndarray, classes: Sequence[str], present: list[int]) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    h, w = picture.shape[:2]
    fig = Figure(figsize=(4.0 * w / max(h, w) + 1.8, 4.0 * h / max(h, w)), layout="constrained")
    ax = fig.subplots()
    ax.imshow(picture, interpolation="nearest")
    ax.axis("off")
    colours = palette(classes)
    handles = [Patch(color=np.array(colours[k]) / 255, label=classes[k]) for k in present]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    return fig


def predict_files(
    task: Any, model: torch.nn.Module, config: Any, paths: list[str], out: Path
) -> list[dict[str, Any]]:
    """Segment each file; write NAME_mask.png and NAME_overlay.png into ``out``; one row each."""
    from PIL import Image

    from antlers.io.images import FULL_SIZE_PIXELS, read_images
    from antlers.viz.figures import save_figure

    classes, c = config.classes, config.in_channels
    flat = [v for colour in palette(classes) for v in colour]
    rows = []
    pictures = read_images(paths, FULL_SIZE_PIXELS)  # segmented at their own size
    for name, picture in zip(paths, pictures, strict=True):
        x = image_to_tensor(picture, c)
        ids = segment_batch(task, model, x[None], config.image_size[0])[0]
        mask = Image.fromarray(ids.numpy().astype(np.uint8), mode="L")
        mask.putpalette(flat + [0] * (768 - len(flat)))  # mode P: the ids, shown in colour
        stem = Path(name).stem
        mask_path = save_png(mask, out / f"{stem}_mask.png")
        drawn = overlay(to_uint8(x), ids, classes)
        counts = torch.bincount(ids.flatten(), minlength=len(classes))
        present = [k for k in counts.argsort(descending=True).tolist() if counts[k] > 0]
        figure = _legend_figure(drawn.permute(1, 2, 0).numpy(), classes, present)
        overlay_path = save_figure(figure, out / f"{stem}_overlay.png")
        share = {classes[k]: round(float(counts[k]) / ids.numel(), 4) for k in present}
        shown = ", ".join(f"{k} {v:.0%}" for k, v in list(share.items())[:4])
        rows.append(
            {
                "image": name,
                "size": [int(ids.shape[0]), int(ids.shape[1])],
                "classes": share,
                "mask": str(mask_path),
                "overlay": str(overlay_path),
                "text": f"{name}: {shown} -> {mask_path}, {overlay_path}",
            }
        )
    return rows

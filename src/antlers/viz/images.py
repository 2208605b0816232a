"""Pixel images as PNG files: every picture that is not a matplotlib figure is written here.

A tensor image is (C, H, W) with C = 1 (gray), 3 (RGB) or 4 (RGBA): uint8 as it is, or floats in
[0, 1] (clamped, then rounded to the nearest of the 256 levels). A PIL image is written as it is,
so a palette image ("P", e.g. a class-id mask) keeps its palette. Every file is written
atomically (:func:`antlers.io.files.atomic_write_with`). torch and PIL are imported on use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from antlers.io.files import atomic_write_with

if TYPE_CHECKING:
    from PIL import Image
    from torch import Tensor

__all__ = ["save_png", "to_pil", "to_uint8"]


def to_uint8(image: Tensor) -> Tensor:
    """Floats in [0, 1] -> uint8 in 0..255 (clamped, rounded), any shape; uint8 is returned."""
    import torch

    if image.dtype == torch.uint8:
        return image
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def to_pil(image: Tensor) -> Image.Image:
    """A tensor image (C, H, W), C in 1, 3, 4, uint8 or floats in [0, 1] -> PIL "L", "RGB" or
    "RGBA"; any other shape: ValueError."""
    from PIL import Image

    if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
        raise ValueError(f"an image must be (C, H, W) with C 1, 3 or 4, got {tuple(image.shape)}")
    array = to_uint8(image).cpu().permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def save_png(image: Tensor | Image.Image, path: str | Path) -> Path:
    """Write ``image`` (a tensor image (C, H, W) or a PIL image) to ``path`` as PNG, atomically."""
    from PIL import Image

    picture = image if isinstance(image, Image.Image) else to_pil(image)
    return atomic_write_with(path, lambda f: picture.save(f, format="PNG"))

"""Reading the user's image files: every path from a file to pixels starts here.

* ``read_images``: open and fully read each file (a missing or unreadable one: ValueError naming
  it). Pillow's decompression-bomb limit stays in force.
* ``to_8bit``: any Pillow mode -> 8-bit "L" or "RGB": 16- and 32-bit integer grayscale (I;16, I)
  scaled from 0..65535 to 0..255; 1-bit and float to "L"; transparency (LA, RGBA, PA, P with a
  transparent colour) composited on white; palette, CMYK, YCbCr and the rest to "RGB".
* ``prepare_image``: a PIL image (or file) upright (EXIF orientation applied), 8-bit, in the
  requested channels (1 = "L", 3 = "RGB"), resized by one of the ``RESIZE`` policies.
* ``image_to_tensor``: the same, as a float tensor (C, H, W) in [0, 1]: what a model takes.

NumPy and torch users share ``prepare_image``; torch is imported only by ``image_to_tensor``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL import Image
    from torch import Tensor

__all__ = ["RESIZE", "image_to_tensor", "prepare_image", "read_images", "to_8bit"]

# fit: scale to cover the size and centre-crop the rest (ImageOps.fit), as the training data;
# stretch: resize to the size exactly, aspect ratio not kept; shrink: only shrink, keeping the
# aspect ratio, until the image fits inside the size (Image.thumbnail). Bicubic throughout.
RESIZE = ("fit", "stretch", "shrink")
Resize = Literal["fit", "stretch", "shrink"]

_BACKGROUND = (255, 255, 255, 255)
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


def read_images(paths: list[str]) -> list[Image.Image]:
    """PIL images for ``paths``, fully read; a missing or unreadable file: ValueError naming it."""
    from PIL import Image, UnidentifiedImageError

    pictures = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        try:
            with Image.open(path) as im:
                im.load()
                pictures.append(im.copy())
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise ValueError(f"{path}: cannot read as an image ({error})") from error
    return pictures


def to_8bit(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit "L" or "RGB" by the policy of the module docstring."""
    import numpy as np
    from PIL import Image

    if im.mode in ("L", "RGB"):
        return im
    if im.mode == "I" or im.mode.startswith("I;16"):
        values = np.asarray(im).astype(np.float64) * (255.0 / 65535.0)
        return Image.fromarray(values.round().clip(0, 255).astype(np.uint8), mode="L")
    if im.mode in ("1", "F"):
        return im.convert("L")
    if im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _BACKGROUND), rgba).convert("RGB")
    return im.convert("RGB")


def prepare_image(
    image: Image.Image | str | Path,
    channels: int = 3,
    size: tuple[int, int] | None = None,
    resize: Resize = "fit",
) -> Image.Image:
    """``image`` (a PIL image or a file) upright, 8-bit "L" (channels 1) or "RGB" (3), resized.

    size: (height, width), None keeps the image's own size; resize: one of ``RESIZE``.
    A missing or unreadable file, or bad ``channels`` / ``resize``: ValueError naming it.
    """
    from PIL import Image, ImageOps

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    if resize not in RESIZE:
        raise ValueError(f"resize must be one of {', '.join(RESIZE)}, got {resize!r}")
    if isinstance(image, str | Path):
        (image,) = read_images([str(image)])
    image = to_8bit(ImageOps.exif_transpose(image)).convert("L" if channels == 1 else "RGB")
    if size is None:
        return image
    height, width = size
    if resize == "fit":
        return ImageOps.fit(image, (width, height), method=Image.Resampling.BICUBIC)
    if resize == "stretch":
        return image.resize((width, height), resample=Image.Resampling.BICUBIC)
    image.thumbnail((width, height), resample=Image.Resampling.BICUBIC)
    return image


def image_to_tensor(
    image: Image.Image | str | Path,
    channels: int = 3,
    size: tuple[int, int] | None = None,
    resize: Resize = "fit",
) -> Tensor:
    """``image`` (a PIL image or a file) as float32 (C, H, W) in [0, 1], C = ``channels``.

    Upright (EXIF orientation applied), 8-bit by ``to_8bit``'s policy, then resized to
    ``size`` = (height, width) by ``resize`` (see ``RESIZE``); None keeps the image's size.
    """
    import numpy as np
    import torch

    picture = prepare_image(image, channels, size, resize)
    array = np.asarray(picture, dtype=np.float32) / 255
    array = array.reshape(picture.height, picture.width, channels)
    return torch.from_numpy(array).permute(2, 0, 1)

"""Reading the user's image files: every path from a file to pixels starts here.

* ``open_image``: the one way a file is opened. It is read fully and turned upright (EXIF
  orientation), or refused with an ``ImageError`` (a ValueError) naming the file and the reason:
  no such file, a folder, an empty file, not an image Pillow knows (by content: a PNG named .jpg
  is read as the PNG it is), truncated or corrupt data, more pixels than Pillow's
  decompression-bomb limit ``PIL.Image.MAX_IMAGE_PIXELS`` (its warning range, 1-2x the limit,
  is refused too), or more than ``max_pixels`` for callers that keep an image at its own size.
  Pixel counts are checked from the header, before anything is decoded.
* ``read_images``: ``open_image`` for each of a list of files.
* ``to_8bit``: any Pillow mode -> 8-bit "L" or "RGB": 16- and 32-bit integer grayscale (I;16, I)
  scaled from 0..65535 to 0..255; 1-bit and float to "L"; transparency (LA, RGBA, PA, P with a
  transparent colour) composited on white; palette, CMYK, YCbCr and the rest to "RGB".
* ``prepare_image``: a PIL image (or file) upright (EXIF orientation applied), 8-bit, in the
  requested channels (1 = "L", 3 = "RGB"), resized by one of the ``RESIZE`` policies.
* ``image_to_tensor``: the same, as a float tensor (C, H, W) in [0, 1]: what a model takes.

NumPy and torch users share ``prepare_image``; torch is imported only by ``image_to_tensor``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL import Image
    from torch import Tensor

__all__ = [
    "FULL_SIZE_PIXELS",
    "RESIZE",
    "ImageError",
    "image_to_tensor",
    "open_image",
    "prepare_image",
    "read_images",
    "to_8bit",
]

# fit: scale to cover the size and centre-crop the rest (ImageOps.fit), as the training data;
# stretch: resize to the size exactly, aspect ratio not kept; shrink: only shrink, keeping the
# aspect ratio, until the image fits inside the size (Image.thumbnail). Bicubic throughout.
RESIZE = ("fit", "stretch", "shrink")
Resize = Literal["fit", "stretch", "shrink"]

# The most pixels of an image used at its own size (slide's heat maps, masks and drawings at the
# image's size): 4096 x 4096. Larger images are refused before decoding; shrink them first.
FULL_SIZE_PIXELS = 4096 * 4096

_BACKGROUND = (255, 255, 255, 255)
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


class ImageError(ValueError):
    """An image file that cannot be used: ``path``, ``reason``, and a message naming both."""

    def __init__(self, path: Path, reason: str, message: str | None = None) -> None:
        super().__init__(message or f"{path}: {reason}")
        self.path, self.reason = path, reason


def _check_path(path: Path) -> None:
    if not path.exists():
        raise ImageError(path, "no such file")
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file")
    if not path.is_file():
        raise ImageError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")


def open_image(
    path: str | Path, max_pixels: int | None = None, min_side: int | None = None
) -> Image.Image:
    """The image file ``path`` fully read and upright (EXIF orientation applied), mode kept.

    Refused with an ImageError naming the file and the reason (see the module docstring);
    ``max_pixels``: also refuse more pixels than this (None: Pillow's limit only).
    ``min_side``: a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling,
    several times faster) as long as its shorter side stays at least this.
    """
    import warnings

    from PIL import Image, ImageOps

    path = Path(path)
    _check_path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with path.open("rb") as file, Image.open(file) as im:
                width, height = im.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageError(
                        path,
                        f"{width}x{height} = {width * height:,} pixels, more than the "
                        f"{max_pixels:,} used at full size; shrink it first",
                    )
                if min_side is not None and min(width, height) >= 2 * min_side:
                    scale = min_side / min(width, height)
                    im.draft(im.mode, (math.ceil(width * scale), math.ceil(height * scale)))
                im.load()
                ImageOps.exif_transpose(im, in_place=True)  # without a copy when upright
                return im
    except ImageError:
        raise
    except Exception as error:  # Pillow raises many exception types for malformed files
        lines = str(error).splitlines()
        reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        raise ImageError(path, reason, f"{path}: cannot read as an image ({reason})") from error


def read_images(paths: list[str], max_pixels: int | None = None) -> list[Image.Image]:
    """``open_image`` for each file of ``paths``; the first that is refused raises ImageError."""
    return [open_image(path, max_pixels) for path in paths]


def to_8bit(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit "L" or "RGB" by the policy of the module docstring."""
    import numpy as np
    from PIL import Image

    if im.mode in ("L", "RGB"):
        return im
    if im.mode == "I" or im.mode.startswith("I;16"):
        # round(v * 255 / 65535) in int32 (no ties: 255 / 65535 = 1 / 257), not in float64
        values = np.asarray(im).astype(np.int32).clip(0, 65535)
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), mode="L")
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
    A file that ``open_image`` refuses raises its ImageError; bad ``channels`` / ``resize``:
    ValueError listing the allowed values.
    """
    from PIL import Image, ImageOps

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    if resize not in RESIZE:
        raise ValueError(f"resize must be one of {', '.join(RESIZE)}, got {resize!r}")
    if isinstance(image, str | Path):
        image = open_image(image)
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

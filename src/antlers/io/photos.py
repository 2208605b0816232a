"""Photos to look at: the bundled sample photos and the user's own image files.

Images are returned as float64 NumPy arrays in [0, 1], shape (H, W, 3) for colour or (H, W) for
grayscale. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["SAMPLE_PHOTOS", "read_image", "sample_photo", "to_grayscale"]

# scikit-learn ships these two JPEGs inside the package: always available, offline.
SAMPLE_PHOTOS = ("china", "flower")


def sample_photo(name: str = "china") -> np.ndarray:
    """A bundled photo (427 x 640 x 3) as floats in [0, 1]; ``name`` in SAMPLE_PHOTOS."""
    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"unknown sample photo {name!r}; known: {', '.join(SAMPLE_PHOTOS)}")
    from sklearn.datasets import load_sample_image

    return load_sample_image(f"{name}.jpg").astype(np.float64) / 255.0


def read_image(path: str | Path, max_side: int | None = 1024) -> np.ndarray:
    """Read an image file as RGB floats in [0, 1], shape (H, W, 3); the file is only read.

    EXIF orientation is applied. Images larger than ``max_side`` on their longer side are
    shrunk (the NumPy convolution is for looking, not for 24-megapixel photos). A missing or
    unreadable file raises ValueError naming the file and the problem.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            if max_side is not None and max(im.size) > max_side:
                im.thumbnail((max_side, max_side))
            array = np.asarray(im, dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: cannot read as an image ({error})") from error
    return array


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W) luminance with the ITU-R BT.601 weights; (H, W) is returned as is."""
    if image.ndim == 2:
        return image
    return image[..., :3] @ np.array([0.299, 0.587, 0.114])

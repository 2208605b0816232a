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

    The pixels come from :func:`antlers.io.images.prepare_image` (EXIF orientation applied,
    8-bit by its policy). Images larger than ``max_side`` on their longer side are shrunk,
    keeping the aspect ratio (the NumPy convolution is for looking, not for 24-megapixel
    photos). A missing or unreadable file raises ValueError naming the file and the problem.
    """
    from antlers.io.images import prepare_image

    size = None if max_side is None else (max_side, max_side)
    return np.asarray(prepare_image(path, 3, size, resize="shrink"), dtype=np.float64) / 255.0


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W) luminance with the ITU-R BT.601 weights; (H, W) is returned as is."""
    if image.ndim == 2:
        return image
    return image[..., :3] @ np.array([0.299, 0.587, 0.114])

"""The Convolution view's arithmetic: ``antlers.conv.conv2d`` (NumPy) on what the page sends.

The grid mode sends the image and the kernel as lists of rows; the answer is the output grid,
float64 as NumPy computes it (the page shows it rounded). The photo mode applies the kernel to
a bundled photo or an uploaded image in grey and answers both pictures, the output mapped to
grey by its own range. Sizes are limited (``MAX_GRID``, ``MAX_KERNEL``, ``MAX_PHOTO_SIDE``)
so that a request cannot ask for unbounded work; ValueError names the limit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from antlers.serve.pictures import png_url, scaled

__all__ = ["MAX_GRID", "MAX_KERNEL", "conv_grid", "conv_photo", "lecture_defaults"]

MAX_GRID = 32  # rows and columns of the grid mode's image
MAX_KERNEL = 9  # rows and columns of a kernel
MAX_STEP = 8  # stride and padding
MAX_PHOTO_SIDE = 512  # the photo mode shrinks longer sides to this


def lecture_defaults() -> dict[str, Any]:
    """The lecture's 5x6 image, every named kernel (rows) and the default one."""
    from antlers.conv import KERNELS, lecture_image

    return {
        "image": lecture_image().tolist(),
        "kernels": {name: k.tolist() for name, k in KERNELS.items()},
        "default": "vertical_line",
    }


def _matrix(rows: Any, what: str, limit: int) -> np.ndarray:
    try:
        array = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a list of rows of numbers") from None
    if array.ndim != 2 or not 1 <= array.shape[0] <= limit or not 1 <= array.shape[1] <= limit:
        raise ValueError(f"{what} must be 1 to {limit} rows of 1 to {limit} numbers each")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} must hold finite numbers")
    return array


def _check_steps(stride: int, padding: int) -> None:
    if not 1 <= stride <= MAX_STEP:
        raise ValueError(f"stride must be 1 to {MAX_STEP}, got {stride}")
    if not 0 <= padding <= MAX_STEP:
        raise ValueError(f"padding must be 0 to {MAX_STEP}, got {padding}")


def conv_grid(image: Any, kernel: Any, stride: int = 1, padding: int = 0) -> list[list[float]]:
    """``conv2d(image, kernel, stride=stride, padding=padding)`` as rows of floats."""
    from antlers.conv import conv2d

    _check_steps(stride, padding)
    x = _matrix(image, "image", MAX_GRID)
    w = _matrix(kernel, "kernel", MAX_KERNEL)
    return conv2d(x, w, stride=stride, padding=padding).tolist()


def conv_photo(
    picture: Any, kernel: Any, stride: int = 1, padding: int = 0
) -> dict[str, str | list[int]]:
    """The kernel over ``picture`` (a PIL image, or a bundled photo's name) in grey:
    {"input", "output": PNG data URLs, "shape": the output's [H, W]}."""
    from antlers.conv import conv2d
    from antlers.io.images import prepare_image
    from antlers.io.photos import sample_photo

    _check_steps(stride, padding)
    w = _matrix(kernel, "kernel", MAX_KERNEL)
    if isinstance(picture, str):
        rgb = np.round(sample_photo(picture) * 255).astype(np.uint8)
        from PIL import Image

        picture = Image.fromarray(rgb)
    side = (MAX_PHOTO_SIDE, MAX_PHOTO_SIDE)
    grey = np.asarray(prepare_image(picture, 1, side, resize="shrink"), dtype=np.float64) / 255
    out = conv2d(grey, w, stride=stride, padding=padding)
    return {
        "input": png_url(np.round(grey * 255).astype(np.uint8)),
        "output": png_url(scaled(out)),
        "shape": list(out.shape),
    }

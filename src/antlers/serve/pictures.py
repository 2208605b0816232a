"""Pictures for the browser: PNG data URLs (``data:image/png;base64,...``) that an ``<img>`` or
a canvas shows as they are, so every view's answer is one JSON object."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

__all__ = ["png_url", "scaled", "tensor_url"]


def png_url(pixels: np.ndarray) -> str:
    """uint8 pixels (H, W) grey or (H, W, 3) RGB as a PNG data URL."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def scaled(values: np.ndarray) -> np.ndarray:
    """Any real array mapped to uint8 by its own range (min -> 0, max -> 255; flat -> 128)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        return np.full(values.shape, 128, dtype=np.uint8)
    return np.round((values - low) / (high - low) * 255).astype(np.uint8)


def tensor_url(image: Any) -> str:
    """A tensor image (C, H, W), C in 1 or 3, floats in [0, 1] or uint8, as a PNG data URL."""
    from antlers.viz.images import to_uint8

    pixels = to_uint8(image.detach().cpu()).permute(1, 2, 0).numpy()
    return png_url(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)

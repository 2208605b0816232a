"""The judge of a caption run: does an image show what its caption says? GenEval's rules (Ghosh
et al. 2023) on the captioned world, with a detector that knows nothing of the generator.

Finding the objects (``find_objects``): every pixel takes the nearest of the world's colours
(the background's or an object colour's, named or ``UNNAMED``; object pixels farther than
``MAX_DISTANCE`` from every object colour count as background), each object colour's
connected components (4-neighbour, scipy.ndimage.label) of at least ``MIN_AREA`` of the image
are objects, and a rule-based shape classifier names each one from its mask alone
(``classify_shape``: a triangle's top half holds a third of its bottom half's pixels; a square
fills the corners of its box, a circle not).
``validate_shapes`` checks it on the renderer's own single-object images before it is trusted.

The rules (``judge``), as GenEval's ``evaluate``: for each noun phrase, the first ``count``
objects of its shape and colour (largest first) must exist; for "A <relation> B" every such A
must stand in that relation to every such B, by box centres with GenEval's thresholds
(``relative_position``); a counting prompt also fails when there are count + 1 objects of
its shape. A prompt type's score is the mean over its images; overall is the mean of the types'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from antlers.data.captions import (
    BACKGROUND,
    COLOURS,
    UNNAMED,
    UNSEEN,
    Caption,
    Thing,
    all_captions,
    parse_caption,
    render_captions,
)

__all__ = [
    "Found",
    "classify_shape",
    "find_objects",
    "judge",
    "relative_position",
    "score_images",
    "validate_shapes",
]

MAX_DISTANCE = 90.0  # RGB distance from an object colour beyond which a pixel is background
MIN_AREA = 0.01  # smallest object, as a fraction of the image's pixels
POSITION_THRESHOLD = 0.1  # GenEval: box sizes discount the centres' offset by this fraction
PALETTE = np.array([BACKGROUND, *COLOURS.values(), *UNNAMED.values()], dtype=np.float32)  # (K, 3)
COLOUR_NAMES = (None, *COLOURS, *UNNAMED)


@dataclass(frozen=True)
class Found:
    """An object found in an image: its colour, its shape (None: no known shape), its box
    (x0, y0, x1, y1) in pixel edges (x1, y1 exclusive) and its area in pixels."""

    colour: str
    shape: str | None
    box: tuple[int, int, int, int]
    area: int


def classify_shape(mask: np.ndarray) -> str | None:
    """The shape of a boolean mask cropped to its box (h, w); None when it is far from square."""
    h, w = mask.shape
    if max(h, w) > 1.6 * min(h, w):
        return None
    top, bottom = mask[: h // 2].sum(), mask[h - h // 2 :].sum()
    if top < 0.6 * bottom:
        return "triangle"
    c = max(1, round(0.2 * min(h, w)))  # the box's corners: a square fills them, a circle not
    corners = np.concatenate([mask[:c, :c], mask[:c, -c:], mask[-c:, :c], mask[-c:, -c:]])
    return "square" if corners.mean() > 0.5 else "circle"


def find_objects(image: np.ndarray) -> list[Found]:
    """The objects of a uint8 RGB image (3, H, W), largest first."""
    pixels = image.transpose(1, 2, 0).astype(np.float32)  # (H, W, 3)
    distance = np.linalg.norm(pixels[:, :, None, :] - PALETTE, axis=-1)  # (H, W, K)
    nearest = distance.argmin(-1)
    nearest[distance.min(-1) > MAX_DISTANCE] = 0
    min_area = MIN_AREA * nearest.size
    found = []
    for k in range(1, len(PALETTE)):
        components, _ = ndimage.label(nearest == k)
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            mask = components[box] == index
            if mask.sum() >= min_area:
                rows, cols = box
                xyxy = (cols.start, rows.start, cols.stop, rows.stop)
                found.append(Found(COLOUR_NAMES[k], classify_shape(mask), xyxy, int(mask.sum())))
    return sorted(found, key=lambda f: -f.area)


def relative_position(a: Found, b: Found) -> set[str]:
    """Where ``a`` is relative to ``b`` (GenEval's ``relative_position``): the offset of the box
    centres, each axis shortened by 0.1 of the two boxes' summed sizes, divided by the offset's
    length; beyond 0.5 along an axis gives "left of" / "right of" / "above" / "below"."""
    boxes = np.array([a.box, b.box], dtype=np.float64).reshape(2, 2, 2)
    centre_a, centre_b = boxes.mean(axis=1)
    size_a, size_b = boxes[:, 1] - boxes[:, 0]
    offset = centre_a - centre_b
    revised = np.maximum(np.abs(offset) - POSITION_THRESHOLD * (size_a + size_b), 0)
    revised *= np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    names = (
        ("left of", dx < -0.5),
        ("right of", dx > 0.5),
        ("above", dy < -0.5),
        ("below", dy > 0.5),
    )
    return {name for name, holds in names if holds}


def _matches(objects: list[Found], thing: Thing) -> list[Found]:
    return [o for o in objects if o.shape == thing.shape and thing.colour in (None, o.colour)]


def judge(image: np.ndarray, caption: Caption | str) -> bool:
    """Whether the uint8 RGB image (3, H, W) shows ``caption`` by GenEval's rules (see above)."""
    caption = parse_caption(caption) if isinstance(caption, str) else caption
    objects = find_objects(image)
    groups = [_matches(objects, thing)[: thing.count] for thing in caption.things]
    if any(len(g) < thing.count for g, thing in zip(groups, caption.things, strict=True)):
        return False
    if caption.relation:
        pairs = [(a, b) for a in groups[0] for b in groups[1]]
        if not all(caption.relation in relative_position(a, b) for a, b in pairs):
            return False
    if caption.kind == "counting":
        thing = caption.things[0]
        return sum(o.shape == thing.shape for o in objects) < thing.count + 1
    return True


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] or uint8 -> uint8 NumPy."""
    if images.dtype != torch.uint8:
        images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return images.numpy()


def score_images(images: Tensor, captions: Sequence[str]) -> dict[str, float]:
    """Each prompt type's score (mean over its images), ``overall`` (the types' mean) and
    ``count``, for images (N, 3, H, W) and their captions."""
    pixels = to_uint8(images)
    by_kind: dict[str, list[bool]] = {}
    for image, text in zip(pixels, captions, strict=True):
        caption = parse_caption(text)
        by_kind.setdefault(caption.kind, []).append(judge(image, caption))
    scores = {kind: float(np.mean(right)) for kind, right in by_kind.items()}
    return {**scores, "overall": float(np.mean(list(scores.values()))), "count": len(captions)}


def validate_shapes(size: int = 32, per_pair: int = 20, seed: int = 0) -> float:
    """The shape classifier's accuracy on the renderer's single-object images of every
    colour-shape pair (the unseen ones included)."""
    singles = [c for c in all_captions() if c.kind == "counting" and c.things[0].count == 1]
    captions = [c for c in singles for _ in range(per_pair)]
    images = render_captions(captions, size, seed, UNSEEN).numpy()
    right = 0
    for image, caption in zip(images, captions, strict=True):
        found = find_objects(image)
        right += len(found) == 1 and found[0].shape == caption.things[0].shape
    return right / len(captions)

"""`scenes`: the built-in detection set, several objects per image on a cluttered background.

Each image (S x S, default 128) holds 1 to 5 objects: coloured shapes (circle, square, triangle,
cross, star, ring, drawn by ``antlers.data.shapes``) and, when the Fashion-MNIST files are on this
machine (never downloaded here), four clearly different Fashion-MNIST items (trouser, dress,
sneaker, bag) tinted in a colour. Objects vary in scale (about 0.14 S to 0.4 S), may overlap
(box IoU up to 0.3; later objects are drawn over earlier ones, boxes stay whole), and lie on
textured backgrounds with line-segment clutter.

Deterministic: one generator seeded with (seed, split); train and test draw different Fashion-MNIST
images (its own train / test splits). Boxes are xyxy pixel edges of the drawn object (its mask,
coverage >= 0.5), labels index ``classes``.
"""

from __future__ import annotations

import numpy as np
import torch

from antlers.data.boxset import DetectionSet
from antlers.data.shapes import (
    SHAPE_CLASSES,
    _draw_clutter,
    contrasting_colours,
    render_backgrounds,
    shape_coverage,
)

__all__ = ["FASHION_ITEMS", "load_object_scenes", "scene_classes"]

DEFAULT_SIZE = 128
DEFAULT_COUNTS = {"train": 3000, "test": 300}
SPLIT_STREAMS = {"train": 0, "test": 1}
FASHION_ITEMS = {"trouser": 1, "dress": 3, "sneaker": 7, "bag": 8}  # name -> Fashion-MNIST label
MAX_OBJECTS = 5
MAX_IOU = 0.3  # a new object may overlap earlier ones up to this box IoU
CHUNK = 256  # backgrounds rendered at once


def _fashion_items(split: str) -> dict[int, np.ndarray] | None:
    """Fashion-MNIST images (n, 28, 28) per chosen label, or None when its files are not here."""
    from antlers.data.fetch import DatasetNotFoundError
    from antlers.data.mnist import FASHION_MNIST, load_idx_dataset

    try:
        data = load_idx_dataset(
            FASHION_MNIST, split, data_dir=None, download=False, image_size=None
        )
    except DatasetNotFoundError:
        return None
    images, labels = data.images[:, 0].numpy(), data.labels.numpy()
    return {k: images[labels == label] for k, label in enumerate(FASHION_ITEMS.values())}


def scene_classes(fashion: bool) -> tuple[str, ...]:
    return SHAPE_CLASSES + (tuple(FASHION_ITEMS) if fashion else ())


def _iou(box: np.ndarray, boxes: list[np.ndarray]) -> float:
    """The largest IoU of ``box`` with any of ``boxes`` (xyxy)."""
    best = 0.0
    for other in boxes:
        w = min(box[2], other[2]) - max(box[0], other[0])
        h = min(box[3], other[3]) - max(box[1], other[1])
        if w > 0 and h > 0:
            inter = w * h
            union = np.prod(box[2:] - box[:2]) + np.prod(other[2:] - other[:2]) - inter
            best = max(best, inter / union)
    return best


def _shape_patch(
    rng: np.random.Generator, kind: str, size: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """Coverage (h, w) of one shape of random radius and rotation, with its patch size."""
    radius = float(rng.uniform(0.07, 0.2) * size)
    side = int(np.ceil(2 * radius)) + 3
    centre = side / 2
    x = (np.arange(side, dtype=np.float32) + 0.5)[None, :]
    y = (np.arange(side, dtype=np.float32) + 0.5)[:, None]
    angle = np.float32(rng.uniform(0, 2 * np.pi))
    return shape_coverage(kind, x, y, centre, centre, np.float32(radius), angle), (side, side)


def _fashion_patch(rng: np.random.Generator, items: np.ndarray, size: int) -> np.ndarray:
    """Coverage (h, w) of one Fashion-MNIST item: its intensity, cropped and scaled."""
    item = items[rng.integers(len(items))]
    rows, cols = np.flatnonzero(item.max(1) > 20), np.flatnonzero(item.max(0) > 20)
    crop = item[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / 255
    scale = rng.uniform(0.18, 0.4) * size / max(crop.shape)
    h, w = (max(4, round(s * scale)) for s in crop.shape)
    tensor = torch.from_numpy(crop)[None, None]
    resized = torch.nn.functional.interpolate(tensor, (h, w), mode="bilinear", antialias=True)
    return np.clip(resized[0, 0].numpy() * 1.6, 0, 1)


def _place(
    rng: np.random.Generator, coverage: np.ndarray, size: int, boxes: list[np.ndarray]
) -> tuple[int, int, np.ndarray] | None:
    """A top-left corner for the patch whose mask box overlaps ``boxes`` by <= MAX_IOU, or None."""
    mask = coverage >= 0.5
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    h, w = coverage.shape
    for _ in range(20):
        top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        box = np.array(
            [left + cols[0], top + rows[0], left + cols[-1] + 1, top + rows[-1] + 1],
            dtype=np.float32,
        )
        if _iou(box, boxes) <= MAX_IOU:
            return int(top), int(left), box
    return None


def _render_scene(
    rng: np.random.Generator,
    canvas: np.ndarray,
    fashion: dict[int, np.ndarray] | None,
    n_classes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw 1..MAX_OBJECTS objects into canvas (S, S, 3) in place; returns boxes and labels."""
    size = canvas.shape[0]
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    for _ in range(rng.integers(1, MAX_OBJECTS + 1)):
        label = int(rng.integers(n_classes))
        if label < len(SHAPE_CLASSES):
            coverage, _ = _shape_patch(rng, SHAPE_CLASSES[label], size)
        else:
            coverage = _fashion_patch(rng, fashion[label - len(SHAPE_CLASSES)], size)
        if max(coverage.shape) > size:
            continue
        placed = _place(rng, coverage, size, boxes)
        if placed is None:
            continue
        top, left, box = placed
        h, w = coverage.shape
        region = canvas[top : top + h, left : left + w]
        colour = contrasting_colours(rng, region[None])[0]
        alpha = coverage[..., None]
        region[:] = region * (1 - alpha) + colour * alpha
        boxes.append(box)
        labels.append(label)
    return np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64)


def _backgrounds(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """n cluttered backgrounds (n, S, S, 3): textures and line segments drawn at half
    resolution and enlarged 2x (four times faster; the texture just gets coarser)."""
    half = (size + 1) // 2
    canvas = render_backgrounds(rng, n, half, half)
    _draw_clutter(rng, canvas, segments=4)
    canvas = canvas.repeat(2, axis=1).repeat(2, axis=2)[:, :size, :size]
    return np.ascontiguousarray(canvas)


def load_object_scenes(
    split: str = "train",
    *,
    image_size: int | None = None,
    seed: int = 0,
    n: int | None = None,
    fashion: bool | None = None,
) -> DetectionSet:
    """The ``scenes`` detection set: n images (default 3000 train / 300 test), S x S (S = 128).

    fashion: include the Fashion-MNIST items (True: they must be installed; None: when they are).
    """
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be one of {list(SPLIT_STREAMS)}, got {split!r}")
    size = image_size or DEFAULT_SIZE
    if size < 48:
        raise ValueError(f"scenes need image_size >= 48 pixels, got {size}")
    count = DEFAULT_COUNTS[split] if n is None else n
    items = _fashion_items(split) if fashion in (None, True) else None
    if fashion and items is None:
        raise ValueError("scenes with fashion=True need the Fashion-MNIST files on this machine")
    classes = scene_classes(items is not None)
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split], 6])
    images = np.empty((count, 3, size, size), dtype=np.uint8)
    boxes, labels = [], []
    for start in range(0, count, CHUNK):
        canvas = _backgrounds(rng, min(CHUNK, count - start), size)
        for i, image in enumerate(canvas):
            b, lab = _render_scene(rng, image, items, len(classes))
            boxes.append(torch.from_numpy(b))
            labels.append(torch.from_numpy(lab))
            images[start + i] = (image * 255 + 0.5).astype(np.uint8).transpose(2, 0, 1)
    return DetectionSet(torch.from_numpy(images), boxes, labels, classes, "scenes")

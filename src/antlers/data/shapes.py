"""`shapes`: the built-in procedural image set, fully offline and deterministic from a seed.

Each classification image is one shape (circle, square, triangle, cross, star, ring) of random
colour, size, position and rotation, drawn over a textured background (noise, a colour gradient
or stripes) with distractor clutter (thin line segments, which look like no class).

Drawing is vectorized with NumPy: each shape is a signed distance function (SDF, in pixels,
negative inside) evaluated at pixel centres (x + 0.5, y + 0.5); coverage = clip(0.5 - sdf, 0, 1)
gives one pixel of anti-aliasing. `shape_coverage` and `draw_shape` are the building blocks for
scenes with boxes and masks (detection, segmentation).

Conventions: colours are floats in [0, 1]; images come out uint8 (N, 3, S, S); boxes are
xyxy pixel edges (x0, y0, x1, y1) with x1, y1 exclusive.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from antlers.data.imageset import ImageSet

__all__ = [
    "SHAPE_CLASSES",
    "draw_shape",
    "generate_shapes",
    "load_shapes",
    "render_backgrounds",
    "shape_coverage",
]

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star", "ring")
DEFAULT_IMAGE_SIZE = 32
DEFAULT_COUNTS = {"train": 10000, "test": 2000}
SPLIT_STREAMS = {"train": 0, "test": 1}
PIXEL_BUDGET = 1_000_000  # pixels rendered per chunk, bounds memory
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

Array = np.ndarray
Sdf = Callable[[Array, Array, Array], Array]


def _sdf_circle(u: Array, v: Array, r: Array) -> Array:
    return np.hypot(u, v) - r


def _sdf_ring(u: Array, v: Array, r: Array) -> Array:
    return np.abs(np.hypot(u, v) - 0.72 * r) - 0.26 * r


def _sdf_regular_polygon(u: Array, v: Array, r: Array, sides: int) -> Array:
    """Regular polygon with circumradius r: the largest distance past any edge line."""
    apothem = r * np.cos(np.pi / sides)
    angles = 2 * np.pi * np.arange(sides) / sides
    return np.max([u * np.cos(a) + v * np.sin(a) for a in angles], axis=0) - apothem


def _sdf_square(u: Array, v: Array, r: Array) -> Array:
    return _sdf_regular_polygon(u, v, r, 4)


def _sdf_triangle(u: Array, v: Array, r: Array) -> Array:
    return _sdf_regular_polygon(u, v, 1.1 * r, 3)


def _sdf_box(u: Array, v: Array, half_w: Array, half_h: Array) -> Array:
    qx, qy = np.abs(u) - half_w, np.abs(v) - half_h
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _sdf_cross(u: Array, v: Array, r: Array) -> Array:
    return np.minimum(_sdf_box(u, v, r, 0.3 * r), _sdf_box(u, v, 0.3 * r, r))


def _sdf_star(u: Array, v: Array, r: Array, points: int = 5, inner: float = 0.45) -> Array:
    """Star: fold the angle into half a sector, then distance past the tip-to-notch edge line."""
    half = np.pi / points
    t = np.mod(np.arctan2(v, u), 2 * half)
    t = np.minimum(t, 2 * half - t)
    rho = np.hypot(u, v)
    edge = np.array([inner * np.cos(half) - 1.0, inner * np.sin(half)])
    normal = np.array([edge[1], -edge[0]]) / np.hypot(*edge)  # outward, unit
    return rho * (np.cos(t) * normal[0] + np.sin(t) * normal[1]) - r * normal[0]


SDFS: dict[str, Sdf] = {
    "circle": _sdf_circle,
    "square": _sdf_square,
    "triangle": _sdf_triangle,
    "cross": _sdf_cross,
    "star": _sdf_star,
    "ring": _sdf_ring,
}


def shape_coverage(
    kind: str, x: Array, y: Array, cx: Array, cy: Array, radius: Array, angle: Array
) -> Array:
    """Anti-aliased coverage in [0, 1] of shape `kind` at points (x, y); all arguments broadcast.

    radius: the shape's outer size in pixels (about its circumradius); angle: rotation in radians.
    E.g. x (1, 1, W), y (1, H, 1) and parameters (n, 1, 1) give coverage (n, H, W).
    """
    if kind not in SDFS:
        raise ValueError(f"unknown shape {kind!r}; allowed: {list(SDFS)}")
    dx, dy = x - cx, y - cy
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * dx + sin * dy, cos * dy - sin * dx
    return np.clip(0.5 - SDFS[kind](u, v, radius), 0.0, 1.0).astype(np.float32)


def draw_shape(
    kind: str, height: int, width: int, cx: float, cy: float, radius: float, angle: float
) -> tuple[Array, Array, Array]:
    """One shape on an (height, width) canvas: (coverage float32 (H, W), mask bool (H, W), box).

    mask = coverage >= 0.5 (the segmentation mask); box: float32 (4,) xyxy pixel edges of the
    mask (all zeros when the mask is empty).
    """
    x, y = _pixel_centres(height, width)
    coverage = shape_coverage(kind, x[0], y[0], cx, cy, radius, angle)
    mask = coverage >= 0.5
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = np.zeros(4, dtype=np.float32)
    if rows.size:
        box[:] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return coverage, mask, box


def _pixel_centres(height: int, width: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates x (1, 1, W) and y (1, H, 1), float32."""
    x = (np.arange(width, dtype=np.float32) + 0.5).reshape(1, 1, width)
    y = (np.arange(height, dtype=np.float32) + 0.5).reshape(1, height, 1)
    return x, y


def _uniform(
    rng: np.random.Generator, low: float | Array, high: float | Array, shape: tuple
) -> Array:
    """Uniform float32 samples (float32 keeps the big per-pixel arrays fast)."""
    return rng.uniform(low, high, size=shape).astype(np.float32)


def render_backgrounds(rng: np.random.Generator, n: int, height: int, width: int) -> Array:
    """n textured backgrounds, float32 (n, H, W, 3) in [0, 1].

    Each is a random base colour plus one texture: pixel noise, a linear gradient to a second
    colour, or sinusoidal stripes; every one gets faint noise on top.
    """
    x, y = _pixel_centres(height, width)
    base = _uniform(rng, 0.15, 0.85, (n, 1, 1, 3))
    tint = _uniform(rng, -0.2, 0.2, (n, 1, 1, 3))
    kind = rng.integers(0, 3, size=(n, 1, 1))  # 0 noise, 1 gradient, 2 stripes
    angle = _uniform(rng, 0, 2 * np.pi, (n, 1, 1))
    cycles = _uniform(rng, 2.0, 6.0, (n, 1, 1))
    phase = _uniform(rng, 0, 2 * np.pi, (n, 1, 1))
    noise_amp = np.where(kind == 0, _uniform(rng, 0.06, 0.14, (n, 1, 1)), np.float32(0.02))
    along = (x - width / 2) * np.cos(angle) + (y - height / 2) * np.sin(angle)
    along /= max(height, width)  # (n, H, W), about -0.7..0.7
    stripes = np.sin(2 * np.pi * cycles * along + phase)
    texture = np.where(kind == 1, 2 * along, np.where(kind == 2, stripes, 0)).astype(np.float32)
    noise = rng.standard_normal((n, height, width), dtype=np.float32) * noise_amp
    return np.clip(base + texture[..., None] * tint + noise[..., None], 0.0, 1.0)


def contrasting_colours(rng: np.random.Generator, backgrounds: Array) -> Array:
    """Random colours (n, 3) whose luminance differs from each background's mean by 0.3 to 0.5."""
    n = len(backgrounds)
    background_luma = backgrounds.mean(axis=(1, 2)) @ LUMA
    colour = _uniform(rng, 0.0, 1.0, (n, 3))
    direction = np.where(background_luma < 0.5, 1.0, -1.0).astype(np.float32)
    target = background_luma + direction * _uniform(rng, 0.3, 0.5, (n,))
    return np.clip(colour + (target - colour @ LUMA)[:, None], 0.0, 1.0)


def _draw_clutter(rng: np.random.Generator, canvas: Array, segments: int = 2) -> None:
    """Draw 0..`segments` thin line segments of random colour into canvas (n, H, W, 3), in place."""
    n, height, width, _ = canvas.shape
    x, y = _pixel_centres(height, width)
    count = rng.integers(0, segments + 1, size=n)
    span = max(height, width)
    for k in range(segments):
        x0, y0 = _uniform(rng, 0, width, (n, 1, 1)), _uniform(rng, 0, height, (n, 1, 1))
        dx, dy = _uniform(rng, -0.4 * span, 0.4 * span, (2, n, 1, 1))
        half_width = _uniform(rng, 0.3, 0.6, (n, 1, 1))
        colour = _uniform(rng, 0, 1, (n, 1, 1, 3))
        i = np.flatnonzero(count > k)  # the images that get a k-th segment
        px, py, dx, dy = x - x0[i], y - y0[i], dx[i], dy[i]
        t = np.clip((px * dx + py * dy) / (dx * dx + dy * dy + 1e-6), 0, 1)
        distance = np.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2) - half_width[i]
        alpha = (np.clip(0.5 - distance, 0, 1) * np.float32(0.7))[..., None]
        canvas[i] = canvas[i] * (1 - alpha) + alpha * colour[i]


def _render_chunk(rng: np.random.Generator, labels: Array, size: int) -> Array:
    """Images uint8 (n, 3, size, size), one shape of class labels[i] in image i."""
    n = len(labels)
    canvas = render_backgrounds(rng, n, size, size)
    _draw_clutter(rng, canvas)
    colour = contrasting_colours(rng, canvas)
    radius = _uniform(rng, 0.22, 0.4, (n,)) * size
    cx = _uniform(rng, radius + 1, size - radius - 1, (n,))
    cy = _uniform(rng, radius + 1, size - radius - 1, (n,))
    angle = _uniform(rng, 0, 2 * np.pi, (n,))
    x, y = _pixel_centres(size, size)
    coverage = np.zeros((n, size, size), dtype=np.float32)
    for k, kind in enumerate(SHAPE_CLASSES):
        i = np.flatnonzero(labels == k)
        params = [p[i].reshape(-1, 1, 1) for p in (cx, cy, radius, angle)]
        coverage[i] = shape_coverage(kind, x, y, *params)
    alpha = coverage[..., None]
    image = canvas * (1 - alpha) + colour[:, None, None, :] * alpha
    return (image * 255 + 0.5).astype(np.uint8).transpose(0, 3, 1, 2)


def generate_shapes(n: int, image_size: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """n images uint8 (n, 3, S, S) and labels int64 (n,); classes balanced (n mod 6 aside)."""
    if n <= 0 or image_size <= 0:
        raise ValueError(f"n and image_size must be positive integers, got {n} and {image_size}")
    labels = rng.permutation(np.arange(n) % len(SHAPE_CLASSES)).astype(np.int64)
    images = np.empty((n, 3, image_size, image_size), dtype=np.uint8)
    chunk = max(1, PIXEL_BUDGET // (image_size * image_size))
    for start in range(0, n, chunk):
        images[start : start + chunk] = _render_chunk(
            rng, labels[start : start + chunk], image_size
        )
    return images, labels


def load_shapes(
    split: str = "train", *, image_size: int | None = None, seed: int = 0, n: int | None = None
) -> ImageSet:
    """The shapes classification set: n (default 10000 train / 2000 test) RGB images, S x S.

    S = image_size or 32. Deterministic: the generator is seeded with (seed, split), so train and
    test come from different streams.
    """
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be one of {list(SPLIT_STREAMS)}, got {split!r}")
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split]])
    count = DEFAULT_COUNTS[split] if n is None else n
    size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
    images, labels = generate_shapes(count, size, rng)
    return ImageSet.from_arrays(images, labels, SHAPE_CLASSES, "shapes")

"""`scenes`: built-in street scenes for semantic segmentation, a class id for every pixel.

Each image is a one-point-perspective street, drawn with NumPy over a whole batch at once:

1. sky (class ``unlabelled``) with a vertical gradient and soft clouds, above a random horizon;
2. the road, a trapezoid converging to a random vanishing point, with dashed lane markings;
3. sidewalks beside it (sometimes only one), tiled;
4. facades on both sides standing on the sidewalks' outer edges: blocks of random height whose
   rooflines converge to the vanishing point, with perspective windows (or a block of trees);
5. sometimes a fence along a sidewalk, with slats;
6. objects sorted far to near (painter's algorithm, so near ones occlude far ones): vehicles
   on the road (body, cabin, dark windows and wheels), poles and trees on the sidewalks, each
   sized by its distance;
7. lighting: a global gain and colour cast, a cast shadow over part of the scene, sensor noise.

Colours are random per image with overlapping ranges (a green car, a grey facade next to a grey
road, a sky as grey as the sidewalk), so the class of a pixel follows from shape, position,
texture and context, not from its colour alone. Edges are hard (no anti-aliasing), so the label
map is exactly what the image shows.

Conventions: images uint8 (N, 3, H, W); masks uint8 (N, H, W) holding class ids (255 would be
"ignore"; the built-in scenes label every pixel). Deterministic from ``(seed, split)``.
"""

from __future__ import annotations

import numpy as np
import torch

from antlers.data.segset import SegmentationSet

__all__ = ["SCENE_CLASSES", "generate_scenes", "load_street_scenes"]

SCENE_CLASSES = (
    "unlabelled",
    "road",
    "sidewalk",
    "building",
    "fence",
    "pole",
    "vegetation",
    "vehicle",
)
SKY, ROAD, SIDEWALK, BUILDING, FENCE, POLE, VEGETATION, VEHICLE = range(8)
DEFAULT_IMAGE_SIZE = 64
DEFAULT_COUNTS = {"train": 4000, "test": 500}
SPLIT_STREAMS = {"train": 10, "test": 11}  # other streams than the shapes set's
PIXEL_BUDGET = 1_000_000  # pixels rendered per chunk, bounds memory
OBJECTS = 7  # objects (vehicles, poles, trees) per scene, some of them not drawn

Array = np.ndarray


def _u(rng: np.random.Generator, low: float, high: float, n: int) -> Array:
    """n uniform float32 samples shaped (n, 1, 1), to broadcast over (n, H, W)."""
    return rng.uniform(low, high, size=(n, 1, 1)).astype(np.float32)


def _hsv(rng: np.random.Generator, n: int, hue: tuple, sat: tuple, val: tuple) -> Array:
    """n random colours (n, 1, 1, 3) in [0, 1] from HSV ranges (hue in turns, may wrap)."""
    h = rng.uniform(*hue, size=n) % 1.0
    s, v = rng.uniform(*sat, size=n), rng.uniform(*val, size=n)
    k = (np.array([5.0, 3.0, 1.0]) + h[:, None] * 6) % 6
    rgb = v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1)
    return rgb.reshape(n, 1, 1, 3).astype(np.float32)


def _blotches(rng: np.random.Generator, n: int, h: int, w: int, cells: int) -> Array:
    """Smooth random noise (n, H, W) in about [-1, 1]: a coarse grid upsampled bilinearly."""
    grid = torch.from_numpy(rng.standard_normal((n, 1, cells, cells), dtype=np.float32))
    smooth = torch.nn.functional.interpolate(grid, size=(h, w), mode="bilinear")
    return smooth[:, 0].numpy().clip(-2, 2) / 2


def _paint(image: Array, labels: Array, where: Array, colour: Array, cls: int) -> None:
    """Set pixels ``where`` (n, H, W) to ``colour`` (broadcasts to (n, H, W, 3)), class ``cls``."""
    i, y, x = np.nonzero(where)  # only the painted pixels are touched: objects are small
    image[i, y, x] = np.broadcast_to(colour, image.shape)[i, y, x]
    labels[i, y, x] = cls


class _Street:
    """The geometry of n streets: horizon, vanishing point, road and sidewalk edges.

    ``t`` = (y - horizon) / (H - horizon) is 0 at the horizon and 1 at the bottom row; at depth
    t, a line from the vanishing point to bottom position b is at x = vx + t (b - vx).
    """

    def __init__(self, rng: np.random.Generator, n: int, h: int, w: int):
        self.h, self.w = h, w
        self.x = (np.arange(w, dtype=np.float32) + 0.5).reshape(1, 1, w)
        self.y = (np.arange(h, dtype=np.float32) + 0.5).reshape(1, h, 1)
        self.horizon = _u(rng, 0.3, 0.5, n) * h
        self.vx = _u(rng, 0.3, 0.7, n) * w
        self.road_left = self.vx + _u(rng, -1.4, -0.25, n) * w  # bottom-row x of the road edges
        self.road_right = self.vx + _u(rng, 0.25, 1.4, n) * w
        self.walk_left = self.road_left - _u(rng, 0.15, 0.6, n) * w * (rng.random((n, 1, 1)) > 0.1)
        self.walk_right = self.road_right + _u(rng, 0.15, 0.6, n) * w * (
            rng.random((n, 1, 1)) > 0.1
        )
        self.t = (self.y - self.horizon) / (h - self.horizon)  # (n, H, 1)

    def edge(self, bottom: Array) -> Array:
        """x of the line from the vanishing point to ``bottom`` (bottom-row x) at each row."""
        return self.vx + self.t * (bottom - self.vx)


def _sky(rng: np.random.Generator, s: _Street, n: int) -> Array:
    top = _hsv(rng, n, (0.5, 0.7), (0.0, 0.7), (0.45, 1.0))
    low = _hsv(rng, n, (0.0, 1.0), (0.0, 0.4), (0.55, 1.0))
    a = np.clip(s.y / s.horizon, 0, 1)[..., None]
    clouds = (
        np.clip(_blotches(rng, n, s.h, s.w, 4), 0, 1)[..., None] * _u(rng, 0, 0.8, n)[..., None]
    )
    sky = top * (1 - a) + low * a
    return sky * (1 - clouds) + clouds * 0.92


def _ground(rng: np.random.Generator, s: _Street, image: Array, labels: Array) -> None:
    """Road with lane markings, and the sidewalks, below the horizon."""
    n = len(image)
    below = s.t > 0
    left, right = s.edge(s.road_left), s.edge(s.road_right)
    road = below & (s.x >= left) & (s.x < right)
    asphalt = _hsv(rng, n, (0, 1), (0, 0.15), (0.2, 0.6))
    grain = 1 + 0.12 * rng.standard_normal((n, s.h, s.w), dtype=np.float32)[..., None]
    _paint(image, labels, road, asphalt * grain, ROAD)
    centre = s.edge((s.road_left + s.road_right) / 2)
    depth = 1 / np.maximum(s.t, 1e-3)  # distance along the street, up to scale
    dashes = (np.sin(depth * _u(rng, 1.5, 3.0, n)) > 0) & (rng.random((n, 1, 1)) < 0.7)
    marking = road & dashes & (np.abs(s.x - centre) < 0.012 * s.w * (1 + 3 * s.t))
    image[marking] = 0.9
    walk = below & ~road & (s.x >= s.edge(s.walk_left)) & (s.x < s.edge(s.walk_right))
    paving = _hsv(rng, n, (0, 1), (0, 0.3), (0.35, 0.85))
    tiles = (np.sin(depth * _u(rng, 4, 8, n)) > 0.85)[..., None]
    _paint(image, labels, walk, paving * (1 - 0.25 * tiles), SIDEWALK)


def _pick(values: Array, block: Array) -> Array:
    """values (n, blocks) looked up at each column's block index (n, 1, W) -> (n, 1, W)."""
    return np.take_along_axis(values[:, None, :], block, axis=2)


def _facades(
    rng: np.random.Generator, s: _Street, image: Array, labels: Array, leaves: Array
) -> None:
    """Blocks of buildings (or trees) on both sides, on the sidewalks' outer edges."""
    n, blocks = len(image), 5
    for side, outer in ((-1, s.walk_left), (1, s.walk_right)):
        away = side * (s.x - s.vx)  # > 0 on this side of the vanishing point, (n, 1, W)
        ground = s.horizon + (s.h - s.horizon) * away / np.abs(outer - s.vx)  # row of the base
        cuts = np.sort(rng.uniform(0, 1, (n, blocks - 1)), axis=1) * s.w * 0.7
        block = (away[:, 0, :, None] > cuts[:, None, :]).sum(-1)[:, None, :]  # (n, 1, W)
        slope = _pick(rng.uniform(0.15, 1.6, (n, blocks)).astype(np.float32), block)
        is_tree = _pick(rng.random((n, blocks)) < 0.2, block)
        roof = s.horizon - slope * away
        facade = (away > 0) & (s.y >= roof) & (s.y < ground)
        wall = _hsv(rng, n * blocks, (0, 1), (0, 0.6), (0.3, 0.95)).reshape(n, 1, blocks, 3)
        colour = np.take_along_axis(wall, block[..., None], axis=2)
        # windows on a grid in the facade's own coordinates: depth 1/away, height (y-h)/away
        a = s.w / np.maximum(away, 1e-3)
        b = (s.y - s.horizon) / np.maximum(away, 1e-3)
        columns = np.sin(a * 2 * np.pi * _u(rng, 0.6, 1.2, n)) > 0.2
        rows = np.sin(b * 2 * np.pi * _u(rng, 2, 5, n)) > 0
        windows = (columns & rows & (away > 0.04 * s.w))[..., None]
        glass = _hsv(rng, n, (0.5, 0.7), (0, 0.5), (0.05, 0.9))
        colour = np.where(windows, glass, colour)
        building = facade & ~is_tree
        _paint(image, labels, building, colour, BUILDING)
        _paint(image, labels, facade & is_tree, leaves, VEGETATION)
        if_fence = rng.random((n, 1, 1)) < 0.6
        height = _u(rng, 0.15, 0.4, n) * (ground - s.horizon)
        span = (away > _u(rng, 0, 0.3, n) * s.w) & (away < _u(rng, 0.4, 1.0, n) * s.w)
        fence = if_fence & span & (s.y >= ground - height) & (s.y < ground) & (away > 0)
        wood = _hsv(rng, n, (0.0, 0.6), (0.1, 0.7), (0.25, 0.8))
        slats = (np.sin(a * 2 * np.pi * _u(rng, 3, 6, n)) > 0.6)[..., None]
        _paint(image, labels, fence, wood * (1 - 0.3 * slats), FENCE)


def _foliage(rng: np.random.Generator, n: int, h: int, w: int) -> Array:
    """Leafy texture (n, H, W, 3): greens to autumn browns, blotchy, with fine grain."""
    colour = _hsv(rng, n, (0.08, 0.42), (0.3, 0.9), (0.25, 0.75))
    shade = 1 + 0.3 * _blotches(rng, n, h, w, max(4, w // 6))
    grain = 1 + 0.1 * rng.standard_normal((n, h, w), dtype=np.float32)
    return colour * (shade * grain)[..., None]


def _objects(
    rng: np.random.Generator, s: _Street, image: Array, labels: Array, leaves: Array
) -> None:
    """Vehicles, poles and trees, far to near, each scaled by its depth."""
    n = len(image)
    kind = rng.choice(4, size=(n, OBJECTS), p=[0.35, 0.3, 0.2, 0.15])  # 3: none
    depth = np.sort(rng.uniform(0.08, 1.1, (n, OBJECTS)), axis=1).astype(np.float32)
    for k in range(OBJECTS):
        t = depth[:, k].reshape(n, 1, 1)
        base = s.horizon + t * (s.h - s.horizon)  # the row the object stands on
        side = np.where(rng.random((n, 1, 1)) < 0.5, s.road_left, s.road_right)
        along = _u(rng, 0.15, 0.85, n)
        road_x = s.vx + t * (s.road_left + along * (s.road_right - s.road_left) - s.vx)
        walk_x = s.vx + t * (side + 0.3 * np.sign(side - s.vx) * s.w * _u(rng, 0.1, 0.6, n) - s.vx)
        scale = t * s.w
        car = _vehicle(rng, s, road_x, base, scale)
        pole = (
            (np.abs(s.x - walk_x) < np.maximum(0.05 * scale, 1.0))
            & (s.y < base)
            & (s.y >= base - _u(rng, 0.7, 1.4, n) * scale)
        )
        trunk = (np.abs(s.x - walk_x) < np.maximum(0.03 * scale, 0.6)) & (s.y < base)
        crown_y = base - _u(rng, 0.45, 0.8, n) * scale
        crown = ((s.x - walk_x) / _u(rng, 0.15, 0.3, n)) ** 2 + ((s.y - crown_y) / 0.22) ** 2
        tree = (trunk & (s.y >= crown_y)) | (crown < (scale**2))
        metal = _hsv(rng, n, (0, 1), (0, 0.3), (0.1, 0.8))
        paint = _hsv(rng, n, (0, 1), (0, 1), (0.15, 0.95))
        which = kind[:, k].reshape(n, 1, 1)
        is_car = which == 0
        _paint(image, labels, car[0] & is_car, paint, VEHICLE)
        image[car[1] & is_car] *= 0.3  # the rear window, darker than the paint
        image[car[2] & is_car] = 0.06  # tyres
        _paint(image, labels, pole & (which == 1), metal, POLE)
        _paint(image, labels, tree & (which == 2), leaves, VEGETATION)


def _vehicle(
    rng: np.random.Generator, s: _Street, cx: Array, base: Array, scale: Array
) -> tuple[Array, Array, Array]:
    """A car seen from behind: masks (n, H, W) of the whole car, its rear window, its wheels."""
    n = len(cx)
    half = _u(rng, 0.12, 0.2, n) * scale
    body_h = _u(rng, 0.12, 0.18, n) * scale
    cabin_h = _u(rng, 0.06, 0.14, n) * scale
    dx, up = np.abs(s.x - cx), base - s.y
    wheels = (dx > 0.55 * half) & (dx < 0.9 * half) & (up >= 0) & (up < 0.3 * body_h)
    body = (dx < half) & (up >= 0.2 * body_h) & (up < body_h)
    taper = 0.8 - 0.3 * (up - body_h) / np.maximum(cabin_h, 1e-3)
    cabin = (dx < half * taper) & (up >= body_h) & (up < body_h + cabin_h)
    return wheels | body | cabin, cabin & (dx < 0.65 * half), wheels


def _lighting(rng: np.random.Generator, s: _Street, image: Array) -> Array:
    """Gain and colour cast, a cast shadow (a half-plane, 60% of scenes), sensor noise."""
    n = len(image)
    gain = _u(rng, 0.6, 1.25, n)[..., None] * _u(rng, 0.85, 1.15, n * 3).reshape(n, 1, 1, 3)
    angle = _u(rng, 0, 2 * np.pi, n)
    offset = (s.x - _u(rng, 0, 1, n) * s.w) * np.cos(angle) + (s.y - s.horizon) * np.sin(angle)
    shadow = (offset > 0) & (rng.random((n, 1, 1)) < 0.6)
    dark = np.where(shadow, _u(rng, 0.45, 0.8, n), 1)[..., None]
    noise = rng.standard_normal(image.shape, dtype=np.float32) * _u(rng, 0.01, 0.05, n)[..., None]
    return np.clip(image * gain * dark + noise, 0, 1)


def _render_chunk(rng: np.random.Generator, n: int, h: int, w: int) -> tuple[Array, Array]:
    s = _Street(rng, n, h, w)
    image = np.empty((n, h, w, 3), dtype=np.float32)
    image[:] = _sky(rng, s, n)
    labels = np.full((n, h, w), SKY, dtype=np.uint8)
    _ground(rng, s, image, labels)
    leaves = _foliage(rng, n, h, w)
    _facades(rng, s, image, labels, leaves)
    _objects(rng, s, image, labels, leaves)
    image = _lighting(rng, s, image)
    return (image * 255 + 0.5).astype(np.uint8).transpose(0, 3, 1, 2), labels


def generate_scenes(
    n: int, height: int, width: int, rng: np.random.Generator
) -> tuple[Array, Array]:
    """n scenes: images uint8 (n, 3, H, W) and masks uint8 (n, H, W) of SCENE_CLASSES ids."""
    if n <= 0 or height <= 0 or width <= 0:
        raise ValueError(f"n, height and width must be positive, got {n}, {height}, {width}")
    images = np.empty((n, 3, height, width), dtype=np.uint8)
    masks = np.empty((n, height, width), dtype=np.uint8)
    chunk = max(1, PIXEL_BUDGET // (height * width))
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        images[start : start + count], masks[start : start + count] = _render_chunk(
            rng, count, height, width
        )
    return images, masks


def load_street_scenes(
    split: str = "train", *, image_size: int | None = None, seed: int = 0, n: int | None = None
) -> SegmentationSet:
    """The scenes set: n (default 4000 train / 500 test) street scenes, S x S (default 64).

    Deterministic: the generator is seeded with (seed, split); train and test are different
    streams, so no test scene is a training scene.
    """
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be one of {list(SPLIT_STREAMS)}, got {split!r}")
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split]])
    size = image_size or DEFAULT_IMAGE_SIZE
    images, masks = generate_scenes(n or DEFAULT_COUNTS[split], size, size, rng)
    return SegmentationSet(
        torch.from_numpy(images), torch.from_numpy(masks), SCENE_CLASSES, "scenes"
    )

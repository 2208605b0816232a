"""`captions`: a built-in captioned world, rendered from its captions (fully offline, seeded).

Each RGB image (32 x 32 by default) holds one or two flat-coloured objects on a uniform grey
background that is none of the object colours. Captions come from a small grammar of six
prompt types, GenEval's on this world ("a red circle", "two yellow squares", "a green triangle
above a blue circle": ``caption_grammar.py``, re-exported here).

Uncoloured objects get a random colour: one of the four named ones or one of ``UNNAMED``, five
colours the vocabulary has no word for, so every shape is seen in many colours and colour does
not predict shape (aimed at the held-out pairs: docs/experiments/caption-recipe.md). The
``held_out`` split holds the colour-shape pairs of ``HELD_OUT`` (never drawn in the other
splits, not even as the random colour of an uncoloured object), so a judge can measure
composition rather than memory; the ``held_out_val`` split holds ``HELD_OUT_VAL``, a pair kept
out the same way for choices that must not look at the held-out split (the guidance scale,
``caption_eval.py``).

Rendering: hard-edged masks at pixel centres (x + 0.5, y + 0.5), so every object pixel has its
colour's exact value. Every object spans a box of 2r x 2r (r in ``RADIUS`` times the image size);
two objects' boxes are at least ``GAP`` apart. For "A <relation> B" the offset between the
centres lies mostly along the relation's axis (the other component at most 0.3 of it), which
GenEval's box-centre rule reads as that relation and no other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from antlers.data.caption_grammar import (
    COLOURS,
    PROMPT_TYPES,
    RELATIONS,
    SHAPES,
    VOCABULARY,
    Caption,
    Thing,
    all_captions,
    canonical,
    parse_caption,
)

__all__ = [
    "BACKGROUND",
    "COLOURS",
    "HELD_OUT",
    "HELD_OUT_VAL",
    "MIX",
    "PROMPT_TYPES",
    "RELATIONS",
    "SHAPES",
    "UNNAMED",
    "UNSEEN",
    "VOCABULARY",
    "Caption",
    "CaptionSet",
    "Thing",
    "all_captions",
    "canonical",
    "captions_naming",
    "load_captions",
    "parse_caption",
    "render_captions",
    "sample_captions",
]

# Colours without a word, for uncoloured objects only: each at least 100 (RGB distance) from
# every other colour and from the background, so the judge's nearest-colour rule tells them apart.
UNNAMED: dict[str, tuple[int, int, int]] = {
    "purple": (150, 60, 200),
    "cyan": (40, 200, 210),
    "pink": (240, 120, 180),
    "white": (240, 240, 240),
    "black": (30, 30, 30),
}
BACKGROUND = (128, 128, 128)
Pair = tuple[str, str]  # (colour, shape)
HELD_OUT: tuple[Pair, ...] = (("blue", "triangle"), ("yellow", "circle"))  # composition's test
HELD_OUT_VAL: tuple[Pair, ...] = (("green", "square"),)  # composition's validation
UNSEEN = HELD_OUT + HELD_OUT_VAL  # never drawn in train, val or test (each shape loses one colour)
SPLITS = {"train": 0, "val": 1, "test": 2, "held_out": 3, "held_out_val": 4}  # -> random stream
PAIRS = {"held_out": HELD_OUT, "held_out_val": HELD_OUT_VAL}  # the splits that name unseen pairs
# Each prompt type's share of a split's captions (relative weights): relations and attribute
# binding, the hardest to learn, are drawn more often (docs/experiments/caption-recipe.md).
MIX = {"single_object": 1, "two_object": 1, "counting": 1, "colors": 1, "position": 3,
       "color_attr": 2}  # fmt: skip
DEFAULT_COUNTS = {"train": 20000, "val": 1000, "test": 1000, "held_out": 1000, "held_out_val": 1000}
RADIUS = (0.14, 0.2)  # half the box side, as a fraction of the image size
GAP = 2.0  # pixels between two objects' boxes, at least


def captions_naming(pairs: Sequence[Pair] = ()) -> list[Caption]:
    """The grammar's distinct captions that name no ``UNSEEN`` pair (``pairs`` empty: in
    distribution), or that name at least one of ``pairs`` and no other unseen pair."""
    chosen = []
    for caption in {str(c): c for c in all_captions()}.values():
        named = {(t.colour, t.shape) for t in caption.things} & set(UNSEEN)
        if named <= set(pairs) and bool(named) == bool(pairs):
            chosen.append(caption)
    return chosen


def sample_captions(rng: np.random.Generator, n: int, pairs: Sequence[Pair] = ()) -> list[Caption]:
    """``n`` captions of ``captions_naming(pairs)``: a prompt type with the odds of ``MIX``
    (among the types that have such captions), then uniformly among its captions."""
    by_kind: dict[str, list[Caption]] = {}
    for caption in captions_naming(pairs):
        by_kind.setdefault(caption.kind, []).append(caption)
    kinds = [k for k in PROMPT_TYPES if k in by_kind]
    odds = np.array([MIX[k] for k in kinds], dtype=float)
    chosen = rng.choice(len(kinds), n, p=odds / odds.sum())
    return [by_kind[kinds[k]][rng.integers(0, len(by_kind[kinds[k]]))] for k in chosen]


def _colours_for(rng: np.random.Generator, caption: Caption, pairs: Sequence[Pair]) -> list[str]:
    """The colour of each object drawn for ``caption``: as named, else random among the named
    colours that make no unseen pair with its shape (unless the pair is in ``pairs``) and the
    ``UNNAMED`` ones."""
    colours, barred = [], set(UNSEEN) - set(pairs)
    for thing in caption.things:
        allowed = [c for c in COLOURS if (c, thing.shape) not in barred]
        allowed += list(UNNAMED)
        colour = thing.colour or allowed[rng.integers(0, len(allowed))]
        colours += [colour] * thing.count
    return colours


def _place(rng: np.random.Generator, caption: Caption, size: int) -> np.ndarray:
    """(k, 3) rows (cx, cy, r) in pixels for the caption's k objects (see the module docstring)."""
    k = sum(t.count for t in caption.things)
    r = rng.uniform(*RADIUS, k) * size
    lo, hi = r + 1, size - 1 - r
    if caption.relation:  # along the relation's axis, A then B; the other axis within 0.3 d
        d = rng.uniform(r.sum() + GAP, hi[1] - lo[0])
        a = rng.uniform(lo[0], hi[1] - d)
        along = np.array([a, a + d])
        cross_a = rng.uniform(lo[0], hi[0])
        cross_b = np.clip(cross_a + rng.uniform(-0.3, 0.3) * d, lo[1], hi[1])
        across = np.array([cross_a, cross_b])
        if caption.relation in ("right of", "below"):
            along = along[::-1].copy()
        xy = (along, across) if caption.relation in ("left of", "right of") else (across, along)
        return np.stack([*xy, r], axis=1)
    low, span, apart = lo[:, None], (hi - lo)[:, None], r.sum() + GAP
    for _ in range(1000):  # rng.uniform(lo, hi, (k, 2)), drawn alike, without its array checks
        centres = low + span * rng.random((k, 2))
        if k == 1 or abs(centres[0] - centres[1]).max() >= apart:
            return np.column_stack([centres, r])
    raise RuntimeError("could not place two objects apart")  # unreachable at these sizes


def _masks(objects: np.ndarray, shapes: np.ndarray, size: int) -> np.ndarray:
    """Boolean masks (M, S, S) of M objects (cx, cy, r) with shape indices into SHAPES."""
    centres = np.arange(size) + 0.5
    u = centres[None, None, :] - objects[:, 0, None, None]
    v = centres[None, :, None] - objects[:, 1, None, None]
    r = objects[:, 2, None, None]
    circle = u**2 + v**2 <= r**2
    square = np.maximum(np.abs(u), np.abs(v)) <= r
    triangle = (np.abs(v) <= r) & (np.abs(u) <= (v + r) / 2)  # apex up, base at the bottom
    return np.choose(shapes[:, None, None], [circle, square, triangle])


def render_captions(
    captions: list[Caption], size: int = 32, seed: int = 0, pairs: Sequence[Pair] = ()
) -> torch.Tensor:
    """uint8 images (N, 3, S, S) of ``captions``; an uncoloured object's random colour may make
    one of ``pairs`` (no other unseen pair). The same arguments always give the same images."""
    rng = np.random.default_rng(seed)
    objects, shapes, colours, image, slot = [], [], [], [], []
    for i, caption in enumerate(captions):
        placed = _place(rng, caption, size)
        objects.append(placed)
        colours += [COLOURS.get(c) or UNNAMED[c] for c in _colours_for(rng, caption, pairs)]
        shapes += [SHAPES.index(t.shape) for t in caption.things for _ in range(t.count)]
        image += [i] * len(placed)
        slot += range(len(placed))
    canvas = np.empty((len(captions), size, size, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    if captions:
        rows, kinds, rgb = np.concatenate(objects), np.array(shapes), np.array(colours, np.uint8)
        image_of, slot_of = np.array(image), np.array(slot)
        for s in (0, 1):  # one object per image at a time; an image's objects never overlap
            for chunk in np.array_split(np.flatnonzero(slot_of == s), len(rows) // 4096 + 1):
                masks = _masks(rows[chunk], kinds[chunk], size)[..., None]
                target = image_of[chunk]
                canvas[target] = np.where(masks, rgb[chunk, None, None, :], canvas[target])
    return torch.from_numpy(canvas).permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True, eq=False)
class CaptionSet:
    """Images uint8 (N, 3, S, S) and their captions (N texts); ``name`` is the split's."""

    images: torch.Tensor
    captions: tuple[str, ...]
    name: str

    def __len__(self) -> int:
        return len(self.captions)


def load_captions(
    split: str = "train", n: int | None = None, image_size: int | None = None, seed: int = 0
) -> CaptionSet:
    """One split of the captioned world: "train", "val", "test" (in-distribution, each its own
    random stream of ``seed``), "held_out" or "held_out_val" (``PAIRS``); ``n`` images
    (``DEFAULT_COUNTS`` when None)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    size = image_size or 32
    if size < 24:  # below, the judge cannot tell the shapes apart reliably
        raise ValueError(f"captions: image_size must be at least 24, got {size}")
    rng = np.random.default_rng([seed, SPLITS[split]])
    pairs = PAIRS.get(split, ())
    captions = sample_captions(rng, DEFAULT_COUNTS[split] if n is None else n, pairs)
    images = render_captions(captions, size, int(rng.integers(2**31)), pairs)
    return CaptionSet(images, tuple(str(c) for c in captions), f"captions-{split}")

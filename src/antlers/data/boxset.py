"""`DetectionSet`: a detection dataset, the one type every detection reader returns.

Conventions: images uint8 (N, 3, S, S) (every image resized to one square size S), in memory
or, read through the decoded cache, memory-mapped and picked by ``rows``; per image a
float32 tensor of boxes (n_i, 4) in xyxy pixel coordinates of the resized image and an int64
tensor of labels (n_i,) in [0, K). A sample is ``{"image": float (3, S, S) in [0, 1], "boxes",
"labels"}``. ``clamp_boxes`` is how every reader treats boxes partly outside their image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

__all__ = ["BoxCounts", "DetectionSet", "clamp_boxes"]

MIN_SIDE = 1.0  # pixels: a box narrower or lower than this after clamping is dropped


@dataclass
class BoxCounts:
    """How many boxes a reader kept, clamped to the image, and dropped (outside it)."""

    kept: int = 0
    clamped: int = 0
    dropped: int = 0

    def text(self, source: str) -> str:
        return (
            f"{source}: {self.kept} boxes, {self.clamped} clamped to their image, "
            f"{self.dropped} dropped (outside it)"
        )


def clamp_boxes(
    boxes: Tensor, labels: Tensor, height: float, width: float, counts: BoxCounts
) -> tuple[Tensor, Tensor]:
    """Clamp xyxy ``boxes`` (n, 4) to the image; drop those left under MIN_SIDE; count both.
    (In NumPy: a reader calls it once per image, and torch's per-call cost would dominate.)"""
    original = boxes.numpy()
    clamped = original.copy()
    np.clip(clamped[:, 0::2], 0, width, out=clamped[:, 0::2])
    np.clip(clamped[:, 1::2], 0, height, out=clamped[:, 1::2])
    keep = ((clamped[:, 2] - clamped[:, 0]) >= MIN_SIDE) & (
        (clamped[:, 3] - clamped[:, 1]) >= MIN_SIDE
    )
    changed = (clamped != original).any(axis=1)
    counts.clamped += int((changed & keep).sum())
    counts.dropped += int((~keep).sum())
    counts.kept += int(keep.sum())
    return torch.from_numpy(clamped[keep]), labels[torch.from_numpy(keep)]


@dataclass(frozen=True, eq=False)
class DetectionSet:
    """Images with boxes and labels.

    Attributes:
        images: uint8 (N, 3, S, S) in memory, or with ``rows`` (int64 (N,)) every image of a
            decoded cache, memory-mapped (M, 3, S, S), of which image i is ``images[rows[i]]``
            (subsets then pick rows and copy no pixels). ``pick`` reads images either way.
        boxes: N float32 tensors (n_i, 4), xyxy pixels of the (resized) image.
        labels: N int64 tensors (n_i,), each in [0, len(classes)).
        classes: class names; label k means ``classes[k]``.
        name: the dataset's name ("scenes", a file's name, ...).
        category_ids: the source's category id of each class (COCO), else 0..K-1.
        files: each image's source file (empty for built-in sets).
        sizes: each image's original (height, width) in pixels.
        notes: what the reader changed (clamped / dropped boxes), one line each.
        skipped: the entries a reader left out (``antlers.data.skips``), one line each.
    """

    images: Tensor
    boxes: list[Tensor]
    labels: list[Tensor]
    classes: tuple[str, ...]
    name: str
    category_ids: tuple[int, ...] = ()
    files: tuple[str, ...] = ()
    sizes: tuple[tuple[int, int], ...] = ()
    notes: tuple[str, ...] = field(default=())
    skipped: tuple[str, ...] = ()
    rows: Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"{self.name}: images must be uint8 (N, 3, S, S), "
                f"got {self.images.dtype} {tuple(self.images.shape)}"
            )
        n = len(self)
        if len(self.boxes) != n or len(self.labels) != n:
            raise ValueError(
                f"{self.name}: {n} images but {len(self.boxes)} box lists and "
                f"{len(self.labels)} label lists"
            )
        if not self.category_ids:
            object.__setattr__(self, "category_ids", tuple(range(len(self.classes))))
        if not self.sizes:
            size = (int(self.images.shape[2]), int(self.images.shape[3]))
            object.__setattr__(self, "sizes", (size,) * n)

    def __len__(self) -> int:
        return len(self.images) if self.rows is None else len(self.rows)

    def pick(self, index: Tensor) -> Tensor:
        """The uint8 images (B, 3, S, S) of the samples at ``index`` (int64 (B,))."""
        return self.images[index if self.rows is None else self.rows[index]]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {
            "image": self.pick(torch.tensor([i]))[0].float() / 255,
            "boxes": self.boxes[i],
            "labels": self.labels[i],
        }

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, index: list[int], name: str | None = None) -> DetectionSet:
        """The images at ``index`` (a split), with their boxes, labels, files and sizes (rows
        picked, no pixel copied, when the set has rows)."""
        picked = torch.as_tensor(index, dtype=torch.long)
        return DetectionSet(
            images=self.images if self.rows is not None else self.images[picked],
            boxes=[self.boxes[i] for i in index],
            labels=[self.labels[i] for i in index],
            classes=self.classes,
            name=name or self.name,
            category_ids=self.category_ids,
            files=tuple(self.files[i] for i in index) if self.files else (),
            sizes=tuple(self.sizes[i] for i in index),
            notes=self.notes,
            skipped=self.skipped,
            rows=None if self.rows is None else self.rows[picked],
        )

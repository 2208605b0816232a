"""`Annotations`: a detection dataset on disk, read but not yet loaded: image files with their boxes
in the images' own pixels. The COCO and YOLO readers return it; ``to_set`` loads and resizes the
images into a DetectionSet, ``antlers convert`` writes it in the other format.

Shared checks: an image path must stay inside the dataset folder (no "..", no absolute path, no
link out of it), and must be an image that ``antlers.io.images.open_image`` reads; a bad entry
goes to the reader's ``Skips`` (``antlers.data.skips``: skipped and counted, or refused when
strict), kept in ``skips`` and listed in the DetectionSet's ``skipped``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from antlers.data.boxset import BoxCounts, DetectionSet, clamp_boxes
from antlers.data.skips import DataError, Skips
from antlers.io.images import ImageError, open_image, to_8bit

__all__ = ["Annotations", "image_size", "inside_root", "outside", "read_rgb"]


def inside_root(root: Path, name: str, source: Path, where: str) -> Path:
    """``root / name``, which must not escape ``root``; DataError names the file and entry."""
    if "\x00" in name:
        raise DataError(f"{source}: {where}: file name {name!r} holds a NUL character")
    if Path(name).is_absolute():
        raise DataError(f"{source}: {where}: file name {name!r} is absolute; it must be relative")
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise DataError(f"{source}: {where}: file name {name!r} escapes the dataset folder {root}")
    return path


def read_rgb(path: Path, source: Path, where: str) -> np.ndarray:
    """The image at ``path`` as uint8 (H, W, 3); a file open_image refuses: DataError."""
    try:
        return np.asarray(to_8bit(open_image(path)).convert("RGB"))
    except ImageError as error:
        raise DataError(f"{source}: {where}: {error}") from None


def image_size(
    path: Path, source: Path, where: str, skips: Skips, n_boxes: int | None = None
) -> tuple[int, int] | None:
    """(height, width) of the image file, read in full; None (skipped) if it is refused."""
    try:
        width, height = open_image(path).size
    except ImageError as error:
        lost = "" if n_boxes is None else f" (its {n_boxes} box(es) left out)"
        skips.skip(where, f"{source}: {where}: {error}{lost}")
        return None
    return height, width


def outside(box: list[float], size: tuple[int, int]) -> bool:
    """Whether the xyxy ``box`` lies wholly outside an image of ``size`` (height, width)."""
    x0, y0, x1, y1 = box
    return x0 >= size[1] or y0 >= size[0] or x1 <= 0 or y1 <= 0


@dataclass
class Annotations:
    """Image files with their boxes (xyxy, the image's own pixels) and labels in [0, K)."""

    source: Path  # the COCO JSON file or YOLO folder
    root: Path  # image paths are relative to it
    files: list[Path]  # absolute, inside root
    sizes: list[tuple[int, int]]  # (height, width) of each image
    boxes: list[Tensor]  # float32 (n_i, 4), clamped to the image
    labels: list[Tensor]  # int64 (n_i,)
    classes: tuple[str, ...]
    category_ids: tuple[int, ...]  # the source's id of each class
    counts: BoxCounts
    skips: Skips = field(default_factory=Skips)  # the entries left out, and the policy

    def add(self, file: Path, size: tuple[int, int], boxes: Tensor, labels: Tensor) -> None:
        """Record one image; its boxes are clamped to it and those outside it dropped."""
        boxes, labels = clamp_boxes(boxes, labels, size[0], size[1], self.counts)
        self.files.append(file)
        self.sizes.append(size)
        self.boxes.append(boxes)
        self.labels.append(labels)

    def to_set(self, image_size: int) -> DetectionSet:
        """Load every image, resize it to image_size x image_size and scale its boxes."""
        images = torch.empty((len(self.files), 3, image_size, image_size), dtype=torch.uint8)
        boxes = []
        for i, (file, (h, w)) in enumerate(zip(self.files, self.sizes, strict=True)):
            array = torch.from_numpy(read_rgb(file, self.source, f"image {file.name}").copy())
            picture = array.permute(2, 0, 1)[None].float()
            resized = torch.nn.functional.interpolate(
                picture, (image_size, image_size), mode="bilinear", antialias=True
            )
            images[i] = resized[0].round().clamp(0, 255).to(torch.uint8)
            scale = torch.tensor([image_size / w, image_size / h] * 2)
            boxes.append(self.boxes[i] * scale)
        return DetectionSet(
            images=images,
            boxes=boxes,
            labels=list(self.labels),
            classes=self.classes,
            name=self.source.name,
            category_ids=self.category_ids,
            files=tuple(str(f) for f in self.files),
            sizes=tuple(self.sizes),
            notes=(self.counts.text(str(self.source)),),
            skipped=self.skips.lines,
        )

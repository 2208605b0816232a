"""`Annotations`: a detection dataset on disk, read but not yet loaded: image files with their boxes
in the images' own pixels. The COCO and YOLO readers return it; ``to_set`` loads and resizes the
images into a DetectionSet, ``antlers convert`` writes it in the other format.

Shared checks: an image path must stay inside the dataset folder (no "..", no absolute path, no
link out of it), and must be a readable image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from antlers.data.boxset import BoxCounts, DetectionSet, clamp_boxes

__all__ = ["Annotations", "inside_root", "read_rgb"]


def inside_root(root: Path, name: str, source: Path, where: str) -> Path:
    """``root / name``, which must not escape ``root``; ValueError names the file and entry."""
    if Path(name).is_absolute():
        raise ValueError(f"{source}: {where}: file name {name!r} is absolute; it must be relative")
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"{source}: {where}: file name {name!r} escapes the dataset folder {root}")
    return path


def read_rgb(path: Path, source: Path, where: str) -> np.ndarray:
    """The image at ``path`` as uint8 (H, W, 3); a missing or unreadable file: ValueError."""
    from PIL import Image, UnidentifiedImageError

    from antlers.io.images import to_8bit

    if not path.is_file():
        raise ValueError(f"{source}: {where}: image file not found: {path}")
    try:
        with Image.open(path) as image:
            return np.asarray(to_8bit(image).convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"{source}: {where}: cannot read {path} as an image ({error})") from None


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
        )

"""Streaming a COCO file or YOLO folder: each training image decoded from its file at every
epoch, at full resolution, and cropped with its boxes (``--stream``; ``antlers.engine.stream``
does the same for class folders and holds the shared pieces).

Sample i of epoch e: the image file as the readers decode it before their stretch (RGB,
EXIF-upright, 8-bit; a large JPEG possibly at a half, quarter or eighth of its size, never
below what the smallest crop needs), its boxes scaled from the S x S stretched image back to
the decoded pixels, then one transforms.v2 pipeline on a ``tv_tensors.Image`` and
``tv_tensors.BoundingBoxes``: a random resized crop to S x S (``CROP_SCALE`` of the area, half
of it at least, so that most objects stay in the picture; ``CROP_RATIO``), the boxes clamped to
the crop and those left under ``MIN_SIDE`` pixels dropped with their labels
(``SanitizeBoundingBoxes``), and with ``flip`` a left-right mirror of all. The crop and the
mirror are drawn from torch's generator seeded by (seed, e, i) (``engine.stream.seeded``), so
a batch does not depend on the number of workers. An image that can no longer be read gives
its cached S x S row and boxes, unaugmented; the epoch's count of them is one warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from antlers.data.boxset import MIN_SIDE, DetectionSet
from antlers.engine.loader import EpochBatches
from antlers.engine.stream import CROP_RATIO, read_full, seeded, unstreamable, worker_batches
from antlers.io.images import ImageError

__all__ = ["CROP_SCALE", "BoxSamples", "DetectStreamLoader", "collate"]

CROP_SCALE = (0.5, 1.0)  # of the image's area: smaller crops cut too many objects in two

Sample = tuple[Tensor, Tensor, Tensor, int, bool]


class BoxSamples(Dataset):
    """Sample ``(epoch, i)``: image i of ``data`` decoded from its file and cropped with its
    boxes, as (uint8 (3, S, S), float32 boxes (n, 4) xyxy pixels of the crop, int64 labels
    (n,), i, whether the file could be read)."""

    def __init__(self, loader: DetectStreamLoader) -> None:
        self.data, self.seed = loader.data, loader.seed
        size = self.data.image_size
        crop = v2.RandomResizedCrop(size, scale=CROP_SCALE, ratio=CROP_RATIO, antialias=True)
        steps = [crop, v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=MIN_SIDE)]
        self.transform = v2.Compose([*steps, *([v2.RandomHorizontalFlip()] if loader.flip else [])])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        epoch, i = key
        data, size = self.data, self.data.image_size
        try:
            image = read_full(data.files[i], 3, size, CROP_SCALE[0])
        except ImageError:
            return data.pick(torch.tensor([i]))[0], data.boxes[i], data.labels[i], i, False
        h, w = image.shape[-2:]  # the file's size, or a JPEG's decoded fraction of it
        boxes = tv_tensors.BoundingBoxes(
            data.boxes[i] * torch.tensor([w / size, h / size] * 2),
            format="XYXY",
            canvas_size=(h, w),
        )
        target = {"boxes": boxes, "labels": data.labels[i]}
        with seeded(self.seed, epoch, i):
            image, target = self.transform(tv_tensors.Image(image), target)
        boxes = target["boxes"].as_subclass(Tensor)
        return image.as_subclass(Tensor), boxes, target["labels"], i, True


def collate(samples: list[Sample]) -> tuple[Tensor, list[Tensor], list[Tensor], Tensor, Tensor]:
    """Samples as (images (B, 3, S, S), B boxes, B labels, index (B,), read (B,)): the boxes and
    labels stay lists, one tensor per image."""
    images, boxes, labels, index, read = zip(*samples, strict=True)
    return torch.stack(images), list(boxes), list(labels), torch.tensor(index), torch.tensor(read)


@dataclass
class DetectStreamLoader(EpochBatches):
    """Training batches as ``DetectionLoader`` makes them, {"image": float (B, 3, S, S) in
    [0, 1], "boxes": B float32 (n_i, 4) xyxy pixels, "labels": B int64 (n_i,), "index": (B,)},
    decoded from ``data.files`` by ``workers`` processes (0: in this process).

    data: the DetectionSet (its S x S images are each file's fallback, its boxes those of the
    stretched images). The options: :class:`EpochBatches` (``flip``: mirror half the crops).
    """

    data: DetectionSet
    batch_size: int
    workers: int = 0

    @classmethod
    def of(
        cls, data: DetectionSet, batch_size: int, workers: int, **options: Any
    ) -> DetectStreamLoader:
        """A loader of ``data``, which must name its image files (a COCO file or YOLO folder)."""
        if not data.files:
            raise unstreamable(data.name, "the image files of a COCO file or YOLO folder")
        return cls(data, batch_size, workers, **options)

    @property
    def num_samples(self) -> int:
        return len(self.data)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, Any]]:
        """The batches of ``epoch`` from batch ``start_batch`` on (for resume)."""
        batches = worker_batches(BoxSamples(self), self, epoch, start_batch, collate_fn=collate)
        for images, boxes, labels, index, _ in batches:
            floats = images.float().div_(255)
            yield {"image": floats, "boxes": boxes, "labels": labels, "index": index}

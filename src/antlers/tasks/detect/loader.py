"""Batches of detection samples: images stacked, boxes and labels as per-image lists.

Like ``engine.loader.TensorLoader``: each epoch's order comes from DistributedSampler seeded by
(seed, epoch) and sharded by rank, and the augmentation of batch b is drawn from a generator
seeded by (seed, epoch, b, rank), so a resumed run sees exactly the batches it would have seen.
Augmentation: a random left-right flip of image and boxes together (torchvision.transforms.v2
functional ops on tv_tensors.BoundingBoxes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from antlers.data.boxset import DetectionSet
from antlers.engine.loader import EpochBatches

__all__ = ["DetectionLoader", "flip_sample"]


def flip_sample(image: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Mirror image (C, H, W) and its xyxy boxes (n, 4) left-right."""
    h, w = image.shape[-2:]
    wrapped = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w))
    return TF.horizontal_flip(image), TF.horizontal_flip(wrapped).as_subclass(Tensor)


@dataclass
class DetectionLoader(EpochBatches):
    """Iterate over a DetectionSet in batches {"image": float (B, 3, S, S) in [0, 1],
    "boxes": B tensors (n_i, 4), "labels": B tensors (n_i,), "index": (B,) dataset rows}."""

    data: DetectionSet
    batch_size: int

    @property
    def num_samples(self) -> int:
        return len(self.data)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, Any]]:
        """The batches of ``epoch`` from batch ``start_batch`` on (for resume)."""
        for b, index in self.batch_indices(epoch, start_batch):
            images = self.data.pick(index).float().div_(255)
            boxes = [self.data.boxes[i] for i in index.tolist()]
            labels = [self.data.labels[i] for i in index.tolist()]
            if self.flip:
                flips = torch.rand(len(index), generator=self.augment_generator(epoch, b))
                for i in torch.nonzero(flips < 0.5).flatten().tolist():
                    images[i], boxes[i] = flip_sample(images[i], boxes[i])
            yield {"image": images, "boxes": boxes, "labels": labels, "index": index}

"""Batches of images and masks from memory, with joint augmentation, for exact resume.

Like ``engine.loader.TensorLoader`` (whose DistributedSampler order it reuses), but every batch is
``{"image": float (B, C, H, W) in [0, 1], "mask": int64 (B, H, W)}`` and the augmentation moves
image and mask together:

* ``flip``: mirror a random half of the batch left-right (image and mask alike);
* ``crop_padding`` > 0: ``torchvision.transforms.v2.RandomCrop`` with that padding, image and
  mask as one sample (the mask a ``tv_tensors.Mask``: nearest-neighbour, padded with 255 =
  ignore, so the padding costs no loss).

The randomness of batch ``b`` of epoch ``e`` on rank ``r`` comes from a generator seeded with
``(seed, e, b, r)``, so a resumed run replays it exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from antlers.data.segset import IGNORE_INDEX
from antlers.engine.loader import TensorLoader

__all__ = ["SegmentLoader", "joint_random_crop"]


def joint_random_crop(
    images: Tensor, masks: Tensor, padding: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """v2.RandomCrop(size, padding) on each (image, mask) pair; masks padded with 255."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    size = list(images.shape[-2:])
    crop = v2.RandomCrop(size, padding=padding, fill={tv_tensors.Mask: IGNORE_INDEX, "others": 0})
    out_images, out_masks = torch.empty_like(images), torch.empty_like(masks)
    seeds = torch.randint(0, 2**31 - 1, (len(images),), generator=generator)
    with torch.random.fork_rng(devices=[]):  # v2 draws from the global RNG: seed it per sample
        for i, seed in enumerate(seeds.tolist()):
            torch.manual_seed(seed)
            image, mask = crop(tv_tensors.Image(images[i]), tv_tensors.Mask(masks[i]))
            out_images[i], out_masks[i] = image, mask
    return out_images, out_masks


@dataclass
class SegmentLoader(TensorLoader):
    """``labels`` holds the masks: uint8 (N, H, W) class ids (255 = ignore), or with ``rows``
    (M, H, W), picked by ``rows`` as ``images`` are (``TensorLoader``). ``per_class``:
    evaluating on this loader also reports each class's IoU (``antlers eval``; left out of the
    per-epoch metrics to keep metrics.csv and curves.png short)."""

    per_class: bool = False

    @classmethod
    def of(cls, data: Any, batch_size: int, **options: Any) -> SegmentLoader:
        """A loader of the SegmentationSet ``data``: its images, masks and rows."""
        return cls(data.images, data.masks, batch_size, rows=data.rows, **options)

    @property
    def num_samples(self) -> int:
        return len(self.labels) if self.rows is None else len(self.rows)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, Tensor]]:
        """The batches of ``epoch`` from ``start_batch`` on (for resume)."""
        for b, index in self.batch_indices(epoch, start_batch):
            rows = index if self.rows is None else self.rows[index]
            images, masks = self.images[rows], self.labels[rows]
            if self.crop_padding or self.flip:
                generator = self.augment_generator(epoch, b)
                if self.crop_padding:
                    images, masks = joint_random_crop(images, masks, self.crop_padding, generator)
                if self.flip:
                    mirror = torch.rand(len(images), generator=generator) < 0.5
                    images = torch.where(mirror[:, None, None, None], images.flip(-1), images)
                    masks = torch.where(mirror[:, None, None], masks.flip(-1), masks)
            yield {"image": images.float().div_(255), "mask": masks.long()}

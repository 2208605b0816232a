"""Batches from tensors held in memory: no per-sample Python, exact resume, sharded for DDP.

The whole dataset is a uint8 tensor (N, C, H, W) plus labels (N,). Each epoch's order comes from
``torch.utils.data.DistributedSampler`` (seeded by ``seed`` and the epoch; with one process it is
a plain seeded shuffle), so the order of epoch ``e`` is a pure function of ``(seed, e, rank)``:
a resumed run can skip straight to batch ``b`` of epoch ``e``. Augmentation is done on the whole
batch at once with a generator seeded by ``(seed, epoch, batch)``, for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

__all__ = [
    "TensorLoader",
    "count_batches",
    "epoch_order",
    "image_meta",
    "random_crop",
    "random_flip",
]


def epoch_order(
    n: int,
    epoch: int,
    *,
    shuffle: bool,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
) -> Tensor:
    """The sample indices of ``epoch`` for process ``rank``, as DistributedSampler orders them:
    a pure function of its arguments, which is what makes resume exact."""
    sampler = DistributedSampler(
        range(n),
        num_replicas=world_size,
        rank=rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
    )
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


def count_batches(order: Tensor, batch_size: int, drop_last: bool) -> int:
    """Batches in one epoch of ``order`` (a last partial batch counts unless ``drop_last``)."""
    n = len(order)
    return n // batch_size if drop_last else -(-n // batch_size)


def image_meta(task: str, model: str, data: str, images: Tensor, classes: list[str]) -> dict:
    """The model meta every image task saves: input shape, class names and pixel statistics
    (mean, std per channel) of the uint8 training ``images`` (N, C, H, W)."""
    pixels = images.float().div(255)
    return {
        "task": task,
        "model": model,
        "in_channels": int(images.shape[1]),
        "image_size": [int(images.shape[2]), int(images.shape[3])],
        "classes": list(classes),
        "data": data,
        "mean": pixels.mean(dim=(0, 2, 3)).tolist(),
        "std": pixels.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist(),
    }


def random_crop(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Pad (B, C, H, W) by ``padding`` zeros and crop each image back at a random offset."""
    if padding == 0:
        return images
    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b)[:, None, None, None]
    channels = torch.arange(images.shape[1])[None, :, None, None]
    return padded[batch, channels, rows, cols]


def random_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror a random half of the batch left-right."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


@dataclass
class TensorLoader:
    """Iterate over ``(images, labels)`` in batches of dicts {"image": float [0,1], "label"}.

    images: uint8 (N, C, H, W); labels: int64 (N,). ``crop_padding`` and ``flip`` turn on the
    batch-level augmentation (training only). ``rank``/``world_size`` shard each epoch as
    DistributedSampler does (padded to equal shard sizes when ``drop_last`` is False).
    """

    images: Tensor
    labels: Tensor
    batch_size: int
    shuffle: bool = False
    seed: int = 0
    crop_padding: int = 0
    flip: bool = False
    rank: int = 0
    world_size: int = 1
    drop_last: bool = False

    def _indices(self, epoch: int) -> Tensor:
        return epoch_order(
            len(self.labels),
            epoch,
            shuffle=self.shuffle,
            seed=self.seed,
            rank=self.rank,
            world_size=self.world_size,
            drop_last=self.drop_last,
        )

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def batches_per_epoch(self) -> int:
        return count_batches(self._indices(0), self.batch_size, self.drop_last)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, Tensor]]:
        """The batches of ``epoch``, starting at batch ``start_batch`` (for resume)."""
        indices = self._indices(epoch)
        for b in range(start_batch, self.batches_per_epoch()):
            index = indices[b * self.batch_size : (b + 1) * self.batch_size]
            images = self.images[index].float().div_(255)
            if self.crop_padding or self.flip:
                generator = torch.Generator().manual_seed(
                    hash((self.seed, epoch, b, self.rank)) & 0x7FFF_FFFF
                )
                images = random_crop(images, self.crop_padding, generator)
                if self.flip:
                    images = random_flip(images, generator)
            yield {"image": images, "label": self.labels[index]}

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        return self.epoch(0)

    def __len__(self) -> int:
        return self.batches_per_epoch()

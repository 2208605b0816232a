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
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

__all__ = [
    "EpochBatches",
    "TensorLoader",
    "count_batches",
    "epoch_order",
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
    a pure function of its arguments, which is what makes resume exact. A held-out loader's
    order (no ``shuffle``, no ``drop_last``) is its exact shard, rank, rank + world_size, ...,
    without DistributedSampler's padding, so that metrics pooled over the ranks count every
    sample once (detectron2's inference sampler does the same with contiguous ranges)."""
    if not shuffle and not drop_last:
        return torch.arange(rank, n, world_size)
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


def random_crop(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Pad (B, C, H, W) by ``padding`` zeros and crop each image back at a random offset."""
    if padding == 0:
        return images
    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    out = torch.empty_like(images)
    for offset in (dy * (2 * padding + 1) + dx).unique().tolist():  # at most (2p + 1)^2 slices
        y, x = divmod(offset, 2 * padding + 1)
        chosen = (dy == y) & (dx == x)
        out[chosen] = padded[chosen, :, y : y + h, x : x + w]
    return out


def random_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror a random half of the batch left-right."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


@dataclass(kw_only=True)
class EpochBatches:
    """What every loader shares: each epoch's sample order, sharded as DistributedSampler does
    (``epoch_order``), cut into batches, and one seeded generator per batch for augmentation,
    so a run resumed at any batch sees the same batches.

    The options, keyword-only: ``shuffle`` (a seeded new order every epoch), ``seed`` (of the
    order and the augmentation), ``flip`` (mirror a random half of each batch), ``rank`` and
    ``world_size`` (this process's shard), ``drop_last`` (no last partial batch; without it a
    shuffled loader's shards are padded to equal sizes, as DistributedSampler does, and a
    held-out loader's are exact). Subclasses are dataclasses
    whose own fields come first (their data, then ``batch_size``); they provide
    ``num_samples`` and define ``epoch(epoch, start_batch)``."""

    shuffle: bool = False
    seed: int = 0
    flip: bool = False
    rank: int = 0
    world_size: int = 1
    drop_last: bool = False

    def _indices(self, epoch: int) -> Tensor:
        return epoch_order(
            self.num_samples,
            epoch,
            shuffle=self.shuffle,
            seed=self.seed,
            rank=self.rank,
            world_size=self.world_size,
            drop_last=self.drop_last,
        )

    def batches_per_epoch(self) -> int:
        return count_batches(self._indices(0), self.batch_size, self.drop_last)

    def batch_indices(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[int, Tensor]]:
        """(batch number, sample indices) for the batches of ``epoch`` from ``start_batch`` on."""
        order = self._indices(epoch)
        for b in range(start_batch, count_batches(order, self.batch_size, self.drop_last)):
            yield b, order[b * self.batch_size : (b + 1) * self.batch_size]

    def augment_generator(self, epoch: int, batch: int) -> torch.Generator:
        """The random generator of one batch's augmentation: a function of (seed, epoch, batch,
        rank) only."""
        key = hash((self.seed, epoch, batch, self.rank)) & 0x7FFF_FFFF
        return torch.Generator().manual_seed(key)

    def __iter__(self) -> Iterator[Any]:
        return self.epoch(0)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return self.batches_per_epoch()


@dataclass
class TensorLoader(EpochBatches):
    """Iterate over ``(images, labels)`` in batches of dicts {"image": float [0,1], "label"}.

    images: uint8 (N, C, H, W), or with ``rows`` (int64 (N,)) uint8 (M, C, H, W) of which sample
    i is ``images[rows[i]]`` (a memory-mapped decoded cache: each batch is read from it, nothing
    else is copied); labels: int64 (N,). ``crop_padding`` and ``flip`` turn on the batch-level
    augmentation (training only); the other options: :class:`EpochBatches`.
    """

    images: Tensor
    labels: Tensor
    batch_size: int
    crop_padding: int = 0
    rows: Tensor | None = None

    @classmethod
    def of(cls, data: Any, batch_size: int, **options: Any) -> TensorLoader:
        """A loader of the ImageSet ``data``: its pixels, labels and rows."""
        return cls(data.pixels, data.labels, batch_size, rows=data.rows, **options)

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, Tensor]]:
        """The batches of ``epoch``, starting at batch ``start_batch`` (for resume)."""
        for b, index in self.batch_indices(epoch, start_batch):
            rows = index if self.rows is None else self.rows[index]
            images = self.images[rows]  # augmented as uint8: exact, and a quarter of the bytes
            if self.crop_padding or self.flip:
                generator = self.augment_generator(epoch, b)
                images = random_crop(images, self.crop_padding, generator)
                if self.flip:
                    images = random_flip(images, generator)
            yield {"image": images.float().div_(255), "label": self.labels[index]}

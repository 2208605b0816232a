"""Streaming: training batches decoded from the image files at every epoch, at full resolution,
by DataLoader worker processes.

The standard augmentation for photos crops a random region of the full-resolution image (8% to
100% of its area in torchvision's recipe; 35% to 100% here, for small training sizes), with an
aspect ratio from 3/4 to 4/3, resizes it to S x S (``RandomResizedCrop``, antialiased) and
mirrors half of them: a copy shrunk to S x S beforehand cannot give those crops. Only training
streams: the held-out splits are scored on the folder policy's S x S images (shorter side to S,
centre crop: ``antlers.data.decode``), read from the decoded cache, whose pixels and rows
(``ImageSet.pixels``, ``.rows``, ``.files``) the loader also gets.

Determinism: sample i of epoch e is augmented with torch's generator seeded by (seed, e, i), in
whichever worker decodes it, so a batch depends on the seed and the engine's order only (not on
the number of workers), and a resumed run sees the same batches. A file that can no longer be
read (changed or removed since the cache was built) gives its cached S x S image instead; the
epoch's count of them is one warning.

Mask folders and detection sets stream with the same pieces (``seeded``, ``worker_batches``,
``read_full``): ``antlers.tasks.segment.stream`` and ``antlers.tasks.detect.stream``.
"""

from __future__ import annotations

import math
import multiprocessing
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from antlers.engine.loader import EpochBatches
from antlers.io.images import ImageError, open_image, to_8bit

__all__ = [
    "CROP_RATIO",
    "CROP_SCALE",
    "FileSamples",
    "StreamLoader",
    "read_full",
    "seeded",
    "unstreamable",
    "worker_batches",
]

CROP_SCALE = (0.35, 1.0)  # of the image's area kept by a random resized crop
CROP_RATIO = (3 / 4, 4 / 3)


class FileSamples(Dataset):
    """Sample ``(epoch, i)``: image file ``files[rows[i]]`` decoded at full resolution and
    augmented, as uint8 (C, S, S), with ``labels[i]`` and whether the file could be read."""

    def __init__(self, loader: StreamLoader) -> None:
        from torchvision.transforms import v2

        self.files, self.rows, self.labels = loader.files, loader.rows, loader.labels
        self.pixels, self.seed = loader.images, loader.seed
        size = tuple(loader.images.shape[-2:])
        crop = v2.RandomResizedCrop(size, scale=CROP_SCALE, ratio=CROP_RATIO, antialias=True)
        self.transform = v2.Compose([crop, *([v2.RandomHorizontalFlip()] if loader.flip else [])])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor, bool]:
        epoch, i = key
        row = int(self.rows[i])
        try:
            image = read_full(self.files[row], self.pixels.shape[1], self.pixels.shape[-1])
        except ImageError:
            return self.pixels[row], self.labels[i], False
        with seeded(self.seed, epoch, i):
            return self.transform(image), self.labels[i], True


@contextmanager
def seeded(seed: int, epoch: int, i: int) -> Iterator[None]:
    """Within it, torch's CPU generator (which transforms.v2 draws from) is seeded by (seed,
    epoch, i): sample i of an epoch is augmented alike in any worker; the caller's generator
    is left as it was."""
    with torch.random.fork_rng(devices=[]):
        # the CPU generator only: torch.manual_seed also queues a seed for every lazy
        # accelerator backend, at a millisecond per call
        torch.default_generator.manual_seed(hash((seed, epoch, i)) & 0x7FFF_FFFF)
        yield


def read_full(
    path: str, channels: int, size: int | None = None, scale: float | None = None
) -> Tensor:
    """The image file as uint8 (C, H, W) at its own size (EXIF orientation, 8-bit, gray or RGB:
    the folder policy without the resize); with ``size``, a JPEG may be decoded smaller, as long
    as the smallest crop (``scale`` of the area, default ``CROP_SCALE[0]``) still has ``size``
    pixels on its shorter side."""
    smallest = (CROP_SCALE[0] if scale is None else scale) * CROP_RATIO[0]
    least = None if size is None else math.ceil(size / math.sqrt(smallest))
    im, mode = to_8bit(open_image(path, min_side=least)), "L" if channels == 1 else "RGB"
    im = im if im.mode == mode else im.convert(mode)  # convert copies even to the same mode
    pixels = np.array(im, dtype=np.uint8).reshape(im.height, im.width, channels)  # writable
    return torch.from_numpy(pixels).permute(2, 0, 1)


@dataclass
class StreamLoader(EpochBatches):
    """Training batches ``{"image": float (B, C, S, S) in [0, 1], "label": int64 (B,)}`` decoded
    from ``files`` by ``workers`` processes (0: in this process).

    images: uint8 (M, C, S, S), the decoded cache (the size, and each file's fallback); rows:
    int64 (N,), sample i's row of it and of ``files`` (M paths); labels: int64 (N,). The other
    options: :class:`EpochBatches` (``flip``: mirror half the crops).
    """

    images: Tensor
    labels: Tensor
    batch_size: int
    rows: Tensor
    files: tuple[str, ...]
    workers: int = 0

    @classmethod
    def of(cls, data: Any, batch_size: int, workers: int, **options: Any) -> StreamLoader:
        """A loader of the ImageSet ``data``, read through the decoded cache (``data.files``)."""
        if data.files is None or data.rows is None:
            raise unstreamable(data.name, "a class folder's files")
        return cls(data.pixels, data.labels, batch_size, data.rows, data.files, workers, **options)

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, Tensor]]:
        """The batches of ``epoch`` from batch ``start_batch`` on (for resume)."""
        for images, labels, _ in worker_batches(FileSamples(self), self, epoch, start_batch):
            yield {"image": images.float().div_(255), "label": labels}


def worker_batches(
    samples: Dataset,
    loader: Any,
    epoch: int,
    start_batch: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    what: str = "file(s)",
    cached: str = "images",
) -> Iterator[Any]:
    """The collated batches of ``loader`` (an EpochBatches with ``workers``) for ``epoch`` from
    ``start_batch`` on: sample ``(epoch, i)`` of ``samples`` for each of its indices, made by
    ``loader.workers`` forked processes (0: this one). A sample's last item says whether its
    files could be read (collated: a bool tensor (B,)); the epoch's count of those that could
    not, which gave their ``cached`` rows, is one warning naming them as ``what``."""
    indices = loader.batch_indices(epoch, start_batch)
    keys = [[(epoch, int(i)) for i in index] for _, index in indices]
    context = multiprocessing.get_context("fork") if loader.workers else None
    batches = DataLoader(
        samples,
        batch_sampler=keys,
        num_workers=loader.workers,
        multiprocessing_context=context,
        collate_fn=collate_fn,
    )
    unreadable = 0
    for batch in batches:
        unreadable += int((~batch[-1]).sum())
        yield batch
    if unreadable:
        warnings.warn(
            f"epoch {epoch}: {unreadable} training {what} could not be read; their cached "
            f"{cached} were used (the folder changed since the cache was built?)",
            stacklevel=3,
        )


def unstreamable(name: str, source: str) -> ValueError:
    """The error for streaming a data set that has no files to read, ``source`` saying what
    streaming reads (``"a class folder's files"``)."""
    return ValueError(
        f"{name}: streaming reads {source}; this data set is held in memory (a built-in set?)"
    )

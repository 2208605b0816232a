"""Streaming a mask folder: each training pair decoded from its image and mask files at every
epoch, at full resolution, and cropped as one (``--stream``; ``antlers.engine.stream`` does the
same for class folders and holds the shared pieces).

Sample i of epoch e: the image (RGB) and its id mask, read as the folder reader checks them
(``antlers.data.mask_folder.open_pair``), become a ``tv_tensors.Image`` and a
``tv_tensors.Mask`` that go through one transforms.v2 pipeline: a random resized crop to S x S
(``CROP_SCALE`` of the area, ``CROP_RATIO``; the image antialiased bilinear, the mask
nearest-neighbour, so that every pixel keeps a class id of the file or 255) and, with ``flip``,
a left-right mirror of both. The crop and the mirror are drawn from torch's generator seeded by
(seed, e, i) (``engine.stream.seeded``): a batch does not depend on the number of workers. A pair
whose files can no longer be read, or no longer make a pair, gives its cached S x S row; the
epoch's count of them is one warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from antlers.data.mask_folder import open_pair
from antlers.data.skips import DataError
from antlers.engine.loader import EpochBatches
from antlers.engine.stream import CROP_RATIO, CROP_SCALE, seeded, unstreamable, worker_batches
from antlers.io.images import ImageError

__all__ = ["PairSamples", "PairedResizedCrop", "SegmentStreamLoader", "read_full_pair"]


class PairedResizedCrop(v2.RandomResizedCrop):
    """``v2.RandomResizedCrop`` whose masks are resized by nearest-exact.

    v2 resizes a ``tv_tensors.Mask`` nearest-neighbour whatever the interpolation asked, with
    torch's "nearest", which takes each output pixel from the top-left corner of its source
    block: shrunk several times, the mask lands up to half an output pixel up and left of the
    antialiased image. "nearest-exact" takes it from the block's centre, as Pillow's nearest
    (the decoded cache's masks) does.
    """

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Mask):
            return super().transform(inpt, params)
        cropped = TF.crop(inpt, params["top"], params["left"], params["height"], params["width"])
        exact = v2.InterpolationMode.NEAREST_EXACT
        return TF.resize(cropped, list(self.size), interpolation=exact)


def read_full_pair(paths: tuple[str, str], num_classes: int) -> tuple[Tensor, Tensor]:
    """The (image, mask) files as uint8 (3, H, W) and (H, W) at their own size; DataError or
    ImageError as the folder reader gives them (a missing mask, an unknown id, sizes that
    differ, an unreadable file)."""
    image, mask = open_pair(Path(paths[0]), Path(paths[1]), num_classes)
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
    return pixels, torch.from_numpy(np.array(mask, dtype=np.uint8))


class PairSamples(Dataset):
    """Sample ``(epoch, i)``: pair ``files[rows[i]]`` decoded at full resolution and cropped
    together, as (uint8 image (3, S, S), uint8 mask (S, S), whether its files could be read)."""

    def __init__(self, loader: SegmentStreamLoader) -> None:
        self.images, self.masks, self.rows = loader.images, loader.labels, loader.rows
        self.files, self.num_classes, self.seed = loader.files, loader.num_classes, loader.seed
        size = tuple(loader.images.shape[-2:])
        crop = PairedResizedCrop(size, scale=CROP_SCALE, ratio=CROP_RATIO, antialias=True)
        self.transform = v2.Compose([crop, *([v2.RandomHorizontalFlip()] if loader.flip else [])])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor, bool]:
        epoch, i = key
        row = int(self.rows[i])
        try:
            image, mask = read_full_pair(self.files[row], self.num_classes)
        except (DataError, ImageError):
            return self.images[row], self.masks[row], False
        with seeded(self.seed, epoch, i):
            image, mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return image.as_subclass(Tensor), mask.as_subclass(Tensor), True


@dataclass
class SegmentStreamLoader(EpochBatches):
    """Training batches ``{"image": float (B, 3, S, S) in [0, 1], "mask": int64 (B, S, S)}``
    decoded from the pairs ``files`` by ``workers`` processes (0: in this process).

    images, labels: uint8 (M, 3, S, S) and (M, S, S), the decoded cache (the size, and each
    pair's fallback); rows: int64 (N,), sample i's row of them and of ``files`` (M (image,
    mask) paths); num_classes: ids at or above it (but 255) make a mask unreadable. The other
    options: :class:`EpochBatches` (``flip``: mirror half the crops).
    """

    images: Tensor
    labels: Tensor
    batch_size: int
    rows: Tensor
    files: tuple[tuple[str, str], ...]
    num_classes: int
    workers: int = 0

    @classmethod
    def of(cls, data: Any, batch_size: int, workers: int, **options: Any) -> SegmentStreamLoader:
        """A loader of the SegmentationSet ``data``, read through the decoded cache."""
        if data.files is None or data.rows is None:
            raise unstreamable(data.name, "a mask folder's files")
        fields = (data.images, data.masks, batch_size, data.rows, data.files, len(data.classes))
        return cls(*fields, workers, **options)

    @property
    def num_samples(self) -> int:
        return len(self.rows)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, Tensor]]:
        """The batches of ``epoch`` from batch ``start_batch`` on (for resume)."""
        names = {"what": "image/mask pair(s)", "cached": "images and masks"}
        batches = worker_batches(PairSamples(self), self, epoch, start_batch, **names)
        for images, masks, _ in batches:
            yield {"image": images.float().div_(255), "mask": masks.long()}

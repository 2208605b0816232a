"""`SegmentationSet`: images and their per-pixel class masks, in memory or memory-mapped.

Conventions: images uint8 (N, C, H, W) with C in {1, 3}; masks uint8 (N, H, W) of class ids in
[0, len(classes)), or 255 for "ignore" (a pixel no loss or metric counts). A sample is
``{"image": float32 (C, H, W) in [0, 1], "mask": int64 (H, W)}``. A mask folder read through the
decoded cache (``antlers.data.mask_folder``) holds every pair of the folder, memory-mapped, and
``rows`` picks the set's: subsets then copy no pixels, as ``ImageSet`` does; ``files`` then
names each row's image and mask files (for ``--stream``, ``antlers.tasks.segment.stream``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

__all__ = ["IGNORE_INDEX", "SegmentationSet"]

IGNORE_INDEX = 255


@dataclass(frozen=True, eq=False)
class SegmentationSet:
    """A segmentation dataset; checks dtypes, shapes and the range of the class ids.

    images, masks: uint8 (M, C, H, W) and (M, H, W): the set's own (M = N), or with ``rows``
    (int64 (N,)) every pair of a decoded cache, of which sample i is row ``rows[i]`` (its ids
    were checked when it was decoded). ``arrays()`` gives the set's own, copied. files: the
    (image, mask) paths of each row of ``images`` (M pairs), or None (a built-in set).
    """

    images: torch.Tensor
    masks: torch.Tensor
    classes: tuple[str, ...]
    name: str
    skipped: tuple[str, ...] = ()  # pairs a folder loader left out, one line each
    rows: torch.Tensor | None = None
    files: tuple[tuple[str, str], ...] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.masks.dtype != torch.uint8:
            raise ValueError(f"{self.name}: images and masks must be torch.uint8 tensors")
        if self.images.ndim != 4 or self.images.shape[1] not in (1, 3):
            raise ValueError(
                f"{self.name}: images must be (N, C, H, W) with C in (1, 3), "
                f"got {tuple(self.images.shape)}"
            )
        n, _, h, w = self.images.shape
        if tuple(self.masks.shape) != (n, h, w):
            raise ValueError(
                f"{self.name}: masks must be (N, H, W) = {(n, h, w)}, got {tuple(self.masks.shape)}"
            )
        if self.rows is not None:
            return
        bad = (self.masks >= len(self.classes)) & (self.masks != IGNORE_INDEX)
        if bad.any():
            raise ValueError(
                f"{self.name}: class id {int(self.masks[bad][0])} in a mask, but only "
                f"{len(self.classes)} classes (ids 0-{len(self.classes) - 1}, 255 = ignore)"
            )

    def __len__(self) -> int:
        return len(self.images) if self.rows is None else len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = i if self.rows is None else int(self.rows[i])
        return {"image": self.images[row].float() / 255, "mask": self.masks[row].long()}

    def arrays(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The set's images (N, C, H, W) and masks (N, H, W), in memory."""
        if self.rows is None:
            return self.images, self.masks
        return self.images[self.rows], self.masks[self.rows]

    def subset(self, indices: Sequence[int]) -> SegmentationSet:
        """The images and masks at ``indices`` (in that order), same classes and name; picked
        by ``rows`` (no pixel copied, ``files`` kept: they name the rows) when the set has them."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        if self.rows is not None:
            return replace(self, rows=self.rows[index])
        files = None if self.files is None else tuple(self.files[i] for i in index.tolist())
        picked = self.images[index], self.masks[index]
        return SegmentationSet(*picked, self.classes, self.name, self.skipped, files=files)

"""`ImageSet`: an in-memory image-classification dataset, the one type every loader returns.

Conventions: images are stored as uint8 tensors of shape (N, C, H, W) with C = 1 (grayscale) or
C = 3 (RGB), in memory or memory-mapped from a decoded cache (then picked by ``rows``, so that
subsets copy no pixels); a sample is the dict ``{"image": float32 (C, H, W) in [0, 1], "label":
int}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from antlers.io.system import available_ram, gib

__all__ = ["SPLITS", "ImageSet", "resize_images", "stratified_split_indices"]

SPLITS = ("train", "test")


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A labelled set of images, in memory or memory-mapped.

    Attributes:
        pixels: uint8 tensor (M, C, H, W), C in {1, 3}: the images in memory, or every image of
            a folder's decoded cache, memory-mapped (``antlers.data.cache``), of which ``rows``
            picks this set's.
        labels: int64 tensor (N,), each in [0, len(classes)).
        classes: class names; label k means ``classes[k]``.
        name: the dataset's name ("mnist", "shapes", a folder's name, ...).
        skipped: files a loader could not read and left out (folder datasets), as
            "path: reason" strings; empty for the built-in sets.
        rows: None (image i is ``pixels[i]``, N = M), or int64 (N,): image i is
            ``pixels[rows[i]]``. A subset of such a set picks rows and copies no pixels, so a
            training set larger than memory stays in the page cache.
        files: None, or the image file of each row of ``pixels`` (a folder read through the
            decoded cache): what streaming decodes at full resolution.
    """

    pixels: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str
    skipped: tuple[str, ...] = ()
    rows: torch.Tensor | None = None
    files: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        """Check dtypes, shapes and label range; raise ValueError on any mismatch."""
        if not isinstance(self.pixels, torch.Tensor) or self.pixels.dtype != torch.uint8:
            raise ValueError(f"{self.name}: images must be a torch.uint8 tensor")
        if self.pixels.ndim != 4 or self.pixels.shape[1] not in (1, 3):
            raise ValueError(
                f"{self.name}: images must have shape (N, C, H, W) with C in (1, 3), "
                f"got {tuple(self.pixels.shape)}"
            )
        if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64:
            raise ValueError(f"{self.name}: labels must be a torch.int64 tensor")
        n = self.pixels.shape[0] if self.rows is None else len(self.rows)
        if self.labels.shape != (n,):
            raise ValueError(
                f"{self.name}: labels must have shape (N,) = ({n},), got {tuple(self.labels.shape)}"
            )
        if not self.classes:
            raise ValueError(f"{self.name}: classes must not be empty")
        object.__setattr__(self, "classes", tuple(self.classes))
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(
                f"{self.name}: labels must lie in [0, {len(self.classes)}), "
                f"got [{int(self.labels.min())}, {int(self.labels.max())}]"
            )

    @property
    def images(self) -> torch.Tensor:
        """uint8 (N, C, H, W): ``pixels`` itself, or a copy of this set's rows of it."""
        return self.pixels if self.rows is None else self.pixels[self.rows]

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W): images ``index`` (int64 (B,)), copied from ``pixels``."""
        return self.pixels[index if self.rows is None else self.rows[index]]

    def head(self, n: int) -> torch.Tensor:
        """uint8 (min(n, N), C, H, W): the first ``n`` images (a view when in memory)."""
        if self.rows is None:
            return self.pixels[:n]
        return self.pixels[self.rows[:n]]

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str],
        name: str,
        image_size: int | None = None,
    ) -> ImageSet:
        """An ImageSet of NumPy uint8 images (N, C, H, W) and integer labels (N,), the images
        resized to (N, C, S, S), S = ``image_size``, when given (:func:`resize_images`)."""
        tensor = torch.from_numpy(images)
        if image_size is not None:
            tensor = resize_images(tensor, image_size)
        return cls(tensor, torch.from_numpy(labels.astype(np.int64)), tuple(classes), name)

    def __len__(self) -> int:
        """Number of images N."""
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        """Sample i as ``{"image": float32 (C, H, W) in [0, 1], "label": int}``."""
        return {
            "image": self.batch(torch.tensor([i]))[0].float() / 255.0,
            "label": int(self.labels[i]),
        }

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ImageSet:
        """The images at `indices` (in that order), same classes and name: copied when in
        memory, picked rows of the same ``pixels`` when memory-mapped (``rows``)."""
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        if self.rows is not None:
            return replace(self, labels=self.labels[index], rows=self.rows[index])
        return replace(self, pixels=self.pixels[index], labels=self.labels[index])

    def split(self, fraction: float, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """Split into (rest, held_out): held_out gets round(fraction * n_k) of each class k.

        Stratified and deterministic: the same seed gives the same split. Both parts keep the
        original order of the images; rounding is halves up.
        """
        rest, held = stratified_split_indices(self.labels.numpy(), fraction, seed)
        return self.subset(rest), self.subset(held)


def stratified_split_indices(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held_out) with round(fraction * n_k) of each class k held out.

    labels: int array (N,). Each class is shuffled by a NumPy Generator seeded with `seed`;
    both returned index arrays are sorted ascending.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        held.append(members[: int(fraction * len(members) + 0.5)])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), held_out)
    return rest.astype(np.int64), held_out.astype(np.int64)


def resize_images(images: torch.Tensor, size: int, chunk_bytes: int = 256 * 2**20) -> torch.Tensor:
    """Resize uint8 images (N, C, H, W) to (N, C, size, size), bilinear with antialiasing.

    Meant for the square built-in sets (MNIST, CIFAR-10, digits); non-square inputs are
    stretched. The result is allocated once, after checking that it fits in the memory the
    machine has free (a ValueError naming the size otherwise), and filled in chunks whose float
    copies stay under ``chunk_bytes``.
    """
    if size <= 0:
        raise ValueError(f"image_size must be a positive integer, got {size}")
    if images.shape[-2:] == (size, size):
        return images
    n, c, h, w = images.shape
    need, free = n * c * size * size, available_ram()
    if free is not None and need > free:
        raise ValueError(
            f"image_size {size}: {n} images at {size}x{size} need {gib(need)} of memory, and "
            f"{gib(free)} is free; choose a smaller --image-size"
        )
    out = images.new_empty((n, c, size, size))
    chunk = max(1, chunk_bytes // (4 * c * max(h * w, size * size)))
    for start in range(0, n, chunk):
        x = images[start : start + chunk].float()
        y = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        out[start : start + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out

"""`Annotations`: a detection dataset on disk, read but not yet loaded: image files with their boxes
in the images' own pixels. The COCO and YOLO readers return it; ``to_set`` loads and resizes the
images into a DetectionSet, ``antlers convert`` writes it in the other format.

Reading for training (the readers' ``image_size`` S) decodes every image once, on every core
(:func:`probe_images`): each is stretched to S x S (``decode_stretched``: RGB, Pillow's
antialiased bilinear) and its upright size kept for the boxes. With ``cache`` ("auto": 1,000
images or more) that goes through the decoded cache (``antlers.data.cache``), so later runs open
no image at all: the sizes, the unreadable files' reasons and the pixels come from the cache.
Without S (``antlers convert``) each image is opened once, in this process, for its size.

Shared checks: an image path must stay inside the dataset folder (no "..", no absolute path, no
link out of it), and must be an image that ``antlers.io.images.open_image`` reads; a bad entry
goes to the reader's ``Skips`` (``antlers.data.skips``: skipped and counted, or refused when
strict), kept in ``skips`` and listed in the DetectionSet's ``skipped``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from antlers.data.boxset import BoxCounts, DetectionSet, clamp_boxes
from antlers.data.cache import Layout, open_decoded
from antlers.data.decode import decode_into
from antlers.data.skips import DataError, Skips
from antlers.io.images import ImageError, open_image, to_8bit

__all__ = [
    "Annotations",
    "Probed",
    "decode_stretched",
    "image_size",
    "inside_root",
    "outside",
    "probe_images",
]


def inside_root(
    root: Path, name: str, source: Path, where: str, folders: dict[str, str] | None = None
) -> Path:
    """``root / name``, which must not escape ``root``; DataError names the file and entry.

    folders: a reader's memo of the folders it resolved (path -> real path): a file that is
    not a link is then its real folder's, one ``lstat`` instead of one per path component."""
    if "\x00" in name:
        raise DataError(f"{source}: {where}: file name {name!r} holds a NUL character")
    if Path(name).is_absolute():
        raise DataError(f"{source}: {where}: file name {name!r} is absolute; it must be relative")
    folders = {} if folders is None else folders
    joined = os.path.join(root, name)
    folder, base = os.path.split(joined)
    if base in ("", ".", "..") or os.path.islink(joined):
        path = Path(joined).resolve()
    else:
        path = Path(_real(folder, folders), base)
    if not path.is_relative_to(_real(str(root), folders)):
        raise DataError(f"{source}: {where}: file name {name!r} escapes the dataset folder {root}")
    return path


def _real(path: str, folders: dict[str, str]) -> str:
    """``os.path.realpath(path)``, remembered in ``folders``."""
    if path not in folders:
        folders[path] = os.path.realpath(path)
    return folders[path]


def decode_stretched(paths: list[str], image_size: int, channels: int) -> list:
    """Each image file as (uint8 (3, S, S): stretched to S x S, RGB, Pillow's antialiased
    bilinear; [height, width] of the upright file), or why ``open_image`` refuses it (a worker's
    task; ``channels`` is 3)."""
    results: list = []
    for path in paths:
        try:
            image = to_8bit(open_image(path)).convert("RGB")
        except ImageError as error:
            results.append(str(error))
            continue
        stretched = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
        results.append((np.asarray(stretched).transpose(2, 0, 1), [image.height, image.width]))
    return results


@dataclass(frozen=True)
class Probed:
    """Image files decoded at S x S: ``pixels`` (M, 3, S, S) (a memory-mapped cache when
    ``mapped``), and per file its row, its [height, width] and why it is unreadable (or None)."""

    pixels: np.ndarray
    row: dict[Path, int]
    sizes: tuple[Any, ...]
    reasons: tuple[str | None, ...]
    mapped: bool


def probe_images(
    root: Path, paths: list[Path], size: int, cache: str, key: str, **options: Any
) -> Probed:
    """The images ``paths`` (under ``root``) decoded by ``decode_stretched`` at ``size``, on
    every core: through the decoded cache (named by ``root`` and ``key``) when ``cache``
    says so (``antlers.data.folder.use_cache``), else into memory."""
    from antlers.data.folder import use_cache

    row = {path: k for k, path in enumerate(paths)}
    if use_cache(cache, len(paths)):
        layout = Layout("stretched", decode_stretched, channels=3, key=key)
        decoded = open_decoded(root.resolve(), paths, size, layout=layout, **options)
        return Probed(decoded.pixels, row, decoded.infos, decoded.reasons, True)
    pixels = np.zeros((len(paths), 3, size, size), dtype=np.uint8)
    infos: dict[int, Any] = {}
    failed = decode_into(paths, range(len(paths)), pixels, decode=decode_stretched, infos=infos)
    sizes = tuple(infos.get(k) for k in range(len(paths)))
    return Probed(pixels, row, sizes, tuple(failed.get(k) for k in range(len(paths))), False)


def image_size(
    path: Path,
    source: Path,
    where: str,
    skips: Skips,
    n_boxes: int | None = None,
    probed: Probed | None = None,
) -> tuple[int, int] | None:
    """(height, width) of the image file, read in full (or as ``probed`` found it); None
    (skipped) if it is refused."""
    if probed is None:
        try:
            width, height = open_image(path).size
            return height, width
        except ImageError as error:
            problem = str(error)
    elif (problem := probed.reasons[probed.row[path]]) is None:  # type: ignore[assignment]
        height, width = probed.sizes[probed.row[path]]
        return height, width
    lost = "" if n_boxes is None else f" (its {n_boxes} box(es) left out)"
    skips.skip(where, f"{source}: {where}: {problem}{lost}")
    return None


def outside(box: list[float], size: tuple[int, int]) -> bool:
    """Whether the xyxy ``box`` lies wholly outside an image of ``size`` (height, width)."""
    x0, y0, x1, y1 = box
    return x0 >= size[1] or y0 >= size[0] or x1 <= 0 or y1 <= 0


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
    skips: Skips = field(default_factory=Skips)  # the entries left out, and the policy
    probed: Probed | None = None  # the images decoded while reading, for ``to_set``

    def add(self, file: Path, size: tuple[int, int], boxes: Tensor, labels: Tensor) -> None:
        """Record one image; its boxes are clamped to it and those outside it dropped."""
        boxes, labels = clamp_boxes(boxes, labels, size[0], size[1], self.counts)
        self.files.append(file)
        self.sizes.append(size)
        self.boxes.append(boxes)
        self.labels.append(labels)

    def to_set(self, image_size: int) -> DetectionSet:
        """The images stretched to image_size x image_size (``decode_stretched``; those the
        reader probed at that size are not decoded again), boxes scaled with them."""
        probed, rows = self.probed, None
        if probed is None or probed.pixels.shape[-1] != image_size:
            probed = probe_images(self.root, self.files, image_size, "off", "", progress=False)
        picked = [probed.row[f] for f in self.files]
        for file, k in zip(self.files, picked, strict=True):
            if probed.reasons[k] is not None:  # readable when read, no longer (changed since)
                raise DataError(f"{self.source}: image {file.name}: {probed.reasons[k]}")
        if probed.mapped:
            images, rows = torch.from_numpy(probed.pixels), torch.tensor(picked)
        else:
            images = torch.from_numpy(probed.pixels[picked])
        boxes = []
        for i, (h, w) in enumerate(self.sizes):
            boxes.append(self.boxes[i] * torch.tensor([image_size / w, image_size / h] * 2))
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
            skipped=self.skips.lines,
            rows=rows,
        )

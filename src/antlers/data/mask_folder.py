"""Segmentation folders: ``images/`` + ``masks/`` + ``classes.txt``, as Pascal VOC keeps them.

Layout::

    root/classes.txt          one class name per line; line k (from 0) names class id k
    root/images/NAME.jpg      any image format Pillow reads (RGB or gray)
    root/masks/NAME.png       the class id of every pixel: mode L (8-bit gray) or P (palette,
                              whose indices are the ids, as in VOC); 255 = ignore

or ``root/train/{images,masks}`` and ``root/test/{images,masks}`` (``val/`` for test) beside one
``classes.txt``; without them a seeded 20% of the pairs is the test split.

Each image is fitted to S x S (``ImageOps.fit``: scale the short side, centre-crop; bicubic), its
mask by the same crop with nearest-neighbour, so ids are never blended. A bad pair is one line
naming the file: a mask of another size than its image (both sizes), an id that names no class
(the id and the number of classes), an RGB or other non-id mask (its mode), a missing mask, an
image or mask that ``antlers.io.images.open_image`` refuses. By the policy of
``antlers.data.skips`` the pair is skipped and counted (``SegmentationSet.skipped``), or with
``strict=True`` refused (DataError). A missing or unreadable classes.txt always raises. Files
are only read.

With ``cache`` ("auto": folders of 1,000 pairs or more; ``antlers.data.folder.use_cache``) the
pairs of both splits are read once into the decoded cache (``antlers.data.cache``), a row of four
channels per pair (RGB and the class ids), which later runs map instead of reading the files
again; the SegmentationSet then picks its split's rows of the mapped pairs (``rows``): the same
images, masks and skipped lines as without it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from antlers.data.cache import Layout, open_decoded
from antlers.data.decode import decode_into
from antlers.data.folder import (
    IMAGE_EXTENSIONS,
    SPLIT_FOLDERS,
    list_images,
    read_classes,
    use_cache,
)
from antlers.data.segset import IGNORE_INDEX, SegmentationSet
from antlers.data.skips import DataError, Skips
from antlers.io.images import ImageError, open_image, to_8bit

__all__ = ["decode_pairs", "load_mask_folder", "open_pair", "read_pair"]

DEFAULT_IMAGE_SIZE = 64
TEST_FRACTION = 0.2
MASK_MODES = ("L", "P")


def read_mask(path: Path, num_classes: int) -> Image.Image:
    """An id mask (mode L or P) with every id < num_classes or 255; DataError otherwise."""
    mask = open_image(path)
    if mask.mode not in MASK_MODES:
        raise DataError(
            f"{path}: mask has mode {mask.mode} ({len(mask.getbands())} channels); expected "
            f"class ids, one per pixel, in an 8-bit gray (L) or palette (P) PNG"
        )
    ids = np.unique(np.asarray(mask))
    bad = ids[(ids >= num_classes) & (ids != IGNORE_INDEX)]
    if bad.size:
        raise DataError(
            f"{path}: class id {int(bad[0])} in the mask, but classes.txt has {num_classes} "
            f"classes (ids 0-{num_classes - 1}; 255 = ignore)"
        )
    return mask


def open_pair(
    image_path: Path, mask_path: Path, num_classes: int
) -> tuple[Image.Image, Image.Image]:
    """The image (RGB, 8-bit, upright) and its id mask (mode L or P) at their own size.

    A bad pair raises DataError, or ImageError for a file ``open_image`` refuses."""
    if not mask_path.is_file():
        raise DataError(f"{image_path}: no mask {mask_path}")
    image = to_8bit(open_image(image_path)).convert("RGB")
    mask = read_mask(mask_path, num_classes)
    if image.size != mask.size:
        raise DataError(
            f"{mask_path}: mask is {mask.size[0]}x{mask.size[1]} (width x height) but its image "
            f"{image_path.name} is {image.size[0]}x{image.size[1]}"
        )
    return image, mask


def read_pair(image_path: Path, mask_path: Path, size: int, num_classes: int) -> tuple:
    """(image uint8 (C, S, S) with C = 3, mask uint8 (S, S)) fitted to size S.

    A bad pair raises DataError, or ImageError for a file ``open_image`` refuses."""
    image, mask = open_pair(image_path, mask_path, num_classes)
    image = ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC)
    mask = ImageOps.fit(mask, (size, size), method=Image.Resampling.NEAREST)
    return np.asarray(image).transpose(2, 0, 1), np.asarray(mask)


def decode_pairs(
    pairs: list[tuple[str, str]], image_size: int, channels: int, num_classes: int
) -> list[np.ndarray | str]:
    """Each (image, mask) pair as one uint8 (4, S, S) row, RGB then the class ids, or the line
    saying why it cannot be used (the decoded cache's task; ``channels`` is 4)."""
    rows: list[np.ndarray | str] = []
    for image, mask in pairs:
        try:
            pixels, ids = read_pair(Path(image), Path(mask), image_size, num_classes)
            rows.append(np.concatenate([pixels, ids[None]]))
        except (DataError, ImageError) as error:
            rows.append(str(error))
    return rows


def _splits(root: Path, seed: int) -> dict[str, tuple[Path, list[Path]]]:
    """Per split, the folder holding its images/ and masks/ and its image files (the folder
    listed once; without split folders a seeded ``TEST_FRACTION`` of it is the test split)."""
    folders = {
        s: [root / c for c in cs if (root / c / "images").is_dir()]
        for s, cs in SPLIT_FOLDERS.items()
    }
    if all(folders.values()):
        return {s: (found[0], list_images(found[0] / "images")) for s, found in folders.items()}
    if not (root / "images").is_dir():
        raise ValueError(
            f"{root}: no images/ folder (expected images/, masks/ and classes.txt, "
            f"or train/ and test/ folders holding images/ and masks/)"
        )
    files = list_images(root / "images")
    order = np.random.default_rng(seed).permutation(len(files))
    n_test = max(1, round(TEST_FRACTION * len(files))) if len(files) > 1 else 0
    chosen = {"test": order[:n_test], "train": order[n_test:]}
    return {s: (root, [files[i] for i in sorted(chosen[s])]) for s in SPLIT_FOLDERS}


def _mask_of(folder: Path, image: Path) -> Path:
    """The mask of an image: masks/a/b.png pairs with images/a/b.jpg under ``folder``."""
    return (folder / "masks" / image.relative_to(folder / "images")).with_suffix(".png")


def _read_split(
    folder: Path, files: list[Path], size: int, num_classes: int, skips: Skips, **options: Any
) -> tuple[torch.Tensor, torch.Tensor, None, None]:
    """The usable pairs of ``files`` (under folder/images/), decoded in this run on every core
    (``decode_into`` with ``decode_pairs``): (images (N, 3, S, S), masks (N, S, S), no rows, no
    files); the others handed to ``skips`` in order."""
    items = [(str(f), str(_mask_of(folder, f))) for f in files]
    pixels = np.zeros((len(files), 4, size, size), dtype=np.uint8)
    decode = functools.partial(decode_pairs, num_classes=num_classes)
    failed = decode_into(items, range(len(files)), pixels, decode=decode, **options)
    for i in sorted(failed):
        skips.skip(files[i].name, failed[i])
    if failed:
        pixels = pixels[[i for i in range(len(files)) if i not in failed]]
    kept = torch.from_numpy(pixels)
    return kept[:, :3].contiguous(), kept[:, 3].contiguous(), None, None


def _cached_split(
    root: Path,
    splits: dict[str, tuple[Path, list[Path]]],
    files: list[Path],
    size: int,
    num_classes: int,
    skips: Skips,
    **options: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[tuple[str, str], ...]]:
    """The decoded cache of every pair of ``splits`` (each: its folder and image files),
    memory-mapped: (its images (M, 3, S, S), masks (M, S, S), the rows of the usable pairs of
    ``files``, the (image, mask) paths of every row); the others handed to ``skips`` in
    order."""
    every = [(str(f), str(_mask_of(d, f))) for d, split in splits.values() for f in split]
    decode = functools.partial(decode_pairs, num_classes=num_classes)
    layout = Layout("pairs", decode, channels=4, policy=(num_classes,))
    decoded = open_decoded(root, every, size, layout=layout, **options)
    row = {image: k for k, (image, _) in enumerate(every)}
    rows = []
    for f in files:
        reason = decoded.reasons[row[str(f)]]
        if reason is None:
            rows.append(row[str(f)])
        else:
            skips.skip(f.name, reason)
    pixels = torch.from_numpy(decoded.pixels)
    return pixels[:, :3], pixels[:, 3], torch.tensor(rows, dtype=torch.int64), tuple(every)


def load_mask_folder(
    root: str | Path,
    split: str = "train",
    *,
    image_size: int | None = None,
    seed: int = 0,
    strict: bool = False,
    progress: bool = True,
    workers: int | None = None,
    cache: str = "auto",
) -> SegmentationSet:
    """One split of a segmentation folder as images uint8 (N, 3, S, S) and masks (N, S, S);
    bad pairs skipped and counted, or with ``strict`` refused (see the module docstring). The
    pairs are read by ``workers`` processes (default: one per core; ``antlers.data.decode``),
    with progress lines and an ETA on stderr (``progress``) from 256 pairs on; ``cache``
    ("auto", "on", "off"): through the decoded cache (the module docstring)."""
    root = Path(root).expanduser()
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split must be one of {list(SPLIT_FOLDERS)}, got {split!r}")
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder (expected images/, masks/ and classes.txt)")
    classes = read_classes(root)
    size = image_size or DEFAULT_IMAGE_SIZE
    splits = _splits(root, seed)
    folder, files = splits[split]
    if not files:
        raise ValueError(
            f"{root}: no images for split {split!r} (extensions: {', '.join(IMAGE_EXTENSIONS)})"
        )
    skips, options = Skips(strict), {"workers": workers, "progress": progress}
    if use_cache(cache, sum(len(f) for _, f in splits.values())):
        found = _cached_split(root, splits, files, size, len(classes), skips, **options)
    else:
        found = _read_split(folder, files, size, len(classes), skips, **options)
    images, masks, rows, pairs = found
    skips.warn(root, "image/mask pair(s)", "SegmentationSet.skipped")
    if len(images if rows is None else rows) == 0:
        raise DataError(
            f"{root}: none of the {len(files)} image/mask pairs of split {split!r} is usable"
        )
    return SegmentationSet(images, masks, classes, root.resolve().name, skips.lines, rows, pairs)

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
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from antlers.data.decode import PARALLEL_FROM, available_cores, in_chunks
from antlers.data.folder import IMAGE_EXTENSIONS, SPLIT_FOLDERS, list_images, read_classes
from antlers.data.segset import IGNORE_INDEX, SegmentationSet
from antlers.data.skips import DataError, Skips
from antlers.io.images import ImageError, open_image, to_8bit
from antlers.io.progress import Progress

__all__ = ["load_mask_folder", "read_pair"]

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


def read_pair(image_path: Path, mask_path: Path, size: int, num_classes: int) -> tuple:
    """(image uint8 (C, S, S) with C = 3, mask uint8 (S, S)) fitted to size S.

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
    image = ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC)
    mask = ImageOps.fit(mask, (size, size), method=Image.Resampling.NEAREST)
    return np.asarray(image).transpose(2, 0, 1), np.asarray(mask)


def _split_folder(root: Path, split: str) -> Path | None:
    folders = {
        s: [root / c for c in cs if (root / c / "images").is_dir()]
        for s, cs in SPLIT_FOLDERS.items()
    }
    if all(folders.values()):
        return folders[split][0]
    return None


def _pairs(root: Path, split: str, seed: int) -> tuple[Path, list[Path]]:
    """The folder holding images/ and masks/ for ``split``, and the split's image files."""
    folder = _split_folder(root, split)
    if folder is not None:
        return folder, list_images(folder / "images")
    if not (root / "images").is_dir():
        raise ValueError(
            f"{root}: no images/ folder (expected images/, masks/ and classes.txt, "
            f"or train/ and test/ folders holding images/ and masks/)"
        )
    files = list_images(root / "images")
    order = np.random.default_rng(seed).permutation(len(files))
    n_test = max(1, round(TEST_FRACTION * len(files))) if len(files) > 1 else 0
    chosen = order[:n_test] if split == "test" else order[n_test:]
    return root, [files[i] for i in sorted(chosen)]


def _read_pairs(pairs: list[tuple[Path, Path]], size: int, num_classes: int) -> list:
    """Each (image, mask) pair as ``read_pair`` gives it, or the line saying why it cannot be
    used (a worker's task)."""
    results: list = []
    for image, mask in pairs:
        try:
            results.append(read_pair(image, mask, size, num_classes))
        except (DataError, ImageError) as error:
            results.append(str(error))
    return results


def _read_split(
    folder: Path,
    files: list[Path],
    size: int,
    num_classes: int,
    skips: Skips,
    workers: int | None,
    progress: bool,
) -> list[tuple]:
    """The usable (image, mask) pairs of ``files`` (under folder/images/; masks/a/b.png pairs
    with images/a/b.jpg), read in parallel; the others handed to ``skips`` in order."""
    masks = [
        (folder / "masks" / f.relative_to(folder / "images")).with_suffix(".png") for f in files
    ]
    items = list(zip(files, masks, strict=True))
    task = functools.partial(_read_pairs, size=size, num_classes=num_classes)
    shown = progress and len(files) >= PARALLEL_FROM
    bar = Progress(len(files), "reading image/mask pairs", enabled=shown, unit="pairs")
    pairs = []
    try:
        for chunk, results in in_chunks(task, items, workers or available_cores()):
            for i, result in zip(chunk, results, strict=True):
                if isinstance(result, str):
                    skips.skip(files[i].name, result)
                else:
                    pairs.append(result)
            bar.update(len(chunk))
    finally:
        bar.close()
    return pairs


def load_mask_folder(
    root: str | Path,
    split: str = "train",
    *,
    image_size: int | None = None,
    seed: int = 0,
    strict: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> SegmentationSet:
    """One split of a segmentation folder as images uint8 (N, 3, S, S) and masks (N, S, S);
    bad pairs skipped and counted, or with ``strict`` refused (see the module docstring). The
    pairs are read by ``workers`` processes (default: one per core; ``antlers.data.decode``),
    with progress lines and an ETA on stderr (``progress``) from 256 pairs on."""
    root = Path(root).expanduser()
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split must be one of {list(SPLIT_FOLDERS)}, got {split!r}")
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder (expected images/, masks/ and classes.txt)")
    classes = read_classes(root)
    size = image_size or DEFAULT_IMAGE_SIZE
    folder, files = _pairs(root, split, seed)
    if not files:
        raise ValueError(
            f"{root}: no images for split {split!r} (extensions: {', '.join(IMAGE_EXTENSIONS)})"
        )
    skips = Skips(strict)
    pairs = _read_split(folder, files, size, len(classes), skips, workers, progress)
    skips.warn(root, "image/mask pair(s)", "SegmentationSet.skipped")
    if not pairs:
        raise DataError(
            f"{root}: none of the {len(files)} image/mask pairs of split {split!r} is usable"
        )
    images = torch.from_numpy(np.stack([p[0] for p in pairs]))
    masks = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return SegmentationSet(images, masks, classes, root.resolve().name, skips.lines)

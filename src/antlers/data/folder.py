"""Class-per-folder image datasets: ``root/<class name>/<image files>``.

Layout: if root holds ``train/`` and ``test/`` (or ``val/``) folders, each holds class folders and
gives the split of its name ("test" reads ``test/`` if present, else ``val/``). Otherwise the class
folders are directly under root and a stratified ``test_fraction`` (default 0.2) of each class,
chosen by `seed`, is the test split. Classes are the train folder's class folder names, sorted.

Conversion, the same for every file:

- EXIF orientation is applied (``ImageOps.exif_transpose``);
- transparency (LA, RGBA, PA, P with a transparent colour) is composited on **white**;
- 16-bit and 32-bit integer grayscale (I;16, I) is scaled from 0..65535 to 0..255;
- CMYK, YCbCr and other colour modes are converted to RGB; 1-bit and float to 8-bit gray;
- images are RGB (C = 3) unless every image of the dataset (both splits) has a grayscale mode
  (1, L, LA, I, I;16, F), then gray (C = 1); palette images count as colour;
- resize policy: scale the shorter side to `image_size` (default 64) and center-crop the other
  (``ImageOps.fit``, bicubic, antialiased when shrinking).

Files are opened read-only and never modified, by ``antlers.io.images.open_image``, the one
path from a file to pixels. Non-image files (by extension) and hidden files or folders are
ignored. A file it refuses (empty, truncated, not an image, a decompression bomb: more pixels
than ``PIL.Image.MAX_IMAGE_PIXELS``, its warning range included) is skipped by the policy of
``antlers.data.skips``: one warning giving the count and first names, every file listed in
``ImageSet.skipped``; with ``strict=True`` a DataError (a ValueError) naming the file instead.

Segmentation mask folders reuse :func:`list_images`; they and YOLO folders read their
``classes.txt`` with :func:`read_classes`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from antlers.data.cache import CACHE_MODES, open_decoded
from antlers.data.decode import decode_files, decode_image, is_gray_file, report_failures
from antlers.data.imageset import ImageSet, stratified_split_indices
from antlers.data.skips import Skips

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "IMAGE_EXTENSIONS",
    "decode_image",
    "list_images",
    "load_folder",
    "read_classes",
]

IMAGE_EXTENSIONS = (
    ".bmp",
    ".gif",
    ".jpeg",
    ".jpg",
    ".pbm",
    ".pgm",
    ".png",
    ".pnm",
    ".ppm",
    ".tif",
    ".tiff",
    ".webp",
)
DEFAULT_IMAGE_SIZE = 64
DEFAULT_TEST_FRACTION = 0.2
CACHE_FROM = 1000  # images from which cache="auto" reads a folder through the decoded cache
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val")}


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder` (recursively, not into linked folders), by extension, hidden
    ones (a name starting with '.', or inside such a folder) excluded, sorted."""
    return [Path(name) for name in image_files(folder)]


def image_files(folder: str | Path) -> list[str]:
    """``list_images`` as strings, in the same order (Path's: by components); 100,000 names
    cost a tenth of a second, their Path objects a second."""
    found: list[str] = []
    _scan(str(folder), found)
    return sorted(found, key=lambda name: name.split(os.sep))


def _scan(folder: str, found: list[str]) -> None:
    """Append the visible image files under ``folder`` to ``found`` (``os.scandir``: the file
    type comes with the listing, so 100,000 files cost no stat call each)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                _scan(entry.path, found)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                found.append(entry.path)


def read_classes(root: Path) -> tuple[str, ...]:
    """The class names in root/classes.txt, line k naming class id k (blank lines and surrounding
    spaces dropped): the segmentation mask folders' and YOLO folders' list of classes."""
    path = root / "classes.txt"
    if not path.is_file():
        raise ValueError(f"{path}: missing; write one class name per line (line k = class id k)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise ValueError(f"{path}: no class names")
    return names


def class_folders(root: Path) -> list[Path]:
    """The visible sub-folders of `root`, sorted by name; ValueError if there are none."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{root}: no class folders; expected {root}/<class name>/<image files>")
    return folders


def index_classes(root: Path, classes: tuple[str, ...] | None) -> tuple[list[str], np.ndarray]:
    """Image files under root's class folders and their labels (indices into `classes`).

    classes: the allowed class names; None accepts root's own class folders as the classes.
    Raises ValueError for an empty class folder or a class not in `classes`.
    """
    folders = class_folders(root)
    names = classes if classes is not None else tuple(f.name for f in folders)
    files: list[str] = []
    labels: list[int] = []
    for folder in folders:
        if folder.name not in names:
            raise ValueError(
                f"{folder}: class {folder.name!r} is not a training class (allowed: {list(names)})"
            )
        found = image_files(folder)
        if not found:
            raise ValueError(
                f"{folder}: class folder has no image files "
                f"(extensions: {', '.join(IMAGE_EXTENSIONS)})"
            )
        files += found
        labels += [names.index(folder.name)] * len(found)
    return files, np.asarray(labels, dtype=np.int64)


def split_roots(root: Path) -> dict[str, Path] | None:
    """{"train": root/train, "test": root/test or root/val} when root has that layout, else None."""
    found = {}
    for split, candidates in SPLIT_FOLDERS.items():
        existing = [root / c for c in candidates if (root / c).is_dir()]
        if existing:
            found[split] = existing[0]
    return found if len(found) == len(SPLIT_FOLDERS) else None


def select_files(
    root: Path, split: str, seed: int, test_fraction: float
) -> tuple[list[str], np.ndarray, tuple[str, ...], list[str]]:
    """(files, labels) of `split`, the class names, and every image file of both splits (the
    files' paths as strings: see ``image_files``)."""
    roots = split_roots(root)
    if roots is not None:
        classes = tuple(f.name for f in class_folders(roots["train"]))
        per_split = {name: index_classes(folder, classes) for name, folder in roots.items()}
        files, labels = per_split[split]
        return files, labels, classes, per_split["train"][0] + per_split["test"][0]
    classes = tuple(f.name for f in class_folders(root))
    every_file, every_label = index_classes(root, classes)
    train_idx, test_idx = stratified_split_indices(every_label, test_fraction, seed)
    chosen = train_idx if split == "train" else test_idx
    return [every_file[i] for i in chosen], every_label[chosen], classes, every_file


def use_cache(cache: str, count: int) -> bool:
    """Whether a folder of ``count`` images is read through the decoded cache: ``cache`` is
    "on", "off", or "auto" (folders of ``CACHE_FROM`` images or more)."""
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {', '.join(CACHE_MODES)}, got {cache!r}")
    return cache == "on" or (cache == "auto" and count >= CACHE_FROM)


def decode_split(
    files: list[str], every_file: list[str], size: int, skips: Skips, **options: Any
) -> tuple[np.ndarray, list[int] | None, list[int]]:
    """The split's files decoded in this run into memory: (uint8 (N, C, S, S) pixels of the
    readable ones, None, their indices in ``files``); C from every file of both splits."""
    channels = 1 if all(is_gray_file(p) is not False for p in every_file) else 3
    pixels = np.zeros((len(files), channels, size, size), dtype=np.uint8)
    kept = decode_files(files, range(len(files)), pixels, skips, **options)
    return (pixels[kept] if len(kept) < len(files) else pixels), None, kept


def cached_split(
    root: Path, files: list[str], every_file: list[str], size: int, skips: Skips, **options: Any
) -> tuple[np.ndarray, list[int] | None, list[int]]:
    """The decoded cache of both splits (``antlers.data.cache``, which decodes only what it
    lacks), memory-mapped: (its pixels (M, C, S, S), the rows of the split's readable files,
    their indices in ``files``)."""
    decoded = open_decoded(root, every_file, size, **options)
    row = {path: k for k, path in enumerate(every_file)}
    rows = [row[path] for path in files]
    failed = {i: decoded.reasons[r] for i, r in enumerate(rows) if decoded.reasons[r] is not None}
    kept = report_failures(files, failed, skips)  # type: ignore[arg-type]
    return decoded.pixels, [rows[i] for i in kept], kept


def load_folder(
    root: str | Path,
    split: str = "train",
    *,
    image_size: int | None = None,
    strict: bool = False,
    seed: int = 0,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    progress: bool = True,
    workers: int | None = None,
    cache: str = "auto",
) -> ImageSet:
    """Load one split of a class-per-folder dataset as uint8 (N, C, S, S), S = image_size or 64.

    See the module docstring for the layout, the conversion policy and how unreadable files
    are handled. The files are decoded by ``workers`` processes (default: one per available
    core; ``antlers.data.decode``), with a progress bar or plain lines with the rate and ETA on
    stderr (``progress``). ``cache`` ("auto", "on", "off"): read through the decoded cache
    (``antlers.data.cache``; "auto": folders of 1,000 images or more), which gives the same
    images, memory-mapped (``ImageSet.rows``). The ImageSet's name is the root folder's name.
    """
    root = Path(root).expanduser()
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split must be one of {list(SPLIT_FOLDERS)}, got {split!r}")
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder (expected {root}/<class name>/<image files>)")
    size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
    if size <= 0:
        raise ValueError(f"image_size must be a positive integer, got {size}")
    files, labels, classes, every_file = select_files(root, split, seed, test_fraction)
    if not files:
        raise ValueError(f"{root}: no images for split {split!r} (too few images to hold out?)")
    skips, options = Skips(strict), {"workers": workers, "progress": progress}
    if use_cache(cache, len(every_file)):
        pixels, rows, kept = cached_split(root, files, every_file, size, skips, **options)
    else:
        pixels, rows, kept = decode_split(files, every_file, size, skips, **options)
    skips.warn(root, "unreadable image file(s)", "ImageSet.skipped")
    if not kept:
        raise ValueError(
            f"{root}: none of the {len(files)} image files of split {split!r} is readable"
        )
    return ImageSet(
        torch.from_numpy(pixels),
        torch.from_numpy(labels[kept]),
        classes,
        root.resolve().name,
        skips.lines,
        None if rows is None else torch.tensor(rows, dtype=torch.int64),
        None if rows is None else tuple(every_file),
    )

"""YOLO txt detection datasets: read (with checks) and write.

Layout: ``DIR/classes.txt`` (one class name a line), images under ``DIR/images/`` and for each
image ``DIR/labels/<same relative path>.txt`` holding one object a line: ``class cx cy w h``,
class an integer in [0, K), the box's centre and size as fractions of the image's width and
height. An image without a label file has no objects. With ``DIR/images/train`` and
``DIR/images/val`` (or ``test``) those are the splits.

Every problem is one line naming the file, the line and what is wrong: a label line without
5 fields, a field that is not a finite number (NaN, inf), a class id out of [0, K), a box with
a width or height <= 0 or wholly outside its image (centre and size as fractions), a label
file that is not UTF-8 text, an image file that ``antlers.io.images.open_image`` refuses. By
the policy of ``antlers.data.skips`` the line (or the image, with its label file) is skipped
and counted, or with ``strict=True`` refused (DataError). A missing classes.txt or images
folder, or no usable image at all, is always refused.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from antlers.data.annotations import Annotations, inside_root, outside, probe_images
from antlers.data.annotations import image_size as _size
from antlers.data.boxset import BoxCounts, DetectionSet
from antlers.data.folder import read_classes
from antlers.data.skips import DataError, Skips

__all__ = ["read_yolo", "read_yolo_annotations", "write_yolo", "yolo_splits"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def yolo_splits(folder: Path) -> dict[str, str] | None:
    """{"train": "train", "test": "val"} when images/train and images/val (or test) exist."""
    images = folder / "images"
    for test in ("val", "test"):
        if (images / "train").is_dir() and (images / test).is_dir():
            return {"train": "train", "test": test}
    return None


def _parse_line(line: str, file: Path, number: int, n_classes: int) -> tuple[int, list[float]]:
    """(class, [cx, cy, w, h]) of one label line; DataError naming file:line and the problem."""
    fields = line.split()
    where = f"{file}:{number}"
    if len(fields) != 5:
        raise DataError(f"{where}: expected 5 fields 'class cx cy w h', got {len(fields)}")
    try:
        values = [float(v) for v in fields[1:]]
        k = float(fields[0])
    except ValueError:
        raise DataError(f"{where}: non-numeric field in {line.strip()!r:.80}") from None
    if not all(math.isfinite(v) for v in [k, *values]):
        raise DataError(f"{where}: non-finite number in {line.strip()!r:.80}")
    if k != int(k) or not 0 <= k < n_classes:
        raise DataError(f"{where}: class id {fields[0]:.20} out of range [0, {n_classes})")
    if values[2] <= 0 or values[3] <= 0:
        raise DataError(f"{where}: degenerate box (width and height must be > 0)")
    return int(k), values


def _read_labels(
    label_file: Path, size: tuple[int, int], n_classes: int, skips: Skips
) -> tuple[list[list[float]], list[int]] | None:
    """The xyxy pixel boxes and classes of one label file, bad lines skipped (or refused);
    None (the image skipped) when the file is not UTF-8 text."""
    boxes: list[list[float]] = []
    labels: list[int] = []
    if not label_file.is_file():
        return boxes, labels
    try:
        text = label_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        where = f"{label_file}: not UTF-8 text (invalid byte at offset {error.start})"
        skips.skip(label_file.name, f"{where}; its image is left out")
        return None
    h, w = size
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            k, (cx, cy, bw, bh) = _parse_line(line, label_file, number, n_classes)
        except DataError as error:
            skips.skip(f"{label_file.name}:{number}", str(error))
            continue
        x0, y0 = (cx - bw / 2) * w, (cy - bh / 2) * h
        box = [x0, y0, x0 + bw * w, y0 + bh * h]
        if skips.strict and outside(box, size):
            raise DataError(f"{label_file}:{number}: box lies outside its image ({w}x{h})")
        boxes.append(box)
        labels.append(k)
    return boxes, labels


def read_yolo_annotations(
    folder: str | Path,
    subset: str | None = None,
    *,
    strict: bool = False,
    image_size: int | None = None,
    cache: str = "off",
) -> Annotations:
    """The images and boxes of a YOLO folder (or of its images/<subset>), checked; bad lines
    and images skipped and counted, or with ``strict`` refused (see the module docstring); with
    ``image_size``, its images decoded at that size on every core, through the decoded cache
    as ``cache`` says (``antlers.data.annotations.probe_images``)."""
    folder = Path(folder)
    classes = read_classes(folder)
    images_dir = folder / "images" / (subset or "")
    if not images_dir.is_dir():
        raise DataError(f"{folder}: no images folder {images_dir}")
    skips = Skips(strict)
    result = Annotations(
        folder, folder, [], [], [], [], classes, tuple(range(len(classes))), BoxCounts(), skips
    )
    files = sorted(
        p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()
    )
    relatives = [file.relative_to(folder / "images") for file in files]
    folders: dict[str, str] = {}  # inside_root's memo
    paths = [
        inside_root(folder, f"images/{r.as_posix()}", folder, f"image {r}", folders)
        for r in relatives
    ]
    if image_size is not None:
        key = f"yolo:{subset or ''}"
        result.probed = probe_images(folder, paths, image_size, cache, key)
    for relative, path in zip(relatives, paths, strict=True):
        where = f"image {relative}"
        label_file = (folder / "labels" / relative).with_suffix(".txt")
        size = _size(path, folder, where, skips, result.probed)
        read = None if size is None else _read_labels(label_file, size, len(classes), skips)
        if size is None or read is None:
            continue
        boxes, labels = read
        result.add(
            path,
            size,
            torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            torch.tensor(labels, dtype=torch.long),
        )
    skips.warn(folder, "entries", "DetectionSet.skipped")
    if not result.files:
        raise DataError(
            f"{images_dir}: no usable image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return result


def read_yolo(
    folder: str | Path,
    image_size: int,
    subset: str | None = None,
    *,
    strict: bool = False,
    cache: str = "off",
) -> DetectionSet:
    """A YOLO folder (or one of its subsets), images resized to image_size x image_size;
    ``strict``: refuse a bad line or image instead of skipping it; ``cache``: "auto", "on" or
    "off", the decoded cache."""
    options = {"strict": strict, "image_size": image_size, "cache": cache}
    return read_yolo_annotations(folder, subset, **options).to_set(image_size)


def write_yolo(annotations: Annotations, out: str | Path) -> Path:
    """Write ``annotations`` as a YOLO folder ``out`` (classes.txt, images/, labels/); images
    are copied (the source files are never modified)."""
    import shutil

    from antlers.io.files import atomic_write

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    atomic_write(out / "classes.txt", "".join(f"{c}\n" for c in annotations.classes))
    for file, (h, w), boxes, labels in zip(
        annotations.files, annotations.sizes, annotations.boxes, annotations.labels, strict=True
    ):
        name = Path(os.path.relpath(file, annotations.root)).as_posix()
        name = name.removeprefix("images/").replace("/", "__")
        shutil.copyfile(file, out / "images" / name)
        lines = []
        for (x0, y0, x1, y1), k in zip(boxes.tolist(), labels.tolist(), strict=True):
            cx, cy, bw, bh = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h
            lines.append(f"{k} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n")
        atomic_write((out / "labels" / name).with_suffix(".txt"), "".join(lines))
    return out

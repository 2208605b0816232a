"""YOLO txt detection datasets: read (with checks) and write.

Layout: ``DIR/classes.txt`` (one class name a line), images under ``DIR/images/`` and for each
image ``DIR/labels/<same relative path>.txt`` holding one object a line: ``class cx cy w h``,
class an integer in [0, K), the box's centre and size as fractions of the image's width and
height. An image without a label file has no objects. With ``DIR/images/train`` and
``DIR/images/val`` (or ``test``) those are the splits.

Every problem is a ValueError naming the file, the line and what is wrong.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from antlers.data.annotations import Annotations, inside_root, read_rgb
from antlers.data.boxset import BoxCounts, DetectionSet
from antlers.data.folder import read_classes

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
    """(class, [cx, cy, w, h]) of one label line; ValueError naming file:line and the problem."""
    fields = line.split()
    where = f"{file}:{number}"
    if len(fields) != 5:
        raise ValueError(f"{where}: expected 5 fields 'class cx cy w h', got {len(fields)}")
    try:
        values = [float(v) for v in fields[1:]]
        k = float(fields[0])
    except ValueError:
        raise ValueError(f"{where}: non-numeric field in {line.strip()!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{where}: non-finite number in {line.strip()!r}")
    if k != int(k) or not 0 <= k < n_classes:
        raise ValueError(f"{where}: class id {fields[0]} out of range [0, {n_classes})")
    if values[2] <= 0 or values[3] <= 0:
        raise ValueError(f"{where}: degenerate box (width and height must be > 0)")
    return int(k), values


def read_yolo_annotations(folder: str | Path, subset: str | None = None) -> Annotations:
    """The images and boxes of a YOLO folder (or of its images/<subset>), checked."""
    folder = Path(folder)
    classes = read_classes(folder)
    images_dir = folder / "images" / (subset or "")
    if not images_dir.is_dir():
        raise ValueError(f"{folder}: no images folder {images_dir}")
    result = Annotations(
        folder, folder, [], [], [], [], classes, tuple(range(len(classes))), BoxCounts()
    )
    files = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    for file in files:
        relative = file.relative_to(folder / "images")
        path = inside_root(folder, f"images/{relative.as_posix()}", folder, f"image {relative}")
        h, w = read_rgb(path, folder, f"image {relative}").shape[:2]
        label_file = (folder / "labels" / relative).with_suffix(".txt")
        boxes, labels = [], []
        if label_file.is_file():
            for number, line in enumerate(label_file.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                k, (cx, cy, bw, bh) = _parse_line(line, label_file, number, len(classes))
                x0, y0 = (cx - bw / 2) * w, (cy - bh / 2) * h
                boxes.append([x0, y0, x0 + bw * w, y0 + bh * h])
                labels.append(k)
        result.add(
            path,
            (h, w),
            torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            torch.tensor(labels, dtype=torch.long),
        )
    if not result.files:
        raise ValueError(f"{images_dir}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return result


def read_yolo(folder: str | Path, image_size: int, subset: str | None = None) -> DetectionSet:
    """A YOLO folder (or one of its subsets), images resized to image_size x image_size."""
    return read_yolo_annotations(folder, subset).to_set(image_size)


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

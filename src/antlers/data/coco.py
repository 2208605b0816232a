"""COCO JSON detection datasets: read (with checks) and write.

A COCO file holds "images" ({"id", "file_name", ...}), "annotations" ({"id", "image_id",
"category_id", "bbox": [x, y, width, height] pixels, "iscrowd"?}) and "categories" ({"id",
"name"}). Image file names are relative to the JSON file's folder. Category ids need not be
contiguous: sorted, they map to labels 0..K-1 (the mapping is kept as ``category_ids`` and saved
in the weights). Crowd annotations (iscrowd 1) are left out, as COCO's evaluation ignores them.

Every problem is a ValueError naming the file, the image or annotation id, and what is wrong.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from antlers.data.annotations import Annotations, inside_root
from antlers.data.boxset import BoxCounts, DetectionSet

__all__ = ["read_coco", "read_coco_annotations", "save_coco", "write_coco"]


def _require(entry: Any, keys: tuple[str, ...], source: Path, where: str) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{source}: {where}: expected an object, got {type(entry).__name__}")
    for key in keys:
        if key not in entry:
            raise ValueError(f"{source}: {where}: missing key {key!r}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _categories(data: dict[str, Any], source: Path) -> tuple[tuple[str, ...], tuple[int, ...]]:
    found: dict[int, str] = {}
    for i, category in enumerate(data["categories"]):
        _require(category, ("id", "name"), source, f"category #{i}")
        if not isinstance(category["id"], int) or isinstance(category["id"], bool):
            raise ValueError(f"{source}: category #{i}: id {category['id']!r} is not an integer")
        found[category["id"]] = str(category["name"])
    if not found:
        raise ValueError(f"{source}: no categories")
    ids = tuple(sorted(found))
    return tuple(found[i] for i in ids), ids


def _box(annotation: dict[str, Any], source: Path, where: str) -> list[float]:
    bbox = annotation["bbox"]
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox):
        raise ValueError(f"{source}: {where}: bbox {bbox!r} is not 4 numbers [x, y, w, h]")
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        raise ValueError(
            f"{source}: {where}: degenerate bbox {bbox} (width and height must be > 0)"
        )
    return [x, y, x + w, y + h]


def read_coco_annotations(path: str | Path) -> Annotations:
    """The images and boxes of a COCO JSON file, checked (see the module docstring)."""
    from antlers.data.annotations import read_rgb

    source = Path(path)
    try:
        data = json.loads(source.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{source}: cannot read as COCO JSON ({error})") from None
    _require(data, ("images", "annotations", "categories"), source, "top level")
    classes, ids = _categories(data, source)
    label_of = {c: k for k, c in enumerate(ids)}
    images: dict[Any, dict[str, Any]] = {}
    for i, image in enumerate(data["images"]):
        _require(image, ("id", "file_name"), source, f"image #{i}")
        images[image["id"]] = image
    boxes: dict[Any, list[list[float]]] = {k: [] for k in images}
    labels: dict[Any, list[int]] = {k: [] for k in images}
    for i, annotation in enumerate(data["annotations"]):
        where = f"annotation #{i}"
        _require(annotation, ("id",), source, where)
        where = f"annotation id {annotation['id']}"
        _require(annotation, ("image_id", "category_id", "bbox"), source, where)
        if annotation["image_id"] not in images:
            raise ValueError(f"{source}: {where}: unknown image_id {annotation['image_id']!r}")
        if annotation["category_id"] not in label_of:
            raise ValueError(
                f"{source}: {where}: unknown category_id {annotation['category_id']!r}; "
                f"categories are {list(ids)}"
            )
        box = _box(annotation, source, where)
        if annotation.get("iscrowd", 0):
            continue
        boxes[annotation["image_id"]].append(box)
        labels[annotation["image_id"]].append(label_of[annotation["category_id"]])
    root = source.parent
    result = Annotations(source, root, [], [], [], [], classes, ids, BoxCounts())
    for image_id in sorted(images, key=str):
        where = f"image id {image_id}"
        file = inside_root(root, str(images[image_id]["file_name"]), source, where)
        h, w = read_rgb(file, source, where).shape[:2]
        result.add(
            file,
            (h, w),
            torch.tensor(boxes[image_id], dtype=torch.float32).reshape(-1, 4),
            torch.tensor(labels[image_id], dtype=torch.long),
        )
    return result


def read_coco(path: str | Path, image_size: int) -> DetectionSet:
    """A COCO JSON dataset, images resized to image_size x image_size."""
    return read_coco_annotations(path).to_set(image_size)


def write_coco(annotations: Annotations, out: str | Path) -> Path:
    """Write ``annotations`` as a COCO JSON file ``out``; images are copied beside it into
    out's folder / "images" (the source files are never modified)."""
    import shutil

    from antlers.io.files import atomic_write

    out = Path(out)
    folder = out.parent / "images"
    folder.mkdir(parents=True, exist_ok=True)
    images, items = [], []
    for i, (file, (h, w), boxes, labels) in enumerate(
        zip(
            annotations.files, annotations.sizes, annotations.boxes, annotations.labels, strict=True
        )
    ):
        name = Path(os.path.relpath(file, annotations.root)).as_posix().replace("/", "__")
        shutil.copyfile(file, folder / name)
        images.append({"id": i + 1, "file_name": f"images/{name}", "height": h, "width": w})
        for box, k in zip(boxes.tolist(), labels.tolist(), strict=True):
            x0, y0, x1, y1 = box
            items.append(
                {
                    "id": len(items) + 1,
                    "image_id": i + 1,
                    "category_id": annotations.category_ids[k],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": c, "name": name}
        for c, name in zip(annotations.category_ids, annotations.classes, strict=True)
    ]
    document = {"images": images, "annotations": items, "categories": categories}
    return atomic_write(out, json.dumps(document, indent=1))


def save_coco(data: DetectionSet, out: str | Path) -> Path:
    """Write an in-memory DetectionSet (e.g. ``scenes``) as a COCO JSON ``out`` with its images
    as PNG files in out's folder / "images": a dataset on disk, as a user's would be."""
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        notes = Annotations(
            Path(out), root, [], [], [], [], data.classes, data.category_ids, BoxCounts()
        )
        for i, image in enumerate(data.images):
            file = root / f"{i:05d}.png"
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(file)
            notes.add(file, (image.shape[1], image.shape[2]), data.boxes[i], data.labels[i])
        return write_coco(notes, out)

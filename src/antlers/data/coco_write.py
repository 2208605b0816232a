"""COCO JSON detection datasets, written: from ``Annotations`` (images copied beside the JSON
file) or from an in-memory ``DetectionSet``. ``coco.py`` reads them back, with its checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from antlers.data.annotations import Annotations
from antlers.data.boxset import BoxCounts, DetectionSet

__all__ = ["save_coco", "write_coco"]


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
        for i in range(len(data)):
            image = data.pick(torch.tensor([i]))[0]
            file = root / f"{i:05d}.png"
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(file)
            notes.add(file, (image.shape[1], image.shape[2]), data.boxes[i], data.labels[i])
        return write_coco(notes, out)

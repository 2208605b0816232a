"""COCO JSON detection datasets, read with checks (``coco_write.py`` writes them).

A COCO file holds "images" ({"id", "file_name", "width"?, "height"?}), "annotations" ({"id",
"image_id", "category_id", "bbox": [x, y, width, height] pixels, "iscrowd"?}) and "categories"
({"id", "name"}). Image file names are relative to the JSON file's folder. Category ids need not
be contiguous: sorted, they map to labels 0..K-1 (the mapping is kept as ``category_ids`` and
saved in the weights). Crowd annotations (iscrowd 1) are left out, as COCO's evaluation ignores
them.

Problems are one line naming the file, the entry (image id, annotation id, category #) and what
is wrong. A file that is not UTF-8 JSON (the line and column of the error), whose top level is
not an object of three lists, or that has no usable category is always refused. A bad entry
(missing key, wrong type, duplicate image or category id, unknown image or category, a bbox
that is not 4 finite numbers or has a width or height <= 0, an image file that is missing,
unreadable or of another size than its entry says) is skipped and counted by the policy of
``antlers.data.skips``, or refused with ``strict=True``; the first of duplicate ids is kept, and
an image's annotations leave with it. Boxes partly outside their image are clamped, boxes
wholly outside dropped and counted (``BoxCounts``); ``strict=True`` refuses those too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from antlers.data.annotations import Annotations, inside_root, outside, probe_images
from antlers.data.annotations import image_size as _size
from antlers.data.boxset import BoxCounts, DetectionSet
from antlers.data.skips import DataError, Skips

__all__ = ["read_coco", "read_coco_annotations"]

LISTS = ("images", "annotations", "categories")


def _missing(entry: Any, keys: tuple[str, ...]) -> str | None:
    """What is wrong with ``entry``'s shape (not an object, a missing key), or None."""
    if not isinstance(entry, dict):
        return f"expected an object, got {type(entry).__name__}"
    for key in keys:
        if key not in entry:
            return f"missing key {key!r}"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _load_json(source: Path) -> dict[str, Any]:
    """The file's top-level object with its three lists; DataError (always) otherwise."""
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise DataError(f"{source}: cannot read ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise DataError(
            f"{source}: not UTF-8 text (invalid byte at offset {error.start})"
        ) from None
    except json.JSONDecodeError as error:
        raise DataError(
            f"{source}: line {error.lineno}, column {error.colno}: malformed JSON ({error.msg})"
        ) from None
    except RecursionError:
        raise DataError(f"{source}: JSON nested too deeply to be a COCO file") from None
    problem = _missing(data, LISTS)
    if problem:
        raise DataError(f"{source}: top level: {problem}")
    for key in LISTS:
        if not isinstance(data[key], list):
            raise DataError(f"{source}: top level: {key!r} must be a list, got {data[key]!r:.40}")
    return data


def _categories(data: dict[str, Any], source: Path, skips: Skips) -> dict[int, str]:
    """Category id -> name; a bad or duplicate entry skipped, none left: DataError."""
    found: dict[int, str] = {}
    for i, category in enumerate(data["categories"]):
        where = f"category #{i}"
        problem = _missing(category, ("id", "name"))
        if problem is None and not _integer(category["id"]):
            problem = f"id {category['id']!r} is not an integer"
        elif problem is None and category["id"] in found:
            first = found[category["id"]]
            problem = f"duplicate category id {category['id']} (the first, {first!r}, is kept)"
        if problem:
            skips.skip(where, f"{source}: {where}: {problem}")
            continue
        found[category["id"]] = str(category["name"])
    if not found:
        raise DataError(f"{source}: no categories")
    return found


def _image_entry(image: Any, i: int, source: Path, seen: dict[Any, Any]) -> tuple[str, str | None]:
    """(where, problem or None) of the i-th image entry."""
    problem = _missing(image, ("id", "file_name"))
    if problem:
        return f"image #{i}", problem
    where = f"image id {image['id']}"
    if not (_integer(image["id"]) or isinstance(image["id"], str)):
        return f"image #{i}", f"id {image['id']!r} is not an integer or a string"
    if image["id"] in seen:
        return where, "duplicate image id (the first entry is kept)"
    if not isinstance(image["file_name"], str):
        return where, f"file_name {image['file_name']!r} is not a string"
    for key in ("width", "height"):
        if key in image and not (_integer(image[key]) and image[key] > 0):
            return where, f"{key} {image[key]!r} is not a positive integer"
    return where, None


def _images(data: dict[str, Any], source: Path, skips: Skips) -> tuple[dict, set]:
    """(image id -> entry with its checked "path", the ids of skipped entries)."""
    images: dict[Any, dict[str, Any]] = {}
    skipped: set[Any] = set()
    folders: dict[str, str] = {}  # inside_root's memo
    for i, image in enumerate(data["images"]):
        where, problem = _image_entry(image, i, source, images)
        if problem is None:
            try:
                path = inside_root(source.parent, image["file_name"], source, where, folders)
            except DataError as error:
                problem = str(error).removeprefix(f"{source}: {where}: ")
            else:
                images[image["id"]] = {
                    **image,
                    "path": path,
                    "boxes": [],
                    "labels": [],
                    "where": [],
                }
                continue
        skips.skip(where, f"{source}: {where}: {problem}")
        image_id = image.get("id") if isinstance(image, dict) else None
        if (_integer(image_id) or isinstance(image_id, str)) and image_id not in images:
            skipped.add(image_id)
    return images, skipped


def _box(bbox: Any) -> tuple[list[float] | None, str | None]:
    """([x0, y0, x1, y1], None) for a valid COCO bbox, else (None, the problem)."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox):
        return None, f"bbox {bbox!r} is not 4 numbers [x, y, w, h]"
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return None, f"degenerate bbox {bbox} (width and height must be > 0)"
    return [x, y, x + w, y + h], None


def _annotation(entry: Any, i: int, images: dict, skipped: set, labels: dict) -> tuple[str, Any]:
    """(where, box or the problem as a str) of the i-th annotation."""
    if _missing(entry, ("id",)):
        return f"annotation #{i}", _missing(entry, ("id",))
    where = f"annotation id {entry['id']}"
    problem = _missing(entry, ("image_id", "category_id", "bbox"))
    if problem:
        return where, problem
    image_id, category_id = entry["image_id"], entry["category_id"]
    if (_integer(image_id) or isinstance(image_id, str)) and image_id in skipped:
        return where, f"its image id {image_id} is skipped (above)"
    if not (_integer(image_id) or isinstance(image_id, str)) or image_id not in images:
        return where, f"unknown image_id {image_id!r}"
    if not _integer(category_id) or category_id not in labels:
        return where, f"unknown category_id {category_id!r}; categories are {list(labels)}"
    box, problem = _box(entry["bbox"])
    return where, problem or box


def _attach_boxes(
    data: dict, images: tuple[dict, set], labels: dict, source: Path, skips: Skips
) -> None:
    """Put each annotation's box and label on its image entry; bad annotations skipped."""
    for i, entry in enumerate(data["annotations"]):
        where, box = _annotation(entry, i, *images, labels)
        if isinstance(box, str):
            skips.skip(where, f"{source}: {where}: {box}")
        elif not entry.get("iscrowd", 0):
            image = images[0][entry["image_id"]]
            image["boxes"].append(box)
            image["labels"].append(labels[entry["category_id"]])
            image["where"].append(where)


def _add_image(result: Annotations, image: dict[str, Any], where: str, skips: Skips) -> None:
    """Read the entry's file (or what the probe found) and add it with its boxes; a bad file
    or size is skipped."""
    source = result.source
    size = _size(image["path"], source, where, skips, len(image["boxes"]), result.probed)
    if size is None:
        return
    declared = (image.get("height", size[0]), image.get("width", size[1]))
    if declared != size:
        skips.skip(
            where,
            f"{source}: {where}: the file is {size[1]}x{size[0]} (width x height) but the "
            f"entry says {declared[1]}x{declared[0]}",
        )
        return
    for box, entry in zip(image["boxes"], image["where"], strict=True):
        if skips.strict and outside(box, size):
            raise DataError(
                f"{source}: {entry}: bbox {box} lies outside its image {size[1]}x{size[0]}"
            )
    result.add(
        image["path"],
        size,
        torch.tensor(image["boxes"], dtype=torch.float32).reshape(-1, 4),
        torch.tensor(image["labels"], dtype=torch.long),
    )


def read_coco_annotations(
    path: str | Path, *, strict: bool = False, image_size: int | None = None, cache: str = "off"
) -> Annotations:
    """The images and boxes of a COCO JSON file, checked (see the module docstring); with
    ``image_size``, its images decoded at that size on every core, through the decoded cache
    as ``cache`` says (``antlers.data.annotations.probe_images``)."""
    source = Path(path)
    skips = Skips(strict)
    data = _load_json(source)
    categories = _categories(data, source, skips)
    ids = tuple(sorted(categories))
    labels = {c: k for k, c in enumerate(ids)}
    images = _images(data, source, skips)
    _attach_boxes(data, images, labels, source, skips)
    result = Annotations(
        source, source.parent, [], [], [], [], tuple(categories[c] for c in ids), ids,
        BoxCounts(), skips,
    )  # fmt: skip
    order = sorted(images[0], key=str)
    if image_size is not None:
        paths = [images[0][i]["path"] for i in order]
        key = f"coco:{source.name}"
        result.probed = probe_images(source.parent, paths, image_size, cache, key)
    for image_id in order:
        _add_image(result, images[0][image_id], f"image id {image_id}", skips)
    skips.warn(source, "entries", "DetectionSet.skipped")
    if not result.files:
        raise DataError(f"{source}: no usable image (of {len(data['images'])} entries)")
    return result


def read_coco(
    path: str | Path, image_size: int, *, strict: bool = False, cache: str = "off"
) -> DetectionSet:
    """A COCO JSON dataset, images resized to image_size x image_size; ``strict``: refuse a
    bad entry instead of skipping it; ``cache``: "auto", "on" or "off", the decoded cache."""
    annotations = read_coco_annotations(path, strict=strict, image_size=image_size, cache=cache)
    return annotations.to_set(image_size)

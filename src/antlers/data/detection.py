"""Detection data by name or path: the built-in ``scenes``, a COCO JSON file or a YOLO folder.

    >>> train = load_detection("scenes", "train", n=8)          # doctest: +SKIP
    >>> train.boxes[0].shape                                   # doctest: +SKIP
    torch.Size([3, 4])

COCO files and YOLO folders hold one set of images; their test split is a deterministic 20%
(at least one image) chosen by ``seed``, unless a YOLO folder has images/train and images/val.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from antlers.data.boxset import DetectionSet

__all__ = [
    "DETECTION_SETS",
    "convert",
    "load_detection",
    "load_detection_splits",
    "read_annotations",
    "split_indices",
]

DETECTION_SETS = ("scenes",)
TEST_FRACTION = 0.2


def split_indices(n: int, split: str, seed: int) -> list[int]:
    """The rows of ``split`` ("train" or "test") in a set of n images: a seeded 20% is test."""
    order = np.random.default_rng([seed, 20]).permutation(n)
    n_test = max(1, round(n * TEST_FRACTION)) if n > 1 else 0
    rows = order[:n_test] if split == "test" else order[n_test:]
    return sorted(int(i) for i in rows)


def load_detection(
    name_or_path: str,
    split: str = "train",
    *,
    image_size: int | None = None,
    seed: int = 0,
    n: int | None = None,
    strict: bool = False,
    cache: str = "auto",
) -> DetectionSet:
    """One split of "scenes", a COCO JSON file or a YOLO folder, images resized to S x S
    (S = image_size, default 128); ``n`` limits the built-in set's size; ``strict``: refuse a
    bad entry of a COCO file or YOLO folder instead of skipping it (``antlers.data.skips``);
    ``cache``: "auto" (1,000 images or more), "on" or "off": read a COCO file's or YOLO
    folder's images through the decoded cache (``antlers.data.annotations``)."""
    options = {"image_size": image_size, "seed": seed, "n": n, "strict": strict, "cache": cache}
    return load_detection_splits(name_or_path, (split,), **options)[0]


def load_detection_splits(
    name_or_path: str,
    splits: Sequence[str] = ("train", "test"),
    *,
    image_size: int | None = None,
    seed: int = 0,
    n: int | None = None,
    strict: bool = False,
    cache: str = "auto",
) -> list[DetectionSet]:
    """``load_detection`` of each of ``splits``, a COCO file or YOLO folder read once."""
    for split in splits:
        if split not in ("train", "test"):
            raise ValueError(f"split must be one of ['train', 'test'], got {split!r}")
    if name_or_path == "scenes":
        from antlers.data.object_scenes import load_object_scenes

        return [load_object_scenes(s, image_size=image_size, seed=seed, n=n) for s in splits]
    path = Path(name_or_path).expanduser()
    size = image_size or 128
    if path.is_file() and path.suffix.lower() == ".json":
        from antlers.data.coco import read_coco

        whole = read_coco(path, size, strict=strict, cache=cache)
    elif path.is_dir():
        from antlers.data.yolo import read_yolo, yolo_splits

        subsets = yolo_splits(path)
        if subsets is not None:
            options = {"strict": strict, "cache": cache}
            return [read_yolo(path, size, subset=subsets[s], **options) for s in splits]
        whole = read_yolo(path, size, strict=strict, cache=cache)
    else:
        raise ValueError(
            f"unknown detection data {name_or_path!r}: not a built-in name "
            f"(one of {list(DETECTION_SETS)}), a COCO .json file or a YOLO folder"
        )
    return [
        whole.subset(split_indices(len(whole), s, seed), name=f"{whole.name}:{s}") for s in splits
    ]


def read_annotations(source: str | Path, strict: bool = False) -> Any:
    """The Annotations of a COCO JSON file or a YOLO folder (all its images); ``strict``:
    refuse a bad entry instead of skipping it."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() == ".json":
        from antlers.data.coco import read_coco_annotations

        return read_coco_annotations(path, strict=strict)
    if path.is_dir():
        from antlers.data.yolo import read_yolo_annotations, yolo_splits

        splits = yolo_splits(path)
        if splits is None:
            return read_yolo_annotations(path, strict=strict)
        parts = [read_yolo_annotations(path, s, strict=strict) for s in splits.values()]
        for part in parts[1:]:
            for file, size, b, lab in zip(
                part.files, part.sizes, part.boxes, part.labels, strict=True
            ):
                parts[0].files.append(file)
                parts[0].sizes.append(size)
                parts[0].boxes.append(b)
                parts[0].labels.append(lab)
            parts[0].skips.found += part.skips.found
        return parts[0]
    raise ValueError(f"{path}: not a COCO .json file or a YOLO folder")


def convert(source: str | Path, out: str | Path, strict: bool = False) -> tuple[Path, str]:
    """Convert a COCO JSON file into a YOLO folder ``out``, or a YOLO folder into a COCO JSON
    file ``out`` (ending in .json); images are copied; bad entries skipped and counted (with
    ``strict``: refused). Returns the output and a summary line."""
    from antlers.data.coco_write import write_coco
    from antlers.data.yolo import write_yolo

    out = Path(out).expanduser()
    annotations = read_annotations(source, strict)
    if out.resolve() == Path(source).expanduser().resolve() or out.resolve() == (
        annotations.root.resolve()
    ):
        raise ValueError(f"{out}: the output must differ from the source (never overwritten)")
    written = (
        write_coco(annotations, out)
        if out.suffix.lower() == ".json"
        else write_yolo(annotations, out)
    )
    n_boxes = sum(len(b) for b in annotations.boxes)
    summary = (
        f"{len(annotations.files)} images, {n_boxes} boxes, {len(annotations.classes)} classes "
        f"-> {written} ({annotations.counts.clamped} boxes clamped, "
        f"{annotations.counts.dropped} dropped, {len(annotations.skips.found)} entries skipped)"
    )
    return written, summary

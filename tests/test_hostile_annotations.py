"""Broken annotations and masks: one line each naming the file, the entry or line and the
problem; by default the entry is skipped and counted (a warning, the set's ``skipped``), with
``strict=True`` refused. Malformed JSON is always refused, with its line and column."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from antlers.cli import main
from antlers.data.coco import read_coco_annotations
from antlers.data.mask_folder import load_mask_folder
from antlers.data.skips import DataError
from antlers.data.yolo import read_yolo_annotations


def _image(path: Path, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (20, 40, 60)).save(path)


def _coco(root: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A COCO file of two 40x30 images and three boxes, edited by ``change``."""
    _image(root / "a.png")
    _image(root / "b.png")
    doc: dict[str, Any] = {
        "images": [
            {"id": 7, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 9, "file_name": "b.png", "width": 40, "height": 30},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 12, "bbox": [2, 3, 10, 8]},
            {"id": 2, "image_id": 9, "category_id": 5, "bbox": [5, 5, 10, 10]},
            {"id": 3, "image_id": 9, "category_id": 12, "bbox": [1, 1, 5, 5]},
        ],
        "categories": [{"id": 12, "name": "moose"}, {"id": 5, "name": "elk"}],
    }
    change(doc)
    path = root / "coco.json"
    path.write_text(json.dumps(doc))
    return path


def _set(doc: dict, key: str, index: int, **values: Any) -> None:
    doc[key][index].update(values)


COCO_CASES = {
    "image missing on disk": (
        lambda d: _set(d, "images", 1, file_name="gone.png"),
        "image id 9",
        "gone.png: no such file (its 2 box(es) left out)",
    ),
    "negative bbox width": (
        lambda d: _set(d, "annotations", 0, bbox=[2, 3, -10, 8]),
        "annotation id 1",
        "annotation id 1: degenerate bbox [2, 3, -10, 8] (width and height must be > 0)",
    ),
    "negative image height": (
        lambda d: (_set(d, "images", 0, height=-30), d["annotations"].pop(0)),
        "image id 7",
        "image id 7: height -30 is not a positive integer",
    ),
    "duplicate image id": (
        lambda d: d["images"].append({"id": 7, "file_name": "b.png"}),
        "image id 7",
        "image id 7: duplicate image id (the first entry is kept)",
    ),
    "duplicate category id": (
        lambda d: d["categories"].append({"id": 5, "name": "deer"}),
        "category #2",
        "category #2: duplicate category id 5 (the first, 'elk', is kept)",
    ),
    "unknown category": (
        lambda d: _set(d, "annotations", 2, category_id=3),
        "annotation id 3",
        "annotation id 3: unknown category_id 3; categories are [5, 12]",
    ),
    "unknown image": (
        lambda d: _set(d, "annotations", 2, image_id=8),
        "annotation id 3",
        "annotation id 3: unknown image_id 8",
    ),
    "NaN in a bbox": (
        lambda d: _set(d, "annotations", 2, bbox=[1, float("nan"), 5, 5]),
        "annotation id 3",
        "annotation id 3: bbox [1, nan, 5, 5] is not 4 numbers [x, y, w, h]",
    ),
    "size differs from the file": (
        lambda d: _set(d, "images", 1, width=80),
        "image id 9",
        "image id 9: the file is 40x30 (width x height) but the entry says 80x30",
    ),
    "an entry that is no object": (
        lambda d: d["annotations"].append([1, 2]),
        "annotation #3",
        "annotation #3: expected an object, got list",
    ),
}


@pytest.mark.parametrize("case", sorted(COCO_CASES))
def test_coco_entry_is_skipped_and_counted_or_refused_when_strict(
    tmp_path: Path, case: str
) -> None:
    change, entry, message = COCO_CASES[case]
    path = _coco(tmp_path, change)
    with pytest.warns(UserWarning, match=rf"coco\.json: skipped 1 entries: {re.escape(entry)}"):
        notes = read_coco_annotations(path)
    (line,) = notes.skips.lines
    assert line.startswith(f"{path}: {entry}: ")
    assert line.endswith(message)
    assert 1 <= len(notes.files) <= 2  # the rest is read
    with pytest.raises(DataError, match=re.escape(line)):
        read_coco_annotations(path, strict=True)


def test_coco_duplicate_image_id_keeps_the_first_and_its_boxes(tmp_path: Path) -> None:
    path = _coco(tmp_path, lambda d: d["images"].append({"id": 7, "file_name": "b.png"}))
    with pytest.warns(UserWarning, match="skipped 1 entries: image id 7"):
        notes = read_coco_annotations(path)
    assert [f.name for f in notes.files] == ["a.png", "b.png"]  # ids 7 (a.png) and 9
    assert notes.boxes[0].tolist() == [[2.0, 3.0, 12.0, 11.0]]  # not overwritten by b.png


def test_coco_box_outside_the_image_is_dropped_and_counted_or_refused_when_strict(
    tmp_path: Path,
) -> None:
    path = _coco(tmp_path, lambda d: _set(d, "annotations", 2, bbox=[50, 40, 5, 5]))
    notes = read_coco_annotations(path)
    assert notes.counts.dropped == 1
    assert [len(b) for b in notes.boxes] == [1, 1]
    message = f"{path}: annotation id 3: bbox [50, 40, 55, 45] lies outside its image 40x30"
    with pytest.raises(DataError, match=re.escape(message)):
        read_coco_annotations(path, strict=True)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"images": [],\n  "annotations": [}', "line 2, column 19: malformed JSON"),
        ("", "line 1, column 1: malformed JSON (Expecting value)"),
        ("[" * 100_000, "JSON nested too deeply"),
        ('{"images": 5, "annotations": [], "categories": []}', "'images' must be a list"),
        ('{"images": [], "annotations": [], "categories": []}', "no categories"),
    ],
)
def test_broken_coco_file_is_always_refused_in_one_line(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(DataError, match=re.escape(f"{path}: ") + ".*" + re.escape(where)):
        read_coco_annotations(path)


def _yolo(root: Path, lines: str) -> Path:
    _image(root / "images" / "a.png", (50, 20))
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "a.txt").write_text(lines)
    (root / "classes.txt").write_text("moose\nelk\n")
    return root


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.2", "a.txt:2: expected 5 fields 'class cx cy w h', got 4"),
        ("0 0.5 0.5 0.2 0.2 0.9", "a.txt:2: expected 5 fields 'class cx cy w h', got 6"),
        ("0 nan 0.5 0.2 0.2", "a.txt:2: non-finite number in '0 nan 0.5 0.2 0.2'"),
        ("inf 0.5 0.5 0.2 0.2", "a.txt:2: non-finite number"),
        ("1 0.5 0.5 -0.2 0.2", "a.txt:2: degenerate box"),
        ("7 0.5 0.5 0.2 0.2", "a.txt:2: class id 7 out of range [0, 2)"),
    ],
)
def test_yolo_line_is_skipped_and_counted_or_refused_when_strict(
    tmp_path: Path, line: str, message: str
) -> None:
    root = _yolo(tmp_path, f"1 0.5 0.5 0.2 0.5\n{line}\n")
    with pytest.warns(UserWarning, match=r"skipped 1 entries: a\.txt:2"):
        notes = read_yolo_annotations(root)
    assert notes.labels[0].tolist() == [1]  # the good line is kept
    assert len(notes.skips.lines) == 1
    assert message in notes.skips.lines[0]
    with pytest.raises(DataError, match=re.escape(message)):
        read_yolo_annotations(root, strict=True)


def test_yolo_label_file_that_is_not_text_skips_its_image(tmp_path: Path) -> None:
    root = _yolo(tmp_path, "")
    (root / "labels" / "a.txt").write_bytes(b"0 0.5 \xff\xfe")
    _image(root / "images" / "b.png")
    with pytest.warns(UserWarning, match=r"skipped 1 entries: a\.txt"):
        notes = read_yolo_annotations(root)
    assert [f.name for f in notes.files] == ["b.png"]
    assert "a.txt: not UTF-8 text (invalid byte at offset 6)" in notes.skips.lines[0]


def _masks(root: Path, bad: Callable[[Path], None]) -> Path:
    """A train/test mask folder of 3 + 3 pairs (6 wide, 5 high); ``bad`` spoils train's s1."""
    (root / "classes.txt").write_text("road\ncar\nsky\n")
    for split in ("train", "test"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir()
        for i in range(3):
            Image.new("RGB", (6, 5), (i, 0, 0)).save(root / split / "images" / f"s{i}.png")
            Image.new("L", (6, 5), 1).save(root / split / "masks" / f"s{i}.png")
    bad(root / "train" / "masks" / "s1.png")
    return root


def _ids(path: Path) -> None:
    ids = np.ones((5, 6), dtype=np.uint8)
    ids[2, 3] = 9
    Image.fromarray(ids).save(path)


MASK_CASES = {
    "id out of range": (_ids, "s1.png: class id 9 in the mask, but classes.txt has 3 classes"),
    "RGB mask": (
        lambda p: Image.new("RGB", (6, 5), (1, 1, 1)).save(p),
        "s1.png: mask has mode RGB (3 channels)",
    ),
    "size mismatch": (
        lambda p: Image.new("L", (7, 5), 1).save(p),
        "s1.png: mask is 7x5 (width x height) but its image s1.png is 6x5",
    ),
    "missing mask": (lambda p: p.unlink(), "s1.png: no mask"),
}


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_bad_mask_pair_is_skipped_and_counted_or_refused_when_strict(
    tmp_path: Path, case: str
) -> None:
    bad, message = MASK_CASES[case]
    root = _masks(tmp_path, bad)
    with pytest.warns(UserWarning, match=r"skipped 1 image/mask pair\(s\): s1\.png"):
        data = load_mask_folder(root, "train", image_size=4)
    assert len(data) == 2
    assert message in data.skipped[0]
    assert data.skipped[0].count("\n") == 0
    with pytest.raises(DataError, match=re.escape(message)):
        load_mask_folder(root, "train", image_size=4, strict=True)


def test_convert_strict_refuses_and_default_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _coco(tmp_path / "src", lambda d: _set(d, "annotations", 2, category_id=3))
    out = tmp_path / "yolo"
    assert main(["convert", str(path), str(out), "--strict"]) == 2
    err = capsys.readouterr().err
    problem = "annotation id 3: unknown category_id 3; categories are [5, 12]"
    assert err == f"antlers: error: {path}: {problem}\n"
    with pytest.warns(UserWarning, match="skipped 1 entries"):
        assert main(["convert", str(path), str(out)]) == 0
    assert "2 images, 2 boxes, 2 classes" in capsys.readouterr().out


def test_coco_annotations_of_a_skipped_image_say_so(tmp_path: Path) -> None:
    path = _coco(tmp_path, lambda d: _set(d, "images", 0, width=-40))
    with pytest.warns(UserWarning, match="skipped 2 entries: image id 7, annotation id 1"):
        notes = read_coco_annotations(path)
    assert notes.skips.lines[1] == f"{path}: annotation id 1: its image id 7 is skipped (above)"

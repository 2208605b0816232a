"""Detection data: the scenes set, COCO and YOLO readers (every annotation error), convert."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from antlers.cli import main
from antlers.data.coco import read_coco, read_coco_annotations
from antlers.data.detection import convert, load_detection
from antlers.data.object_scenes import load_object_scenes
from antlers.data.shapes import SHAPE_CLASSES
from antlers.data.yolo import read_yolo, read_yolo_annotations


def test_scenes_are_deterministic_with_boxes_around_the_objects() -> None:
    a = load_object_scenes("train", n=12, seed=3, fashion=False)
    b = load_object_scenes("train", n=12, seed=3, fashion=False)
    c = load_object_scenes("test", n=12, seed=3, fashion=False)
    assert a.classes == SHAPE_CLASSES
    assert a.images.shape == (12, 3, 128, 128)
    assert a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes, strict=True))
    assert not torch.equal(a.images, c.images)  # the splits are different streams
    counts = [len(x) for x in a.boxes]
    assert min(counts) >= 1
    assert max(counts) <= 5
    assert max(counts) > 1
    for image, boxes, labels in zip(a.images, a.boxes, a.labels, strict=True):
        assert len(boxes) == len(labels)
        assert (labels < len(SHAPE_CLASSES)).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert (boxes >= 0).all()
        assert (boxes <= 128).all()
        for x0, y0, x1, y1 in boxes.int().tolist():  # something is drawn inside each box:
            inside = image[:, y0:y1, x0:x1].float()
            assert inside.std() > 5


def test_scenes_with_fashion_items_have_ten_classes() -> None:
    # .ci/run installs Debian's dataset-fashion-mnist; without it this test fails, never skips.
    assert Path("/usr/share/datasets/fashion-mnist").is_dir(), (
        "apt-get install dataset-fashion-mnist"
    )
    s = load_object_scenes("test", n=40, fashion=True)
    assert s.classes[-4:] == ("trouser", "dress", "sneaker", "bag")
    assert int(torch.cat(s.labels).max()) >= 6  # some Fashion-MNIST items were placed


def _image(path: Path, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def _coco(tmp_path: Path, **changes: object) -> Path:
    _image(tmp_path / "images" / "a.png")  # 40 wide, 30 high
    _image(tmp_path / "images" / "b.png")
    doc = {
        "images": [
            {"id": 7, "file_name": "images/a.png", "width": 40, "height": 30},
            {"id": 9, "file_name": "images/b.png", "width": 40, "height": 30},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 12, "bbox": [2, 3, 10, 8]},
            {"id": 2, "image_id": 7, "category_id": 5, "bbox": [35, 20, 10, 20]},  # sticks out
            {"id": 3, "image_id": 9, "category_id": 12, "bbox": [50, 40, 5, 5]},  # outside
        ],
        "categories": [{"id": 12, "name": "moose"}, {"id": 5, "name": "elk"}],
    }
    doc.update(changes)
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_maps_categories_clamps_and_drops(tmp_path: Path) -> None:
    path = _coco(tmp_path)
    before = path.read_text()
    data = read_coco(path, image_size=60)
    assert data.classes == ("elk", "moose")
    assert data.category_ids == (5, 12)
    assert data.labels[0].tolist() == [1, 0]
    assert len(data.boxes[1]) == 0
    # image 7 is 40x30, resized to 60x60: x * 1.5, y * 2; the elk box clamped at (40, 30)
    expected = torch.tensor([[2 * 1.5, 3 * 2, 12 * 1.5, 11 * 2], [35 * 1.5, 20 * 2, 60, 60]])
    assert torch.allclose(data.boxes[0], expected)
    assert "3 boxes" not in data.notes[0]
    assert "1 clamped" in data.notes[0]
    assert "1 dropped" in data.notes[0]
    assert path.read_text() == before  # never modified


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"categories": None}, "top level: missing key 'categories'"),
        (
            {"annotations": [{"id": 4, "image_id": 7, "category_id": 12}]},
            "annotation id 4: missing key 'bbox'",
        ),
        (
            {"annotations": [{"id": 4, "image_id": 8, "category_id": 12, "bbox": [1, 1, 2, 2]}]},
            "annotation id 4: unknown image_id 8",
        ),
        (
            {"annotations": [{"id": 4, "image_id": 7, "category_id": 3, "bbox": [1, 1, 2, 2]}]},
            "annotation id 4: unknown category_id 3",
        ),
        (
            {"annotations": [{"id": 4, "image_id": 7, "category_id": 5, "bbox": [1, "a", 2, 2]}]},
            "annotation id 4: bbox [1, 'a', 2, 2] is not 4 numbers",
        ),
        (
            {"annotations": [{"id": 4, "image_id": 7, "category_id": 5, "bbox": [1, 1, 0, 2]}]},
            "annotation id 4: degenerate bbox",
        ),
        (
            {"images": [{"id": 7, "file_name": "../outside.png"}]},
            "image id 7: file name '../outside.png' escapes the dataset folder",
        ),
        (
            {"images": [{"id": 7, "file_name": "/etc/passwd"}]},
            "image id 7: file name '/etc/passwd'",
        ),
        ({"images": [{"id": 7}]}, "image #0: missing key 'file_name'"),
    ],
)
def test_coco_errors_name_the_file_the_entry_and_the_problem(
    tmp_path: Path, changes: dict, message: str
) -> None:
    if changes.get("categories", 1) is None:
        changes = {}
        path = _coco(tmp_path)
        doc = json.loads(path.read_text())
        del doc["categories"]
        path.write_text(json.dumps(doc))
    else:
        if "images" in changes and "annotations" not in changes:
            changes["annotations"] = []
        path = _coco(tmp_path, **changes)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        read_coco_annotations(path, strict=True)


@pytest.mark.parametrize("link", ["images/link.png", "linked/a.png"])
def test_coco_refuses_a_link_out_of_the_dataset_folder(tmp_path: Path, link: str) -> None:
    """A file that is a link out of the folder, or a file in a folder that is one: refused
    (the folders' real paths are remembered between entries, the links are not)."""
    root = tmp_path / "set"
    _image(tmp_path / "outside" / "a.png")
    path = _coco(root)
    (root / "images" / "link.png").symlink_to(tmp_path / "outside" / "a.png")
    (root / "linked").symlink_to(tmp_path / "outside")
    doc = json.loads(path.read_text())
    doc["images"] += [{"id": 11, "file_name": link}, {"id": 12, "file_name": "images/b.png"}]
    path.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="skipped"):
        found = read_coco_annotations(path)
    assert [line for line in found.skips.lines if "escapes" in line] == [
        f"{path}: image id 11: file name {link!r} escapes the dataset folder {root}"
    ]
    assert sorted(f.name for f in found.files) == ["a.png", "b.png", "b.png"]  # 7, 9 and 12


def _yolo(tmp_path: Path, lines: str) -> Path:
    root = tmp_path / "yolo"
    _image(root / "images" / "a.png", (50, 20))
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "a.txt").write_text(lines)
    (root / "classes.txt").write_text("moose\nelk\n")
    return root


def test_yolo_reads_normalised_boxes_and_clamps(tmp_path: Path) -> None:
    root = _yolo(tmp_path, "1 0.5 0.5 0.2 0.5\n\n0 0.95 0.5 0.2 0.4\n0 2.0 2.0 0.1 0.1\n")
    notes = read_yolo_annotations(root)
    assert torch.allclose(notes.boxes[0], torch.tensor([[20.0, 5, 30, 15], [42.5, 6, 50, 14]]))
    assert notes.labels[0].tolist() == [1, 0]
    assert (notes.counts.clamped, notes.counts.dropped) == (1, 1)
    data = read_yolo(root, 100)
    assert torch.allclose(data.boxes[0][0], torch.tensor([40.0, 25, 60, 75]))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.2", "a.txt:2: expected 5 fields 'class cx cy w h', got 4"),
        ("0 0.5 x 0.2 0.2", "a.txt:2: non-numeric field"),
        ("2 0.5 0.5 0.2 0.2", "a.txt:2: class id 2 out of range [0, 2)"),
        ("-1 0.5 0.5 0.2 0.2", "a.txt:2: class id -1 out of range"),
        ("0.5 0.5 0.5 0.2 0.2", "a.txt:2: class id 0.5 out of range"),
        ("0 0.5 0.5 0 0.2", "a.txt:2: degenerate box"),
    ],
)
def test_yolo_errors_name_the_file_the_line_and_the_problem(
    tmp_path: Path, line: str, message: str
) -> None:
    root = _yolo(tmp_path, f"1 0.5 0.5 0.2 0.5\n{line}\n")
    with pytest.raises(ValueError, match=re.escape(message)):
        read_yolo_annotations(root, strict=True)


def test_yolo_without_classes_file(tmp_path: Path) -> None:
    root = _yolo(tmp_path, "")
    (root / "classes.txt").unlink()
    with pytest.raises(ValueError, match=r"classes\.txt: missing"):
        read_yolo_annotations(root)


def test_convert_coco_to_yolo_and_back(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _coco(tmp_path / "src")
    assert main(["convert", str(path), str(tmp_path / "yolo")]) == 0
    assert "2 images, 2 boxes, 2 classes" in capsys.readouterr().out
    back, _ = convert(tmp_path / "yolo", tmp_path / "back" / "coco.json")
    first, second = read_coco_annotations(path), read_coco_annotations(back)
    assert second.classes == first.classes
    for a, b in zip(first.boxes, second.boxes, strict=True):
        assert torch.allclose(a, b, atol=1e-3)
    for a, b in zip(first.labels, second.labels, strict=True):
        assert torch.equal(a, b)


def test_detection_splits_are_disjoint_and_deterministic(tmp_path: Path) -> None:
    path = _coco(tmp_path)
    train, test = load_detection(str(path), "train"), load_detection(str(path), "test")
    assert len(train) + len(test) == 2
    assert len(test) == 1
    assert set(train.files).isdisjoint(test.files)
    assert load_detection(str(path), "test").files == test.files
    with pytest.raises(ValueError, match="unknown detection data 'nowhere'"):
        load_detection("nowhere")


def test_an_image_spoiled_after_reading_is_refused_when_loaded(tmp_path: Path) -> None:
    """Annotations read without a training size, then loaded after an image was spoiled:
    DataError naming the file, not a black image."""
    annotations = read_coco_annotations(_coco(tmp_path))
    (tmp_path / "images" / "b.png").write_bytes(b"not a png any more")
    with pytest.raises(ValueError, match=r"image b\.png: .*b\.png: cannot read as an image"):
        annotations.to_set(16)

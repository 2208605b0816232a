"""COCO files and YOLO folders through the decoded cache: the same images, boxes and skipped
lines as decoding them in the run; later runs open no image; the stretch agrees with torch's."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import antlers.data.annotations as annotations_module
import antlers.data.cache as cache_module
from antlers.data.detection import load_detection

SIZE = 24


def _photo(path: Path, rng: np.random.Generator) -> tuple[int, int]:
    """A smooth random RGB image of a random size saved at ``path``; (height, width)."""
    h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC).save(path)
    return h, w


@pytest.fixture
def coco(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A COCO file of 30 images of random sizes, two boxes each; one image is not a PNG."""
    monkeypatch.setenv("ANTLERS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    (tmp_path / "set" / "images").mkdir(parents=True)
    images, boxes = [], []
    for i in range(30):
        h, w = _photo(tmp_path / "set" / "images" / f"{i:02d}.png", rng)
        images.append({"id": i, "file_name": f"images/{i:02d}.png", "height": h, "width": w})
        for k in range(2):
            box = [float(rng.integers(0, w // 2)), float(rng.integers(0, h // 2)), 9.0, 7.0]
            boxes.append({"id": 2 * i + k, "image_id": i, "category_id": k + 1, "bbox": box})
    (tmp_path / "set" / "images" / "07.png").write_bytes(b"not a png")
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    data = {"images": images, "annotations": boxes, "categories": categories}
    (tmp_path / "set" / "coco.json").write_text(json.dumps(data))
    return tmp_path / "set" / "coco.json"


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The image files the cache decodes (appended at each call)."""
    names: list[str] = []
    real = cache_module.decode_into

    def counting(items, *args, **kwargs):  # type: ignore[no-untyped-def]
        names.extend(Path(item).name for item in items)
        return real(items, *args, **kwargs)

    monkeypatch.setattr(cache_module, "decode_into", counting)
    return names


def _load(source: Path, split: str, cache: str) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unreadable image's; compared by the tests
        return load_detection(str(source), split, image_size=SIZE, cache=cache)


def _same(a: object, b: object) -> None:
    everything = torch.arange(len(a))
    assert torch.equal(a.pick(everything), b.pick(everything))
    for x, y in zip(a.boxes + a.labels, b.boxes + b.labels, strict=True):
        assert torch.equal(x, y)
    assert (a.files, a.sizes, a.skipped, a.notes) == (b.files, b.sizes, b.skipped, b.notes)


def test_a_coco_file_through_the_cache_equals_decoding_it(
    coco: Path, decoded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for split in ("train", "test"):
        memory, cached = _load(coco, split, "off"), _load(coco, split, "on")
        assert memory.rows is None
        assert cached.rows is not None  # memory-mapped, picked by rows
        _same(memory, cached)
    assert len(decoded) == 30  # both splits, once
    lines = _load(coco, "train", "on").skipped  # the whole file's, before the split
    assert len(lines) == 1
    assert "07.png" in lines[0]
    memory = _load(coco, "train", "off")

    def no_image(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image was opened")

    monkeypatch.setattr(annotations_module, "open_image", no_image)
    decoded.clear()
    again = _load(coco, "train", "on")  # sizes, reasons and pixels from the cache
    assert decoded == []
    _same(memory, again)


def test_a_yolo_folder_caches_each_subset_once(
    tmp_path: Path, decoded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTLERS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    root = tmp_path / "yolo"
    (root / "classes.txt").parent.mkdir(parents=True)
    (root / "classes.txt").write_text("cat\ndog\n")
    for subset, n in (("train", 9), ("val", 4)):
        (root / "images" / subset).mkdir(parents=True)
        (root / "labels" / subset).mkdir(parents=True)
        for i in range(n):
            _photo(root / "images" / subset / f"{i}.png", rng)
            (root / "labels" / subset / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.4 0.3\n")
    for _ in range(2):
        splits = {s: _load(root, s, "on") for s in ("train", "test")}
        for split, data in splits.items():
            _same(_load(root, split, "off"), data)
    assert sorted(decoded) == sorted(
        [f"{i}.png" for i in range(9)] + [f"{i}.png" for i in range(4)]
    )


def test_the_stretch_agrees_with_torch_antialiased_bilinear(coco: Path) -> None:
    """Pillow's bilinear (what the readers use) against torch's, antialiased: the same
    filter, to within rounding."""
    path = coco.parent / "images" / "03.png"
    ((row, (h, w)),) = annotations_module.decode_stretched([str(path)], SIZE, 3)
    with Image.open(path) as image:
        array = torch.from_numpy(np.asarray(image.convert("RGB")).copy())
    assert (h, w) == tuple(array.shape[:2])
    oracle = torch.nn.functional.interpolate(
        array.permute(2, 0, 1)[None].float(), (SIZE, SIZE), mode="bilinear", antialias=True
    )[0]
    assert (torch.tensor(row).float() - oracle).abs().max() <= 2.0

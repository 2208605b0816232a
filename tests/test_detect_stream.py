"""Streaming a COCO file: batches the same for any number of workers, boxes cropped with the
image (each still on its object, with its label; none outside the crop or empty, those cut off
dropped with their labels), a file gone since the cache was built is its cached row and one
warning, and training streams."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from antlers.data.detection import load_detection
from antlers.tasks.detect.stream import DetectStreamLoader

SIZE = 32
COLOURS = ((255, 0, 0), (0, 0, 255))  # of class 0 (cat) and 1 (dog)


def _picture(path: Path, rng: np.random.Generator, h: int, w: int) -> list[dict]:
    """A black image with filled rectangles of the classes' colours, 12 px apart at least,
    saved at ``path``; their COCO annotations (without ids)."""
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    boxes = []
    for y in range(4, h - 20, 32):
        for x in range(4, w - 20, 32):
            bw, bh, label = int(rng.integers(8, 21)), int(rng.integers(8, 21)), int(rng.integers(2))
            pixels[y : y + bh, x : x + bw] = COLOURS[label]
            boxes.append({"category_id": label + 1, "bbox": [x, y, bw, bh]})
    Image.fromarray(pixels).save(path, quality=95)
    return boxes


@pytest.fixture
def coco(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A COCO file of 12 images of 100 x 80 to 240 x 200 (the largest JPEGs, which may be
    decoded at half size), the decoded cache in tmp_path."""
    monkeypatch.setenv("ANTLERS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    (tmp_path / "set" / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(12):
        h, w = (80, 100) if i % 3 else (200, 240)
        name = f"images/{i:02d}.{'png' if i % 3 else 'jpg'}"
        for box in _picture(tmp_path / "set" / name, rng, h, w):
            annotations.append({"id": len(annotations), "image_id": i, **box})
        images.append({"id": i, "file_name": name, "height": h, "width": w})
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    data = {"images": images, "annotations": annotations, "categories": categories}
    (tmp_path / "set" / "coco.json").write_text(json.dumps(data))
    return tmp_path / "set" / "coco.json"


def _train(coco: Path, size: int = SIZE) -> object:
    return load_detection(str(coco), "train", image_size=size, cache="on")


def _batches(coco: Path, workers: int, seed: int = 3) -> list[dict]:
    loader = DetectStreamLoader.of(_train(coco), 4, workers, shuffle=True, seed=seed, flip=True)
    return [batch for epoch in (0, 1) for batch in loader.epoch(epoch)]


def test_batches_do_not_depend_on_the_workers_but_on_the_seed(coco: Path) -> None:
    here, forked, other = _batches(coco, 0), _batches(coco, 2), _batches(coco, 0, seed=4)
    assert len(here) == len(forked) == 6  # 10 training images, two epochs (last batch partial)
    for a, b in zip(here, forked, strict=True):
        assert torch.equal(a["image"], b["image"])
        assert torch.equal(a["index"], b["index"])
        for key in ("boxes", "labels"):
            assert all(torch.equal(x, y) for x, y in zip(a[key], b[key], strict=True))
    assert here[0]["image"].shape == (4, 3, SIZE, SIZE)
    assert here[0]["index"].dtype == torch.int64
    assert not torch.equal(here[0]["image"], other[0]["image"])


def _on_its_object(image: torch.Tensor, box: torch.Tensor, label: int) -> bool:
    """Whether the pixels inside ``box`` are mostly coloured, of class ``label``'s colour."""
    x0, y0, x1, y1 = box.round().long().tolist()
    inside = image[:, y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].mean(dim=(1, 2))
    own, other = (inside[0], inside[2]) if label == 0 else (inside[2], inside[0])
    return bool(own > 0.4 and own > 2 * other)


def test_boxes_are_cropped_with_the_image_and_keep_their_labels(coco: Path) -> None:
    batches, train = _batches(coco, 0), _train(coco)
    found = on_object = 0
    for batch in batches:
        for image, boxes, labels in zip(
            batch["image"], batch["boxes"], batch["labels"], strict=True
        ):
            assert boxes.dtype == torch.float32
            assert labels.dtype == torch.int64
            assert boxes.shape == (len(labels), 4)
            assert (boxes >= 0).all()
            assert (boxes <= SIZE).all()
            assert (boxes[:, 2:] - boxes[:, :2] >= 1).all()
            found += len(labels)
            on_object += sum(map(_on_its_object, [image] * len(labels), boxes, labels.tolist()))
    given = sum(len(train.labels[int(i)]) for batch in batches for i in batch["index"])
    assert 0 < found < given  # the crops cut some boxes off
    assert on_object > 0.95 * found


def test_a_file_gone_since_the_cache_was_built_is_its_cached_row(coco: Path) -> None:
    train = _train(coco)
    Path(train.files[0]).unlink()
    loader = DetectStreamLoader.of(train, 16, 0)  # no shuffle: sample 0 first
    with pytest.warns(UserWarning, match=r"epoch 0: 1 training file\(s\) could not be read"):
        (batch,) = list(loader.epoch(0))
    assert torch.equal(batch["image"][0], train.pick(torch.tensor([0]))[0].float() / 255)
    assert torch.equal(batch["boxes"][0], train.boxes[0])
    assert torch.equal(batch["labels"][0], train.labels[0])


def test_training_streams_a_coco_file_and_refuses_the_built_in_scenes(
    coco: Path, tmp_path: Path
) -> None:
    from antlers.config import TrainConfig
    from antlers.data.decode import available_cores
    from antlers.engine.fit import fit
    from antlers.tasks.detect.task import DetectTask

    options = {"task": "detect", "data": str(coco), "stream": True, "image_size": 64}
    config = TrainConfig(**options, batch_size=4, max_steps=3, out=str(tmp_path / "runs"))
    config = config.replace(device="cpu")
    train = DetectTask().load_data(config).train
    assert isinstance(train, DetectStreamLoader)
    assert train.workers == available_cores()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(DetectTask(), config, log=lambda *_: None)
    assert result.stopped_by == "max_steps"
    config = TrainConfig(task="detect", data="scenes", stream=True)
    with pytest.raises(ValueError, match="scenes: streaming reads the image files of a COCO"):
        DetectTask().load_data(config)

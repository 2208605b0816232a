"""Fuzzing every reader: whatever the bytes, only the documented error escapes.

Each target writes hypothesis's bytes (random, or a valid file with bytes changed and cut) as the
file a reader reads, calls the reader, and lets only its documented error type through: a
ValueError (its kinds: ImageError, DataError, CheckpointError) naming the problem. Anything else
fails the test with the input that caused it. The suite runs ``EXAMPLES`` inputs a reader;
``benchmarks/fuzz.py`` runs each for minutes through the same ``TARGETS``.
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

EXAMPLES = 200


def _png(mode: str = "RGB", size: tuple[int, int] = (6, 5)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 1).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _idx() -> bytes:
    return bytes([0, 0, 0x08, 2]) + np.asarray([3, 4], ">u4").tobytes() + bytes(range(12))


def _safetensors() -> bytes:
    import torch
    from safetensors.torch import save

    meta = {"antlers": json.dumps({"task": "classify"})}
    return save({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, metadata=meta)


def _coco() -> bytes:
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 6, "height": 5}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2]}],
        "categories": [{"id": 3, "name": "moose"}],
    }
    return json.dumps(doc).encode()


def _config() -> bytes:
    from antlers.config import TrainConfig

    return TrainConfig(task="classify").to_json().encode()


@st.composite
def mutated(draw: st.DrawFn, valid: Callable[[], bytes]) -> bytes:
    """``valid()`` with a few bytes changed, a slice repeated, and the end cut at random."""
    data = bytearray(valid())
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        start = draw(st.integers(0, len(data) - 1))
        data[start:start] = data[start : start + draw(st.integers(1, 16))]
    return bytes(data[: draw(st.integers(0, len(data)))])


def _inputs(valid: Callable[[], bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), mutated(valid))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def coco_documents(draw: st.DrawFn) -> bytes:
    """COCO-shaped JSON: the three lists, with entries of random keys and values."""
    keys = st.sampled_from(["id", "file_name", "image_id", "category_id", "bbox", "name", "width"])
    entry = st.dictionaries(keys, JSON | st.sampled_from([1, "a.png", [1, 1, 2, 2]]), max_size=6)
    lists = ("images", "annotations", "categories")
    doc = {key: draw(st.lists(entry, max_size=4) | JSON) for key in lists}
    return json.dumps(doc).encode()


def read_idx_file(data: bytes, folder: Path) -> None:
    from antlers.data.idx import read_idx

    (folder / "f-idx3-ubyte").write_bytes(data)
    read_idx(folder / "f-idx3-ubyte")


def read_cifar_file(data: bytes, folder: Path) -> None:
    from antlers.data.cifar import read_cifar_batch

    (folder / "data_batch_1.bin").write_bytes(data)
    read_cifar_batch(folder / "data_batch_1.bin")


def read_coco_file(data: bytes, folder: Path) -> None:
    from antlers.data.coco import read_coco_annotations

    (folder / "a.png").write_bytes(_png())
    (folder / "c.json").write_bytes(data)
    read_coco_annotations(folder / "c.json")


def read_yolo_labels(data: bytes, folder: Path) -> None:
    from antlers.data.yolo import read_yolo_annotations

    (folder / "images").mkdir()
    (folder / "labels").mkdir()
    (folder / "images" / "a.png").write_bytes(_png())
    (folder / "classes.txt").write_text("moose\nelk\n")
    (folder / "labels" / "a.txt").write_bytes(data)
    read_yolo_annotations(folder, strict=True)


def read_mask_png(data: bytes, folder: Path) -> None:
    from antlers.data.mask_folder import load_mask_folder

    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    (folder / "classes.txt").write_text("road\ncar\n")
    (folder / "images" / "a.png").write_bytes(_png())
    (folder / "masks" / "a.png").write_bytes(data)
    load_mask_folder(folder, "train", image_size=4, strict=True)


def read_image_file(data: bytes, folder: Path) -> None:
    from antlers.io.images import image_to_tensor

    (folder / "x.jpg").write_bytes(data)
    image_to_tensor(folder / "x.jpg", 3, (4, 4))


def read_weights(data: bytes, folder: Path) -> None:
    from antlers.engine.checkpoint import load_weights

    (folder / "w.safetensors").write_bytes(data)
    load_weights(folder / "w.safetensors")


def read_config(data: bytes, folder: Path) -> None:
    from antlers.config import TrainConfig

    TrainConfig.from_json(data.decode("utf-8", errors="replace"))


@dataclass(frozen=True)
class Target:
    """A reader to fuzz: how to call it on bytes, which inputs, the error it may raise."""

    read: Callable[[bytes, Path], None]
    inputs: st.SearchStrategy[bytes]
    documented: type[Exception] = ValueError


TARGETS = {
    "idx": Target(read_idx_file, _inputs(_idx)),
    "cifar10": Target(read_cifar_file, st.binary(max_size=7000) | mutated(lambda: bytes(3073 * 2))),
    "coco json": Target(read_coco_file, _inputs(_coco) | coco_documents()),
    "yolo text": Target(
        read_yolo_labels, _inputs(lambda: b"0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.1 0.1\n")
    ),
    "mask png": Target(read_mask_png, _inputs(lambda: _png("L")) | mutated(lambda: _png("P"))),
    "image file": Target(read_image_file, _inputs(_png) | mutated(_jpeg)),
    "safetensors": Target(read_weights, _inputs(_safetensors)),
    "config.json": Target(
        read_config, _inputs(_config) | JSON.map(lambda v: json.dumps(v).encode())
    ),
}


def check(target: Target, data: bytes) -> None:
    """Run the reader on ``data`` in a fresh folder; only ``target.documented`` may escape."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            target.read(data, Path(tmp))
        except target.documented as error:
            if not str(error).strip():
                raise AssertionError(f"an empty message for {data[:80]!r}") from error


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_only_the_documented_error_escapes_a_reader(name: str) -> None:
    target = TARGETS[name]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(target.inputs)
    def fuzz(data: bytes) -> None:
        check(target, data)

    fuzz()

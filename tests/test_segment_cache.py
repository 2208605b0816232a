"""A mask folder through the decoded cache: the same pairs, skipped lines and batches as reading
it in the run; later runs decode nothing, a changed mask or class list is decoded again."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import antlers.data.cache as cache_module
from antlers.data.mask_folder import load_mask_folder
from antlers.tasks.segment.loader import SegmentLoader
from antlers.tasks.splits import validation_split
from test_segment_data import _write_folder

SIZE = 12


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """24 pairs of random sizes, one without its mask and one image that is not a JPEG."""
    monkeypatch.setenv("ANTLERS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "set"
    _write_folder(root, n=24, size=(19, 14))
    (root / "masks" / "im3.png").unlink()
    (root / "images" / "im8.jpg").write_bytes(b"not a jpeg")
    return root


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The images whose pairs the cache decodes (appended at each call)."""
    names: list[str] = []
    real = cache_module.decode_into

    def counting(items, *args, **kwargs):  # type: ignore[no-untyped-def]
        names.extend(Path(item[0]).name for item in items)
        return real(items, *args, **kwargs)

    monkeypatch.setattr(cache_module, "decode_into", counting)
    return names


def _load(root: Path, split: str, cache: str) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the two bad pairs'; compared by the tests
        return load_mask_folder(root, split, image_size=SIZE, cache=cache, progress=False)


def _batches(data: object) -> list[dict[str, torch.Tensor]]:
    loader = SegmentLoader.of(data, 5, shuffle=True, flip=True, crop_padding=2, seed=3)
    return [batch for epoch in (0, 1) for batch in loader.epoch(epoch)]


def test_cached_pairs_equal_the_pairs_read_in_the_run(folder: Path, decoded: list[str]) -> None:
    skipped = []
    for split in ("train", "test"):
        memory, cached = _load(folder, split, "off"), _load(folder, split, "on")
        assert memory.rows is None
        assert cached.rows is not None
        for a, b in zip(memory.arrays(), cached.arrays(), strict=True):
            assert torch.equal(a, b)
        assert memory.skipped == cached.skipped
        skipped += cached.skipped
        for a, b in zip(validation_split(memory, 0), validation_split(cached, 0), strict=True):
            assert b.rows is not None  # a subset picks rows, copies no pixels
            for x, y in zip(a.arrays(), b.arrays(), strict=True):
                assert torch.equal(x, y)
        for a, b in zip(_batches(memory), _batches(cached), strict=True):
            assert torch.equal(a["image"], b["image"])
            assert torch.equal(a["mask"], b["mask"])
    assert sorted(decoded) == sorted(f"im{i}.jpg" for i in range(24))  # once, both splits
    assert len(skipped) == 2
    assert any("no mask" in line and "im3.png" in line for line in skipped)
    assert any("im8.jpg" in line for line in skipped)


def test_later_runs_decode_only_what_changed(folder: Path, decoded: list[str]) -> None:
    _load(folder, "train", "on")
    decoded.clear()
    _load(folder, "test", "on")
    assert decoded == []  # both splits were decoded by the first call
    ids = np.full((14, 19), 2, dtype=np.uint8)
    Image.fromarray(ids, mode="L").save(folder / "masks" / "im5.png")  # a new version
    Image.fromarray(ids, mode="L").save(folder / "masks" / "im3.png")  # the missing mask
    splits = {s: _load(folder, s, "on") for s in ("train", "test")}
    assert sorted(decoded) == ["im3.jpg", "im5.jpg"]
    assert sum(len(s.skipped) for s in splits.values()) == 1  # im8.jpg only
    fresh = {s: _load(folder, s, "off") for s in ("train", "test")}
    for split, data in splits.items():
        assert torch.equal(data.arrays()[1], fresh[split].arrays()[1])
    decoded.clear()
    (folder / "classes.txt").write_text("background\ncat\ndog\nbird\n")  # another policy
    _load(folder, "train", "on")
    assert len(decoded) == 24


def test_a_segment_run_trains_from_the_cache_as_from_memory(folder: Path, tmp_path: Path) -> None:
    import antlers

    options = {"data": str(folder), "model": "unet-w4-d2", "image_size": SIZE, "epochs": 2}
    options |= {"batch_size": 4, "out": str(tmp_path / "runs")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        memory = antlers.train("segment", data_cache="off", **options)
        cached = antlers.train("segment", data_cache="on", **options)
    untimed = [
        [{k: v for k, v in row.items() if k != "seconds"} for row in run.metrics]
        for run in (memory, cached)
    ]
    assert untimed[0] == untimed[1] != []
    assert memory.test_metrics == cached.test_metrics
    assert (cached.path / "overlays.png").is_file()

"""Streaming a mask folder: batches the same for any number of workers, image and mask cropped
as one (the mask still the image's thresholded red), only the file's ids in a mask, a pair gone
since the cache was built is its cached row and one warning, and training streams."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from antlers.data.mask_folder import load_mask_folder
from antlers.tasks.segment.stream import SegmentStreamLoader

SIZE = 16


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mask folder of 12 pairs of about 64 x 48: blocks of sharp colour whose mask is 1 where
    red > 127, else 0, and 255 (ignore) where blue is 255; the decoded cache in tmp_path."""
    monkeypatch.setenv("ANTLERS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("background\nred\n")
    rng = np.random.default_rng(0)
    for i in range(12):
        h, w = 48 + 4 * (i % 3), 64 - 4 * (i % 2)
        coarse = rng.choice(np.array([0, 255], dtype=np.uint8), (4, 5, 3))
        coarse[..., 2] = np.where(rng.random((4, 5)) < 0.15, 255, 40)  # a few ignored blocks
        pixels = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.NEAREST))
        ids = np.where(pixels[..., 2] == 255, 255, pixels[..., 0] > 127).astype(np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"im{i:02d}.png")
        Image.fromarray(ids, mode="L").save(root / "masks" / f"im{i:02d}.png")
    return root


def _train(root: Path) -> object:
    return load_mask_folder(root, "train", image_size=SIZE, cache="on", progress=False)


def _batches(root: Path, workers: int, seed: int = 3) -> list[dict[str, torch.Tensor]]:
    loader = SegmentStreamLoader.of(_train(root), 4, workers, shuffle=True, seed=seed, flip=True)
    return [batch for epoch in (0, 1) for batch in loader.epoch(epoch)]


def test_batches_do_not_depend_on_the_workers_but_on_the_seed(folder: Path) -> None:
    here, forked, other = _batches(folder, 0), _batches(folder, 2), _batches(folder, 0, seed=4)
    assert len(here) == len(forked) == 6  # 10 training pairs, two epochs (last batch partial)
    for a, b in zip(here, forked, strict=True):
        assert torch.equal(a["image"], b["image"])
        assert torch.equal(a["mask"], b["mask"])
    assert here[0]["image"].shape == (4, 3, SIZE, SIZE)
    assert here[0]["mask"].shape == (4, SIZE, SIZE)
    assert here[0]["mask"].dtype == torch.int64
    assert not torch.equal(here[0]["image"], other[0]["image"])


def test_image_and_mask_are_cropped_as_one(folder: Path) -> None:
    """The crops shrink the files several times: the mask is still where the image is red (an
    edge pixel blends both sides, so not every pixel), and holds the file's ids only."""
    batches = _batches(folder, 0)
    masks = torch.cat([batch["mask"] for batch in batches])
    images = torch.cat([batch["image"] for batch in batches])
    assert set(masks.unique().tolist()) == {0, 1, 255}
    labelled = masks != 255
    red = (images[:, 0] > 0.5).long()
    agreement = (red == masks)[labelled].float().mean().item()
    assert agreement > 0.97  # above torch's plain nearest, which lands half a pixel off


def test_a_pair_gone_since_the_cache_was_built_is_its_cached_row(folder: Path) -> None:
    train = _train(folder)
    gone = int(train.rows[0])
    Path(train.files[gone][1]).unlink()  # its mask
    loader = SegmentStreamLoader.of(train, 16, 0)  # no shuffle: sample 0 first
    with pytest.warns(UserWarning, match=r"epoch 0: 1 training image/mask pair\(s\) could not"):
        (batch,) = list(loader.epoch(0))
    assert torch.equal(batch["image"][0], train.images[gone].float() / 255)
    assert torch.equal(batch["mask"][0], train.masks[gone].long())


def test_training_streams_a_mask_folder_and_refuses_the_built_in_scenes(
    folder: Path, tmp_path: Path
) -> None:
    from antlers.config import TrainConfig
    from antlers.data.decode import available_cores
    from antlers.engine.fit import fit
    from antlers.tasks.segment.task import SegmentTask

    options = {"task": "segment", "data": str(folder), "model": "unet-w4-d2", "stream": True}
    options |= {"image_size": SIZE, "batch_size": 4, "out": str(tmp_path / "runs")}
    config = TrainConfig(**options, max_steps=3, device="cpu")
    train = SegmentTask().load_data(config).train
    assert isinstance(train, SegmentStreamLoader)
    assert train.workers == available_cores()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(SegmentTask(), config, log=lambda *_: None)
    assert result.stopped_by == "max_steps"
    config = TrainConfig(task="segment", data="scenes", stream=True)
    with pytest.raises(ValueError, match="scenes: streaming reads a mask folder's files"):
        SegmentTask().load_data(config)

"""Streaming: training batches decoded from the files by DataLoader workers are the same for any
number of workers, new crops each epoch, torchvision's resize when the crop is the whole image,
and a file gone since the cache was built is its cached image and one warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from antlers.data.folder import load_folder
from antlers.engine import stream
from antlers.engine.stream import StreamLoader, read_full

SIZE = 16


@pytest.fixture
def photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two class folders of 10 RGB images of 40 x 30 (smooth, so that crops differ), the
    decoded cache in tmp_path/cache."""
    monkeypatch.setenv("ANTLERS_CACHE", str(tmp_path / "cache"))
    y, x = np.mgrid[0:30, 0:40]
    for i in range(20):
        folder = tmp_path / "set" / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.stack([x * 6 + i, y * 8, (x + y) * 3 + 2 * i], axis=-1).clip(0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:02d}.png")
    return tmp_path / "set"


def batches(root: Path, workers: int, epoch: int = 0, shuffle: bool = True) -> list[torch.Tensor]:
    train = load_folder(root, "train", image_size=SIZE, cache="on", progress=False)
    loader = StreamLoader.of(train, 5, workers, shuffle=shuffle, seed=3, flip=True)
    return [batch["image"] for batch in loader.epoch(epoch)]


def test_batches_do_not_depend_on_the_workers_and_change_each_epoch(photos: Path) -> None:
    here, forked = batches(photos, 0), batches(photos, 2)
    assert len(here) == len(forked) == 4
    assert all(torch.equal(a, b) for a, b in zip(here, forked, strict=True))
    assert here[0].shape == (5, 3, SIZE, SIZE)
    in_order = [batches(photos, 0, epoch, shuffle=False)[0] for epoch in (0, 1)]
    assert not torch.equal(*in_order)  # the same images, cropped anew


def test_a_crop_of_the_whole_image_is_torchvisions_resize(
    photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "CROP_SCALE", (1.0, 1.0))
    monkeypatch.setattr(stream, "CROP_RATIO", (40 / 30, 40 / 30))
    train = load_folder(photos, "train", image_size=SIZE, cache="on", progress=False)
    loader = StreamLoader.of(train, 16, 0)  # no shuffle, no flip: sample i in order
    (batch,) = list(loader.epoch(0))
    for i in (0, 7, 15):
        full = read_full(train.files[int(train.rows[i])], 3)
        expected = TF.resize(full, [SIZE, SIZE], antialias=True)
        torch.testing.assert_close(batch["image"][i], expected.float() / 255)
    assert torch.equal(batch["label"], train.labels)


def test_a_file_gone_since_the_cache_was_built_is_its_cached_image(photos: Path) -> None:
    train = load_folder(photos, "train", image_size=SIZE, cache="on", progress=False)
    gone = int(train.rows[0])
    Path(train.files[gone]).unlink()
    loader = StreamLoader.of(train, 16, 0)
    with pytest.warns(UserWarning, match=r"epoch 0: 1 training file\(s\) could not be read"):
        (batch,) = list(loader.epoch(0))
    assert torch.equal(batch["image"][0], train.pixels[gone].float() / 255)


def test_train_streams_a_folder_and_refuses_a_built_in_set(photos: Path, tmp_path: Path) -> None:
    import antlers
    from antlers.config import TrainConfig
    from antlers.tasks import get_task

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = antlers.train(
            "classify",
            data=str(photos),
            stream=True,
            model="lecture_cnn",
            image_size=SIZE,
            epochs=1,
            batch_size=8,
            out=str(tmp_path / "runs"),
            device="cpu",
        )
    assert run.config.stream
    with pytest.raises(ValueError, match="streaming reads a class folder's files"):
        get_task("classify").load_data(TrainConfig(data="digits", stream=True))
    with pytest.raises(ValueError, match="stream is for the classify, segment and detect"):
        TrainConfig(task="generate", stream=True)

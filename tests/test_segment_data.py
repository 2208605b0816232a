"""Segmentation data: the built-in scenes (deterministic, every class, not colour alone), the
mask-folder format and its errors, and the loader's joint augmentation and exact resume."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from antlers.data.mask_folder import load_mask_folder
from antlers.data.street_scenes import SCENE_CLASSES, generate_scenes, load_street_scenes
from antlers.tasks.segment.loader import SegmentLoader


def test_scenes_are_deterministic_by_seed_and_split() -> None:
    a = load_street_scenes("test", image_size=24, n=6)
    b = load_street_scenes("test", image_size=24, n=6)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, load_street_scenes("train", image_size=24, n=6).images)
    assert not torch.equal(a.images, load_street_scenes("test", image_size=24, n=6, seed=1).images)
    assert a.images.shape == (6, 3, 24, 24)
    assert a.masks.shape == (6, 24, 24)


def test_scenes_any_size_and_every_class() -> None:
    images, masks = generate_scenes(40, 40, 72, np.random.default_rng(3))
    assert images.shape == (40, 3, 40, 72)
    assert images.dtype == np.uint8
    assert set(np.unique(masks)) == set(range(len(SCENE_CLASSES)))
    assert SCENE_CLASSES[0] == "unlabelled"
    assert "vehicle" in SCENE_CLASSES


def test_scenes_are_not_solved_by_colour_alone() -> None:
    # The best classifier that sees only a pixel's (quantised) colour: the majority class of
    # each colour bin. It must be far from perfect, or the task would not need a CNN.
    data = load_street_scenes("train", image_size=32, n=200)
    colours = (data.images.permute(0, 2, 3, 1).reshape(-1, 3).long() // 32).numpy()
    bins = colours[:, 0] * 64 + colours[:, 1] * 8 + colours[:, 2]
    labels = data.masks.flatten().numpy().astype(np.int64)
    table = np.zeros((512, len(SCENE_CLASSES)), dtype=np.int64)
    np.add.at(table, (bins, labels), 1)
    best = table.max(axis=1).sum() / len(labels)
    assert best < 0.6, f"colour alone labels {best:.0%} of the pixels"


def _write_folder(root: Path, n: int = 5, size: tuple[int, int] = (20, 16)) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("background\ncat\ndog\n")
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"im{i}.jpg")
        ids = rng.integers(0, 3, (size[1], size[0]), dtype=np.uint8)
        ids[0, 0] = 255
        mask = Image.fromarray(ids, mode="L")
        if i % 2:  # VOC style: a palette PNG whose indices are the ids
            mask = mask.convert("P")
            mask.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
        mask.save(root / "masks" / f"im{i}.png")


def test_mask_folder_reads_gray_and_palette_masks(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    train = load_mask_folder(tmp_path, "train", image_size=16)
    test = load_mask_folder(tmp_path, "test", image_size=16)
    assert train.classes == ("background", "cat", "dog")
    assert len(train) == 4
    assert len(test) == 1
    assert train.images.shape == (4, 3, 16, 16)
    assert train.masks.shape == (4, 16, 16)
    assert set(torch.unique(train.masks).tolist()) <= {0, 1, 2, 255}
    # nearest-neighbour only: the fitted mask holds no id the file did not hold
    with Image.open(tmp_path / "masks" / "im1.png") as original:
        assert original.mode == "P"


def _load_both(root: Path) -> None:
    for split in ("train", "test"):  # the bad file is in one of them
        load_mask_folder(root, split, strict=True)


def test_mask_of_another_size_names_the_file_and_both_sizes(tmp_path: Path) -> None:
    _write_folder(tmp_path, n=2)
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(tmp_path / "masks" / "im1.png")
    with pytest.raises(ValueError, match=r"im1\.png: mask is 12x10 .* im1\.jpg is 20x16"):
        _load_both(tmp_path)


def test_unknown_class_id_names_the_file_and_the_id(tmp_path: Path) -> None:
    _write_folder(tmp_path, n=2)
    ids = np.zeros((16, 20), dtype=np.uint8)
    ids[3, 4] = 7
    Image.fromarray(ids).save(tmp_path / "masks" / "im0.png")
    with pytest.raises(ValueError, match=r"im0\.png: class id 7 .* has 3 classes"):
        _load_both(tmp_path)


def test_rgb_mask_is_refused_with_its_mode(tmp_path: Path) -> None:
    _write_folder(tmp_path, n=2)
    Image.new("RGB", (20, 16), (128, 0, 0)).save(tmp_path / "masks" / "im0.png")
    with pytest.raises(ValueError, match=r"im0\.png: mask has mode RGB \(3 channels\)"):
        _load_both(tmp_path)


def test_missing_mask_and_missing_classes_file(tmp_path: Path) -> None:
    _write_folder(tmp_path, n=2)
    (tmp_path / "masks" / "im0.png").unlink()
    with pytest.raises(ValueError, match=r"im0\.jpg: no mask .*im0\.png"):
        _load_both(tmp_path)
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(ValueError, match=r"classes\.txt: missing"):
        _load_both(tmp_path)


def test_loader_moves_image_and_mask_together_and_replays_exactly() -> None:
    # Encode each pixel's column in both the image and the mask: after any flip or crop,
    # image and mask must still agree pixel by pixel (mask padding is 255).
    n, h, w = 12, 10, 10
    columns = torch.arange(w, dtype=torch.uint8).expand(n, h, w)
    images = (columns * 20).unsqueeze(1).expand(n, 3, h, w).contiguous()
    loader = SegmentLoader(
        images, columns.clone(), 4, shuffle=True, seed=5, crop_padding=2, flip=True
    )
    batches = list(loader.epoch(3))
    flipped = 0
    for batch in batches:
        mask, image = batch["mask"], batch["image"][:, 0]
        real = mask != 255
        assert torch.equal((image * 255).round()[real], mask[real].float() * 20)
        assert (image[~real] == 0).all()  # padding: black image, ignored mask
        flipped += int((mask[:, 5, 4] > mask[:, 5, 6]).sum())
    assert 0 < flipped < n
    resumed = list(loader.epoch(3, start_batch=1))
    for a, b in zip(batches[1:], resumed, strict=True):
        assert torch.equal(a["image"], b["image"])
        assert torch.equal(a["mask"], b["mask"])
    assert not torch.equal(batches[0]["mask"], next(loader.epoch(4))["mask"])


def test_pairs_read_by_workers_are_the_pairs_read_here(tmp_path: Path) -> None:
    from antlers.data.decode import PARALLEL_FROM
    from antlers.data.mask_folder import _splits, read_pair

    _write_folder(tmp_path, n=2 * PARALLEL_FROM, size=(9, 7))  # the train split: workers
    (tmp_path / "masks" / "im30.png").unlink()  # two bad pairs
    (tmp_path / "images" / "im200.jpg").write_bytes(b"not a jpeg")
    skipped = []
    for split in ("train", "test"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the bad pairs'; compared below
            here = load_mask_folder(tmp_path, split, image_size=6, workers=1, progress=False)
            forked = load_mask_folder(tmp_path, split, image_size=6, workers=2, progress=False)
        assert torch.equal(here.images, forked.images)
        assert torch.equal(here.masks, forked.masks)
        assert here.skipped == forked.skipped
        skipped += forked.skipped
        first = _splits(tmp_path, 0)[split][1][0]  # the oracle: one pair read alone
        image, mask = read_pair(first, tmp_path / "masks" / f"{first.stem}.png", 6, 3)
        assert torch.equal(forked.images[0], torch.tensor(image))
        assert torch.equal(forked.masks[0], torch.tensor(mask))
    assert len(skipped) == 2
    assert any("im30.png" in line for line in skipped)
    assert any("im200.jpg" in line for line in skipped)

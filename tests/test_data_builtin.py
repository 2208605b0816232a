"""ImageSet, load_dataset, and the offline built-ins: shapes and digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from antlers.data import DATASETS, SHAPE_CLASSES, ImageSet, load_dataset, load_shapes
from antlers.data.shapes import draw_shape, shape_coverage


def tiny_set(labels: list[int], classes: tuple[str, ...] = ("a", "b", "c")) -> ImageSet:
    images = torch.arange(len(labels), dtype=torch.uint8).reshape(-1, 1, 1, 1).expand(-1, 1, 2, 2)
    return ImageSet(images.contiguous(), torch.tensor(labels), classes, "tiny")


def test_imageset_sample_dict() -> None:
    data = tiny_set([0, 1, 2, 1])
    sample = data[3]
    assert len(data) == 4
    assert sample["label"] == 1
    assert isinstance(sample["label"], int)
    assert sample["image"].dtype == torch.float32
    assert sample["image"].shape == (1, 2, 2)
    assert torch.allclose(sample["image"], torch.full((1, 2, 2), 3 / 255))


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), "torch.uint8"),
        (torch.zeros(2, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), "shape"),
        (torch.zeros(2, 2, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), "C in"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32), "int64"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), r"\(2,\)"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 3]), r"\[0, 3\)"),
    ],
)
def test_imageset_validation(images: torch.Tensor, labels: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageSet(images, labels, ("a", "b", "c"), "bad")


def test_imageset_split_stratified_and_deterministic() -> None:
    data = tiny_set([0] * 10 + [1] * 20 + [2] * 5)
    rest, held = data.split(0.2, seed=3)
    assert torch.bincount(held.labels).tolist() == [2, 4, 1]
    assert len(rest) + len(held) == len(data)
    assert not set(rest.images[:, 0, 0, 0].tolist()) & set(held.images[:, 0, 0, 0].tolist())
    again = data.split(0.2, seed=3)[1]
    assert torch.equal(again.images, held.images)
    assert any(not torch.equal(data.split(0.2, seed=s)[1].images, held.images) for s in (4, 5))
    assert data.subset([4, 0]).images[:, 0, 0, 0].tolist() == [4, 0]
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        data.split(1.5)


def test_load_dataset_rejects_bad_arguments() -> None:
    assert list(DATASETS) == ["fashion-mnist", "mnist", "cifar10", "shapes", "digits"]
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\]"):
        load_dataset("shapes", "val")
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        load_dataset("shapes", image_size=0)


def test_shapes_default_split_sizes_and_dtype() -> None:
    data = load_dataset("shapes", "test")
    assert data.images.shape == (2000, 3, 32, 32)
    assert data.images.dtype == torch.uint8
    assert data.classes == SHAPE_CLASSES
    assert len(SHAPE_CLASSES) >= 5
    counts = torch.bincount(data.labels, minlength=len(SHAPE_CLASSES))
    assert counts.min() >= 2000 // len(SHAPE_CLASSES) - 1
    assert data.images.float().std() > 30  # not a blank canvas
    assert int(data.images.max()) > 240
    assert int(data.images.min()) < 15


def test_shapes_deterministic_by_seed_and_split() -> None:
    a = load_shapes("train", n=30, seed=5)
    b = load_shapes("train", n=30, seed=5)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)
    assert not torch.equal(load_shapes("train", n=30, seed=6).images, a.images)
    assert not torch.equal(load_shapes("test", n=30, seed=5).images, a.images)


def test_shapes_any_size() -> None:
    data = load_shapes("train", n=20, image_size=48, seed=1)
    assert data.images.shape == (20, 3, 48, 48)
    small = load_shapes("train", n=7, image_size=9)
    assert small.images.shape == (7, 3, 9, 9)


def test_shapes_are_distinguishable() -> None:
    """Class means of coverage differ: e.g. a ring's centre is empty, a circle's is full."""
    x = np.arange(64, dtype=np.float32) + 0.5
    coverage = {
        kind: shape_coverage(kind, x[None, :], x[:, None], 32.0, 32.0, 20.0, 0.3)
        for kind in SHAPE_CLASSES
    }
    assert coverage["circle"][32, 32] == 1.0
    assert coverage["ring"][32, 32] == 0.0
    assert coverage["star"][32, 32] == 1.0
    areas = {kind: float(c.sum()) for kind, c in coverage.items()}
    assert abs(areas["circle"] - np.pi * 20**2) < 0.01 * np.pi * 20**2
    assert len({round(a, -1) for a in areas.values()}) == len(SHAPE_CLASSES)
    with pytest.raises(ValueError, match="allowed"):
        shape_coverage("hexagon", x, x, 1.0, 1.0, 1.0, 0.0)


def test_draw_shape_mask_and_box() -> None:
    coverage, mask, box = draw_shape("square", 40, 50, cx=20.0, cy=15.0, radius=8.0, angle=0.0)
    assert coverage.shape == mask.shape == (40, 50)
    half = 8.0 / np.sqrt(2)  # axis-aligned square of circumradius 8
    np.testing.assert_allclose(box, [20 - half, 15 - half, 20 + half, 15 + half], atol=1.0)
    rows, cols = np.nonzero(mask)
    assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == tuple(box)


def test_digits_split_sizes_and_stratification() -> None:
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert len(train) + len(test) == 1797
    assert train.images.shape[1:] == (1, 8, 8)
    assert train.classes == tuple("0123456789")
    assert int(train.images.max()) == 255
    train_counts = torch.bincount(train.labels, minlength=10)
    test_counts = torch.bincount(test.labels, minlength=10)
    expected = ((train_counts + test_counts).double() * 0.2 + 0.5).floor().long()
    assert torch.equal(test_counts, expected)
    assert torch.equal(load_dataset("digits", "test").images, test.images)
    assert not torch.equal(load_dataset("digits", "test", seed=1).images, test.images)
    assert load_dataset("digits", "test", image_size=16).images.shape == (len(test), 1, 16, 16)

"""The splits every task trains and is scored on: train, validation (held out of the training
split) and test.

Every choice made during training (best checkpoint, ``--patience``, the ``val_*`` columns) is
made on the validation split; the test split is scored once, at the end. ``validation_split``
holds out ``VAL_FRACTION`` of the training split (at most ``VAL_MAX`` images) with a permutation
seeded by the run's seed, so ``antlers eval --split val`` can rebuild exactly the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

if TYPE_CHECKING:
    from antlers.config import TrainConfig
    from antlers.engine.loader import TensorLoader
    from antlers.tasks.base import ModelConfig

__all__ = [
    "EVAL_SPLITS",
    "VAL_FRACTION",
    "VAL_MAX",
    "check_classes",
    "check_split",
    "eval_image_set",
    "image_eval_loader",
    "loader_options",
    "validation_split",
]

S = TypeVar("S", bound="Subsettable")

VAL_FRACTION = 0.1
VAL_MAX = 5000
EVAL_SPLITS = ("test", "val")


class Subsettable(Protocol):
    """A data set that can be cut: ImageSet, SegmentationSet, DetectionSet."""

    def __len__(self) -> int: ...

    def subset(self, indices: list[int]) -> Self: ...


def validation_split(data: S, seed: int) -> tuple[S, S]:
    """(train, val): ``VAL_FRACTION`` of ``data`` (at most ``VAL_MAX``, at least one image when
    there are two or more) held out by a permutation seeded with ``seed``; each part keeps the
    original order. The same seed always holds out the same images."""
    import torch

    n = len(data)
    count = min(VAL_MAX, max(1 if n > 1 else 0, round(VAL_FRACTION * n)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return data.subset(sorted(order[count:])), data.subset(sorted(order[:count]))


def check_split(split: str) -> None:
    """ValueError listing the splits a trained model can be scored on."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")


def check_classes(data: str, found: Sequence[str], expected: Sequence[str]) -> None:
    """ValueError naming ``data`` when its classes are not the model's, in the same order."""
    if list(found) != list(expected):
        raise ValueError(
            f"{data}: its classes {list(found)} differ from the model's {list(expected)}"
        )


def loader_options(
    config: TrainConfig, rank: int, world_size: int, n: int | None = None
) -> dict[str, Any]:
    """The options of this process's loaders: the validation loader's (``n`` None: its shard,
    in order), or the training loader's over ``n`` samples (a seeded new order each epoch,
    flips as ``config.augment`` says, no last partial batch when there are more than four)."""
    options: dict[str, Any] = {"rank": rank, "world_size": world_size}
    if n is not None:
        options |= {"shuffle": True, "seed": config.seed, "flip": config.augment}
        options["drop_last"] = n > 4 * config.batch_size
    return options


def eval_image_set(
    config: ModelConfig, data: str, split: str, data_dir: str | None = None, seed: int = 0
) -> Any:
    """The ``split`` of the image set ``data`` at the model's size: "test", or "val" (held out
    of the training split with the run's ``seed``, as in training); ValueError when its classes
    are not the model's."""
    from antlers.data import load_dataset

    check_split(split)
    source = "test" if split == "test" else "train"
    size = config.image_size[0]
    images = load_dataset(data, source, data_dir=data_dir, image_size=size, seed=seed)
    if split == "val":
        images = validation_split(images, seed)[1]
    check_classes(data, images.classes, config.classes)
    return images


def image_eval_loader(
    config: ModelConfig, data: str, split: str, data_dir: str | None, seed: int, batch_size: int
) -> TensorLoader:
    """A loader of ``eval_image_set``'s images and labels, ``batch_size`` at a time."""
    from antlers.engine.loader import TensorLoader

    images = eval_image_set(config, data, split, data_dir, seed)
    return TensorLoader.of(images, batch_size)

"""Image-classification data: built-in sets, real benchmarks and the user's class folders.

Every loader returns an `ImageSet` (uint8 images (N, C, H, W), int64 labels, class names) whose
samples are ``{"image": float32 (C, H, W) in [0, 1], "label": int}``. Importing this package
reads, downloads and generates nothing.

    >>> train = load_dataset("shapes", "train", image_size=32)   # doctest: +SKIP
    >>> train[0]["image"].shape                                   # doctest: +SKIP
    torch.Size([3, 32, 32])
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from antlers.data.cifar import load_cifar10
from antlers.data.digits import load_digits
from antlers.data.fetch import DatasetNotFoundError
from antlers.data.folder import load_folder
from antlers.data.idx import read_idx
from antlers.data.imageset import ImageSet
from antlers.data.mnist import load_fashion_mnist, load_mnist
from antlers.data.shapes import SHAPE_CLASSES, load_shapes

__all__ = [
    "DATASETS",
    "SHAPE_CLASSES",
    "SPLITS",
    "DatasetLoader",
    "DatasetNotFoundError",
    "ImageSet",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_folder",
    "load_mnist",
    "load_shapes",
    "read_idx",
]

SPLITS = ("train", "test")


class DatasetLoader(Protocol):
    """The signature every built-in loader shares; arguments a loader has no use for are ignored."""

    def __call__(
        self,
        split: str = "train",
        *,
        data_dir: str | Path | None = None,
        download: bool = True,
        image_size: int | None = None,
        seed: int = 0,
    ) -> ImageSet: ...


DATASETS: dict[str, DatasetLoader] = {
    "fashion-mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "shapes": load_shapes,
    "digits": load_digits,
}


def load_dataset(
    name_or_path: str,
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    image_size: int | None = None,
    strict: bool = False,
    seed: int = 0,
) -> ImageSet:
    """Load one split of a built-in dataset (a name in DATASETS) or a class-folder dataset (a path).

    split: "train" or "test". data_dir: a folder to search first for the real benchmarks'
    files. download: fetch missing benchmark files into ~/.cache/antlers. image_size: side S of
    the square images (default: the dataset's own size; 64 for folders). strict: a folder
    dataset's unreadable file raises instead of being skipped. seed: the built-in sets' generator
    and the folder / digits test split. Built-in names win over same-named folders: write
    "./shapes" for a folder called shapes.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size <= 0):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    if name_or_path in DATASETS:
        loader = DATASETS[name_or_path]
        return loader(split, data_dir=data_dir, download=download, image_size=image_size, seed=seed)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ValueError(
            f"unknown dataset {name_or_path!r}: not a built-in name (one of {list(DATASETS)}) "
            f"and path not found: {path}"
        )
    return load_folder(path, split, image_size=image_size, strict=strict, seed=seed)

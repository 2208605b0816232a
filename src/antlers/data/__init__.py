"""Data for every task as uint8 tensors: images with labels, masks or boxes, held in memory or
(a large class folder) memory-mapped from its decoded cache (``cache.py``).

* Classification: :class:`ImageSet` (images (N, C, H, W), int64 labels (N,), class names) from
  :func:`load_dataset`: the built-in ``shapes`` (``shapes.py``) and ``digits`` (``digits.py``),
  the real benchmarks MNIST, Fashion-MNIST (``mnist.py``, ``idx.py``) and CIFAR-10
  (``cifar.py``), found on disk or downloaded (``fetch.py``), and class folders (``folder.py``).
* Segmentation: :class:`~antlers.data.segset.SegmentationSet` (images and uint8 masks
  (N, H, W)): the built-in street ``scenes`` (``street_scenes.py``) and mask folders
  (``mask_folder.py``).
* Detection: :class:`~antlers.data.boxset.DetectionSet` (images and per-image xyxy boxes and
  labels) from :func:`~antlers.data.detection.load_detection`: the built-in object ``scenes``
  (``object_scenes.py``), COCO JSON (``coco.py``; ``coco_write.py`` writes it) and YOLO
  folders (``yolo.py``), read as :class:`~antlers.data.annotations.Annotations` first.

Importing this package reads, downloads and generates nothing.

    >>> train = load_dataset("shapes", "train", image_size=32)   # doctest: +SKIP
    >>> train[0]["image"].shape                                   # doctest: +SKIP
    torch.Size([3, 32, 32])
"""

from __future__ import annotations

from pathlib import Path

from antlers.data import mnist
from antlers.data.cifar import load_cifar10
from antlers.data.digits import load_digits
from antlers.data.fetch import DatasetNotFoundError
from antlers.data.folder import load_folder
from antlers.data.idx import read_idx
from antlers.data.imageset import SPLITS, ImageSet
from antlers.data.mnist import load_idx_dataset
from antlers.data.shapes import SHAPE_CLASSES, load_shapes

__all__ = [
    "DATASETS",
    "SHAPE_CLASSES",
    "SPLITS",
    "DatasetNotFoundError",
    "ImageSet",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_folder",
    "load_idx_dataset",
    "load_shapes",
    "read_idx",
]

DATASETS = ("fashion-mnist", "mnist", "cifar10", "shapes", "digits")
"""The built-in classification sets' names (a path names a class-folder dataset)."""


def load_dataset(
    name_or_path: str,
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    image_size: int | None = None,
    strict: bool = False,
    seed: int = 0,
    cache: str = "auto",
) -> ImageSet:
    """Load one split of a built-in dataset (a name in DATASETS) or a class-folder dataset (a path).

    split: "train" or "test". data_dir: a folder to search first for the real benchmarks'
    files. download: fetch missing benchmark files into ~/.cache/antlers. image_size: side S of
    the square images (default: the dataset's own size; 64 for folders). strict: a folder
    dataset's unreadable file raises instead of being skipped. cache: a folder dataset's decoded
    cache, "auto", "on" or "off" (``load_folder``). seed: the built-in sets' generator
    and the folder / digits test split. Built-in names win over same-named folders: write
    "./shapes" for a folder called shapes.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size <= 0):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    folder = None if data_dir is None else Path(data_dir).expanduser()
    match name_or_path:
        case "mnist":
            return load_idx_dataset(mnist.MNIST, split, folder, download, image_size)
        case "fashion-mnist":
            return load_idx_dataset(mnist.FASHION_MNIST, split, folder, download, image_size)
        case "cifar10":
            return load_cifar10(split, folder, download, image_size)
        case "shapes":
            return load_shapes(split, image_size=image_size, seed=seed)
        case "digits":
            return load_digits(split, image_size=image_size, seed=seed)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ValueError(
            f"unknown dataset {name_or_path!r}: not a built-in name (one of {list(DATASETS)}) "
            f"and path not found: {path}"
        )
    return load_folder(path, split, image_size=image_size, strict=strict, seed=seed, cache=cache)

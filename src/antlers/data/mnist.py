"""MNIST and Fashion-MNIST from their IDX files: uint8 images (N, 1, 28, 28), 10 classes.

Files (raw or gzipped): train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
t10k-labels-idx1-ubyte. They are looked up as described in `antlers.data.fetch`; Fashion-MNIST is
also found where Debian's ``dataset-fashion-mnist`` package installs it
(``/usr/share/datasets/fashion-mnist/*-ubyte.gz``). Checksums are checked on download only:
Debian ships the same data recompressed, so its .gz files have other MD5s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from antlers.data.fetch import (
    cache_dir,
    download_all,
    find_folder,
    not_found_error,
    search_folders,
)
from antlers.data.idx import read_idx
from antlers.data.imageset import ImageSet

__all__ = ["FASHION_MNIST", "MNIST", "IdxSource", "load_idx_dataset", "locate_idx"]

SPLIT_PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class IdxSource:
    """An IDX dataset: its name, classes, download URL and the MD5s of its .gz files."""

    name: str
    classes: tuple[str, ...]
    url: str
    md5: dict[str, str]
    system_folders: tuple[str, ...] = ()


MNIST = IdxSource(
    name="mnist",
    classes=tuple(str(d) for d in range(10)),
    url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)
FASHION_MNIST = IdxSource(
    name="fashion-mnist",
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    system_folders=("/usr/share/datasets/fashion-mnist",),
)


def split_files(split: str) -> tuple[str, str]:
    """The (images, labels) file names of a split, without the .gz suffix."""
    if split not in SPLIT_PREFIX:
        raise ValueError(f"split must be one of {list(SPLIT_PREFIX)}, got {split!r}")
    prefix = SPLIT_PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def locate_idx(source: IdxSource, split: str, data_dir: Path | None, download: bool) -> Path:
    """The folder holding the split's two IDX files, downloading them into the cache if needed."""
    names = split_files(split)
    folders = search_folders(source.name, data_dir, source.system_folders)
    found = find_folder(folders, [(n, f"{n}.gz") for n in names])
    if found is not None:
        return found
    cache = cache_dir(source.name)
    gz_names = [f"{n}.gz" for n in names]
    if not download:
        raise not_found_error(source.name, gz_names, folders, "downloading is disabled")
    files = [(g, source.url + g, source.md5[g]) for g in gz_names]
    download_all(files, cache, source.name, folders, missing=gz_names)
    return cache


def read_split(folder: Path, split: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels uint8 (N,) of a split, checked for consistency."""
    paths = []
    for name in split_files(split):
        raw = folder / name
        paths.append(raw if raw.is_file() else folder / f"{name}.gz")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"{paths[0].name}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{paths[1].name}: expected uint8 labels (N,), got {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{folder}: {paths[0].name} holds {len(images)} images but "
            f"{paths[1].name} holds {len(labels)} labels"
        )
    if len(labels) and labels.max() >= n_classes:
        raise ValueError(f"{paths[1].name}: label {labels.max()} outside [0, {n_classes})")
    return images, labels


def load_idx_dataset(
    source: IdxSource, split: str, data_dir: Path | None, download: bool, image_size: int | None
) -> ImageSet:
    """One split of an MNIST-like IDX dataset: uint8 (N, 1, S, S), S = image_size or 28.

    60000 train / 10000 test images for MNIST and Fashion-MNIST; the split is fixed.
    """
    folder = locate_idx(source, split, data_dir, download)
    images, labels = read_split(folder, split, len(source.classes))
    return ImageSet.from_arrays(images[:, None], labels, source.classes, source.name, image_size)

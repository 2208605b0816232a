"""CIFAR-10, binary version only (cifar-10-binary.tar.gz): uint8 images (N, 3, 32, 32), 10 classes.

The archive unpacks to ``cifar-10-batches-bin/`` holding data_batch_1.bin .. data_batch_5.bin
(train, 10000 images each), test_batch.bin and batches.meta.txt (the class names, one a line).
Each record is 1 label byte then 3072 pixel bytes: the red plane, green, blue, each 32x32 row-major.
The pickled "python version" is never read (unpickling runs arbitrary code).
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from antlers.data.fetch import (
    cache_dir,
    download_all,
    find_folder,
    not_found_error,
    search_folders,
)
from antlers.data.imageset import ImageSet

__all__ = [
    "CIFAR10_CLASSES",
    "extract_tar",
    "load_cifar10",
    "read_cifar_batch",
    "write_cifar_batch",
]

NAME = "cifar10"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
ARCHIVE = "cifar-10-binary.tar.gz"
ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
SUBFOLDER = "cifar-10-batches-bin"
RECORD_BYTES = 1 + 3 * 32 * 32
SPLIT_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels uint8 (N,) of one CIFAR-10 binary batch file.

    Raises ValueError naming the file when its size is not a positive multiple of 3073 bytes
    or a label is outside 0..9.
    """
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0 or data.size % RECORD_BYTES:
        raise ValueError(
            f"{path.name}: wrong size: {data.size} bytes is not a positive multiple of the "
            f"{RECORD_BYTES}-byte record (a full batch is 10000 x {RECORD_BYTES} = "
            f"{10000 * RECORD_BYTES} bytes)"
        )
    records = data.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    if labels.max() >= len(CIFAR10_CLASSES):
        raise ValueError(f"{path.name}: label {labels.max()} outside 0..9")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def write_cifar_batch(path: str | Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write uint8 images (N, 3, 32, 32) and labels (N,) as a CIFAR-10 binary batch file."""
    images = np.asarray(images, dtype=np.uint8).reshape(len(labels), -1)
    records = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], images], axis=1)
    Path(path).write_bytes(records.tobytes())


def read_class_names(folder: Path) -> tuple[str, ...]:
    """Class names from batches.meta.txt if present (non-empty lines), else the standard ten."""
    meta = folder / "batches.meta.txt"
    if not meta.is_file():
        return CIFAR10_CLASSES
    names = tuple(line.strip() for line in meta.read_text().splitlines() if line.strip())
    if len(names) != len(CIFAR10_CLASSES):
        raise ValueError(f"{meta.name}: expected 10 class names, found {len(names)}")
    return names


def extract_tar(archive: Path, dest: Path) -> None:
    """Extract regular files and folders of a tar archive into `dest`, refusing anything unsafe.

    Raises ValueError for absolute paths, ``..`` components, links, devices or any other
    member that is not a plain file or folder. Files are written atomically (temp + rename).
    """
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            parts = PurePosixPath(member.name).parts
            if (
                member.name.startswith("/")
                or ".." in parts
                or not (member.isfile() or member.isdir())
            ):
                raise ValueError(f"{archive.name}: refusing unsafe member {member.name!r}")
        for member in members:
            target = dest.joinpath(*PurePosixPath(member.name).parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None  # a regular file always has contents
            tmp = target.with_name(f".{target.name}.part")
            tmp.write_bytes(source.read())
            tmp.replace(target)


def locate_cifar10(split: str, data_dir: Path | None, download: bool) -> Path:
    """The folder holding the split's .bin files.

    When no searched folder has them, the archive (found in a searched folder, else downloaded
    into the cache) is extracted into ``~/.cache/antlers/cifar10``; other folders stay untouched.
    """
    names = SPLIT_FILES[split]
    roots = search_folders(NAME, data_dir)
    folders = [sub for root in roots for sub in (root, root / SUBFOLDER)]
    found = find_folder(folders, [(n,) for n in names])
    if found is not None:
        return found
    cache = cache_dir(NAME)
    archive_home = find_folder(roots, [(ARCHIVE,)])
    if archive_home is None:
        if not download:
            raise not_found_error(NAME, [*names, ARCHIVE], folders, "downloading is disabled")
        missing = [*names, ARCHIVE]
        download_all([(ARCHIVE, URL, ARCHIVE_MD5)], cache, NAME, folders, missing)
        archive_home = cache
    extract_tar(archive_home / ARCHIVE, cache)
    if find_folder([cache / SUBFOLDER], [(n,) for n in names]) is None:
        reason = f"{archive_home / ARCHIVE} does not hold {SUBFOLDER}/ with them"
        raise not_found_error(NAME, names, folders, reason)
    return cache / SUBFOLDER


def load_cifar10(
    split: str, data_dir: Path | None, download: bool, image_size: int | None
) -> ImageSet:
    """CIFAR-10: 50000 train / 10000 test RGB images (N, 3, 32, 32), or image_size square."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {list(SPLIT_FILES)}, got {split!r}")
    folder = locate_cifar10(split, data_dir, download)
    batches = [read_cifar_batch(folder / name) for name in SPLIT_FILES[split]]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    return ImageSet.from_arrays(images, labels, read_class_names(folder), NAME, image_size)

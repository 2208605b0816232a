"""Where the real benchmarks live on disk, and how they get there.

Lookup order for a dataset `name` (first folder holding every needed file wins):

1. the explicit ``data_dir`` (the folder itself, then ``data_dir/<name>``),
2. ``$ANTLERS_DATA/<name>``,
3. ``$ANTLERS_CACHE/<name>``, default ``~/.cache/antlers/<name>`` (where downloads go),
4. extra system folders (Debian's ``/usr/share/datasets/fashion-mnist``).

Downloads stream to a temporary file beside the target, are checked against an MD5, fsync'ed and
renamed into place, so a file under its final name is always complete.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from tqdm.auto import tqdm

from antlers.io.system import cache_root

__all__ = [
    "DatasetNotFoundError",
    "cache_dir",
    "download_all",
    "download_file",
    "find_folder",
    "not_found_error",
    "search_folders",
]

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are in none of the searched folders and could not be downloaded."""


def cache_dir(name: str) -> Path:
    """``$ANTLERS_CACHE/<name>`` (default ``~/.cache/antlers/<name>``): where downloads go."""
    return cache_root() / name


def search_folders(
    name: str, data_dir: str | Path | None = None, extra: Sequence[str | Path] = ()
) -> list[Path]:
    """The folders searched for dataset `name`, in lookup order (see the module docstring)."""
    folders: list[Path] = []
    if data_dir is not None:
        folders += [Path(data_dir).expanduser(), Path(data_dir).expanduser() / name]
    if os.environ.get("ANTLERS_DATA"):
        folders.append(Path(os.environ["ANTLERS_DATA"]).expanduser() / name)
    folders.append(cache_dir(name))
    folders += [Path(folder) for folder in extra]
    return folders


def find_folder(folders: Sequence[Path], names: Sequence[Sequence[str]]) -> Path | None:
    """The first folder holding, for every entry of `names`, one of its alternative file names.

    names: e.g. ``[("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"), ...]``.
    """
    for folder in folders:
        if all(any((folder / alt).is_file() for alt in alts) for alts in names):
            return folder
    return None


def download_file(url: str, dest: Path, md5: str | None = None) -> Path:
    """Download `url` to `dest` atomically (temp file, fsync, rename), checking its MD5.

    Raises URLError/OSError when the download fails and ValueError on a checksum mismatch;
    in both cases nothing is left under `dest`.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                while block := response.read(CHUNK_BYTES):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and digest.hexdigest() != md5:
            raise ValueError(
                f"{dest.name}: checksum mismatch for {url}: expected MD5 {md5}, "
                f"got {digest.hexdigest()}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def download_all(
    files: Sequence[tuple[str, str, str]],
    folder: Path,
    name: str,
    folders: Sequence[Path],
    missing: Sequence[str],
) -> None:
    """Download each (file_name, url, md5) not yet in `folder`; one clear error when offline.

    Raises DatasetNotFoundError naming the `missing` files and the `folders` searched.
    """
    for file_name, url, md5 in files:
        if (folder / file_name).is_file():
            continue
        try:
            download_file(url, folder / file_name, md5)
        except (URLError, OSError) as error:
            reason = f"download of {url} failed: {getattr(error, 'reason', error)}"
            raise not_found_error(name, missing, folders, reason) from error


def not_found_error(
    name: str, missing: Sequence[str], folders: Sequence[Path], reason: str
) -> DatasetNotFoundError:
    """The error for a dataset found nowhere: what is missing, where we looked, what to do."""
    searched = "\n".join(f"  {folder}" for folder in folders)
    return DatasetNotFoundError(
        f"dataset {name!r} not found: missing {', '.join(missing)}\n"
        f"searched:\n{searched}\n"
        f"{reason}.\n"
        f"Put the files in one of these folders (e.g. {cache_dir(name)}), or pass data_dir=..., "
        f"or set $ANTLERS_DATA to a folder holding {name}/."
    )

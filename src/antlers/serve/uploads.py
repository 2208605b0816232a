"""Uploaded images: checked against the limits, then read by the same code as the CLI.

An upload is written, under its own (sanitised) file name, into a fresh temporary folder, and the
CLI's code reads that file: ``predict_upload`` calls ``Run.predict_files`` exactly as
``antlers predict --json`` does, so the JSON is the same object per image. The temporary folder
is then taken out of every string of the answer (``"image": "cat.png"``, the text line, and the
names of the files a segment run draws), and removed.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from antlers.serve.security import ApiError, check_image

__all__ = ["Limits", "Upload", "open_upload", "predict_upload", "read_upload", "saved"]


@dataclass(frozen=True)
class Limits:
    """The largest upload the server takes: ``max_bytes`` per file, ``max_pixels`` per image
    (width x height, read from the header before decoding)."""

    max_bytes: int = 10 * 2**20
    max_pixels: int = 4096 * 4096


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its sanitised ``name`` and its ``data``."""

    name: str
    data: bytes


def _safe_name(name: str | None) -> str:
    """The file name's last part with only letters, digits and ``._-`` (``image`` if none)."""
    last = re.split(r"[\\/]", name or "")[-1]
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", last).lstrip(".")
    return clean[:100] or "image"


def read_upload(name: str | None, data: bytes, limits: Limits) -> Upload:
    """The upload, refused with ApiError 413 (too large) or 400 (empty) before decoding."""
    upload = Upload(_safe_name(name), data)
    check_image(data, upload.name, limits.max_bytes, limits.max_pixels)
    return upload


@contextlib.contextmanager
def saved(upload: Upload) -> Iterator[Path]:
    """The upload written into a fresh temporary folder, as ``folder/name``; removed after.
    ImageErrors raised inside name the upload, not the temporary path (ApiError 400)."""
    from antlers.io.images import ImageError

    with tempfile.TemporaryDirectory(prefix="antlers-serve-") as folder:
        path = Path(folder) / upload.name
        path.write_bytes(upload.data)
        try:
            yield path
        except ImageError as error:
            raise ApiError(400, _unprefixed(str(error), Path(folder))) from None


def open_upload(upload: Upload, max_pixels: int) -> Any:
    """The uploaded image as a PIL image, upright, read by ``antlers.io.images.open_image``."""
    from antlers.io.images import open_image

    with saved(upload) as path:
        return open_image(path, max_pixels)


def _unprefixed(value: Any, folder: Path) -> Any:
    """``value`` (JSON: dicts, lists, strings) with ``folder/`` taken out of every string."""
    if isinstance(value, str):
        return value.replace(f"{folder}/", "")
    if isinstance(value, dict):
        return {k: _unprefixed(v, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [_unprefixed(v, folder) for v in value]
    return value


def predict_upload(run: Any, upload: Upload, top: int = 3) -> dict[str, Any]:
    """``antlers predict --json``'s object for the uploaded file (``Run.predict_files``)."""
    with saved(upload) as path:
        (row,) = run.predict_files([str(path)], out=path.parent, top=top)
        return _unprefixed(row, path.parent)

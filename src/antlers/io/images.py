"""Reading the user's image files: every path from a file to pixels starts here.

``read_images`` opens and fully reads each file (a missing or unreadable one: ValueError naming
it). Pillow's decompression-bomb limit stays in force.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["read_images"]


def read_images(paths: list[str]) -> list[Any]:
    """PIL images for ``paths``, fully read; a missing or unreadable file: ValueError naming it."""
    from PIL import Image, UnidentifiedImageError

    pictures = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        try:
            with Image.open(path) as im:
                im.load()
                pictures.append(im.copy())
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise ValueError(f"{path}: cannot read as an image ({error})") from error
    return pictures

"""The decoded cache: a folder's images decoded once, at one size, into a memory-mapped file.

Decoding photos costs milliseconds each, at every run; reading decoded pixels costs microseconds.
The first run that loads a folder at size S decodes every item of both splits, on every core
(``antlers.data.decode``), into one uint8 array (N, C, S, S) on disk; later runs map it and
decode nothing. An item is one image file (a class folder) or several (a segmentation folder's
image and mask); a :class:`Layout` says how an item becomes a row: ``IMAGES`` (the class-folder
policy, C = 1 or 3), a mask folder's pairs (C = 4: RGB and the class ids), a detection set's
stretched images (C = 3). The cache lives under ``$ANTLERS_CACHE`` (default
``~/.cache/antlers``), in ``decoded/<folder name>-<hash>-<S>px/`` (the hash: of the resolved
path, and for another layout than IMAGES of the layout's name and key, which then also
appears in the folder's name), never in the user's folder::

    manifest.json        what the pixels are: the root, S, C, the layout and its policy, the
                         pixels file's name, and one entry per item: [relative path, bytes,
                         mtime_ns for each of its files (-1, -1 for a missing one), info,
                         reason] (info: for IMAGES whether the first file is grayscale, for
                         a layout whose decoder gives one what it says of the item (e.g. the
                         image's original size), else null; reason: why it cannot be used,
                         null when decoded). Row k is entry k.
    pixels-<token>.u8    the array, C-contiguous, rows of unusable items left as zeros
    lock                 held (``flock``) by the process that checks or builds the cache

Change detection: an item whose files' relative paths, sizes and modification times match an
entry reuses that entry's row (copied into the new pixels file); a new or changed item is
decoded; a removed one's row is dropped; a change of C (a colour image added to a gray class
folder) or of the layout's policy (e.g. the number of classes a mask may name) decodes everything.
Crash safety: the new pixels are written to a temporary file, fsync'ed and renamed, and only then
is the manifest replaced (atomically), so a process killed mid-build leaves the previous cache
whole or no cache at all. A manifest that cannot be parsed, or names a pixels file that is
missing or of the wrong length, is a damaged cache: rebuilt, never trusted (one line on stderr
says so). A single flipped byte inside the pixels file is not detected (checking every byte
would cost as much as reading the whole file at each run).

Under torchrun every rank calls :func:`open_decoded`; the first to take the lock builds the cache,
the others wait for it and then find it complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from antlers.data.decode import decode_into, is_gray_file
from antlers.io.files import atomic_write
from antlers.io.lock import locked
from antlers.io.system import cache_root, gib

__all__ = [
    "CACHE_MODES",
    "IMAGES",
    "DecodedFolder",
    "Layout",
    "decoded_cache_folder",
    "open_decoded",
]

CACHE_MODES = ("auto", "on", "off")
VERSION = 2  # of the manifest and of the decoding policy; another version is rebuilt
MANIFEST = "manifest.json"
COPY_ROWS = 1024  # rows copied from the previous pixels file at a time
SPARE_BYTES = 64 * 2**20  # free disk space left after a build


@dataclass(frozen=True)
class Layout:
    """How an item becomes a row of the cache.

    name: "images" for class folders, else part of the cache folder's name. decode: a chunk's
    items (file paths, or tuples of them for items of several files) -> each as uint8
    (C, S, S), or (that row, info: anything JSON keeps, e.g. the original size), or the reason
    it cannot be used, called as ``decode(items, image_size=S, channels=C)`` in worker
    processes (a module-level function, or a partial of one, that never uses torch).
    channels: C, or None: 1 when every item's first file is grayscale, else 3. key: what else
    names the cache (e.g. the COCO file the images come from). policy: what else the rows
    depend on; a change rebuilds them all.
    """

    name: str
    decode: Callable[..., list] | None = None  # None: the class-folder policy, decode_image
    channels: int | None = None
    key: str = ""
    policy: tuple[Any, ...] = ()


IMAGES = Layout("images")


def decoded_cache_folder(root: Path, image_size: int, layout: Layout = IMAGES) -> Path:
    """The cache folder of the folder ``root`` at ``image_size`` px, for ``layout``."""
    resolved, plain = Path(root).resolve(), layout.name == IMAGES.name
    named = str(resolved) if plain else f"{resolved}\0{layout.name}\0{layout.key}"
    digest = hashlib.sha256(named.encode()).hexdigest()[:12]
    kind = "" if plain else f"-{layout.name}"
    return cache_root() / "decoded" / f"{resolved.name}-{digest}{kind}-{image_size}px"


@dataclass(frozen=True)
class DecodedFolder:
    """A folder's decoded items: ``pixels`` row k is ``files[k]`` of the call.

    pixels: uint8 memmap (N, C, S, S), copy-on-write (a write stays in this process).
    reasons: why file k cannot be read, None when it was decoded (its row is zeros otherwise).
    infos: what the decoder said of item k (the manifest's info), None when it says nothing.
    decoded: how many files this call decoded (0 when the cache held them all).
    """

    pixels: np.ndarray
    reasons: tuple[str | None, ...]
    decoded: int
    infos: tuple[Any, ...] = ()


def open_decoded(
    root: Path,
    files: Sequence[str | Path | tuple[str | Path, ...]],
    image_size: int,
    *,
    layout: Layout = IMAGES,
    workers: int | None = None,
    progress: bool = True,
) -> DecodedFolder:
    """The decoded rows of ``files`` (items: a path, or a tuple of paths; all under ``root``)
    at ``image_size``, from the cache, after decoding whatever it lacks (see the module
    docstring). ``progress``: the decoding's progress lines, and one line saying what was
    decoded and where it went."""
    folder = decoded_cache_folder(root, image_size, layout)
    folder.mkdir(parents=True, exist_ok=True)
    items = [tuple(str(p) for p in f) if isinstance(f, tuple) else (str(f),) for f in files]
    prefix = os.path.join(root, "")
    if not all(path.startswith(prefix) for item in items for path in item):
        raise ValueError(f"{root}: open_decoded's files must lie under it")
    entries = [[v for path in item for v in _stat_entry(prefix, path)] for item in items]
    waiting = f"decoded cache: waiting for another process building {folder}"
    with locked(folder / "lock", waiting):
        old = _read_manifest(folder, root, image_size, layout)
        reused = _reusable_rows(old, entries)
        infos = [  # IMAGES: whether the item is gray; a decoder's own say is filled in below
            old["files"][r][-2] if r is not None else _gray(item, layout)  # type: ignore[index]
            for item, r in zip(items, reused, strict=True)
        ]
        channels = layout.channels or (1 if all(g is not False for g in infos) else 3)
        if old is not None and old["channels"] != channels:
            old, reused = None, [None] * len(items)  # nothing of it can be reused
        if old is not None and reused == list(range(len(old["files"]))):
            pixels = _map(folder / old["pixels"], len(items), channels, image_size)
            infos = tuple(e[-2] for e in old["files"])
            return DecodedFolder(pixels, tuple(e[-1] for e in old["files"]), 0, infos)
        shape = (len(items), channels, image_size, image_size)
        name, reasons = _build(
            folder, items, shape, old, reused, layout, infos, workers=workers, progress=progress
        )
        files_json = [[*e, i, r] for e, i, r in zip(entries, infos, reasons, strict=True)]
        manifest = {"version": VERSION, "root": str(Path(root).resolve()), "pixels": name}
        manifest |= {"image_size": image_size, "channels": channels, "files": files_json}
        manifest |= {"layout": layout.name, "policy": list(layout.policy)}
        atomic_write(folder / MANIFEST, json.dumps(manifest))
        _remove_stale(folder, keep=name)
    decoded = sum(r is None for r in reused)
    if progress:
        print(
            f"decoded cache: {decoded} of {len(items)} images decoded into {folder} "
            f"({np.prod(shape) / 2**20:.0f} MiB); later runs read them",
            file=sys.stderr,
        )
    pixels = _map(folder / name, *shape[:3])
    return DecodedFolder(pixels, tuple(reasons), decoded, tuple(infos))


def _gray(item: tuple[str, ...], layout: Layout) -> bool | None:
    """Whether the item's first file is grayscale (None when unknown or not needed)."""
    return is_gray_file(item[0]) if layout.channels is None else None


def _stat_entry(prefix: str, path: str) -> list:
    """[path relative to the root (``prefix``: the root and a slash), bytes, mtime_ns]: what
    identifies a file's version (string operations: 100,000 files are stat'ed at each run);
    bytes and mtime_ns are -1 for a file that does not exist (a missing mask)."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return [path.removeprefix(prefix), -1, -1]
    return [path.removeprefix(prefix), stat.st_size, stat.st_mtime_ns]


def _reusable_rows(old: dict | None, entries: list[list]) -> list[int | None]:
    """For each entry, the row of the same files' versions in the old cache, or None."""
    if old is None:
        return [None] * len(entries)
    rows = {tuple(e[:-2]): k for k, e in enumerate(old["files"])}
    return [rows.get(tuple(e)) for e in entries]


def _build(
    folder: Path,
    items: list[tuple[str, ...]],
    shape: tuple[int, int, int, int],
    old: dict | None,
    reused: list[int | None],
    layout: Layout,
    infos: list,
    *,
    workers: int | None,
    progress: bool,
) -> tuple[str, list[str | None]]:
    """Write a new pixels file: the reused rows copied, the rest decoded; (its name, reasons).
    ``infos``: each item's, filled in for the decoded ones when the decoder gives them."""
    need, free = int(np.prod(shape)), shutil.disk_usage(folder).free
    if need + SPARE_BYTES > free:
        raise ValueError(
            f"{folder}: the decoded cache needs {gib(need)} and {gib(free)} is free; set "
            "ANTLERS_CACHE to a larger disk or use --data-cache off"
        )
    name = f"pixels-{secrets.token_hex(6)}.u8"
    partial = folder / f".{name}.partial"
    out = np.memmap(partial, np.uint8, "w+", shape=shape)
    reasons = [None if r is None else old["files"][r][-1] for r in reused]  # type: ignore[index]
    if old is not None:
        previous = _map(folder / old["pixels"], len(old["files"]), *shape[1:3])
        pairs = np.array([(k, r) for k, r in enumerate(reused) if r is not None]).reshape(-1, 2)
        for start in range(0, len(pairs), COPY_ROWS):
            new_rows, old_rows = pairs[start : start + COPY_ROWS].T
            out[new_rows] = previous[old_rows]
    todo = [k for k, r in enumerate(reused) if r is None]
    todo_items = [items[k] if len(items[k]) > 1 else items[k][0] for k in todo]
    said: dict[int, Any] = {}
    options = {"workers": workers, "progress": progress, "decode": layout.decode, "infos": said}
    failed = decode_into(todo_items, todo, out, **options)
    for i, info in said.items():
        infos[todo[i]] = info
    for i, reason in failed.items():
        reasons[todo[i]] = reason
    out.flush()
    del out
    with partial.open("rb+") as f:
        os.fsync(f.fileno())
    partial.rename(folder / name)
    return name, reasons


def _read_manifest(folder: Path, root: Path, image_size: int, layout: Layout) -> dict | None:
    """The manifest when it and its pixels file are whole and for this root, size and
    layout, else None (a line on stderr when a damaged one is dropped)."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("version") != VERSION:
            return None  # another decoding policy: rebuilt silently
        expected = (str(Path(root).resolve()), image_size, layout.name, list(layout.policy))
        keys = ("root", "image_size", "layout", "policy")
        if tuple(manifest[k] for k in keys) != expected:
            return None
        n, c = len(manifest["files"]), manifest["channels"]
        pixels = folder / Path(manifest["pixels"]).name
        if (
            c != (layout.channels or c)
            or c not in (1, 3, 4)
            or pixels.stat().st_size != n * c * image_size * image_size
        ):
            raise ValueError(f"{pixels.name} is not {n} x {c} x {image_size}^2 bytes")
        if any(len(e) < 5 or len(e) % 3 != 2 for e in manifest["files"]):
            raise ValueError("malformed file entries")
        return manifest | {"pixels": pixels.name}
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"decoded cache: {folder} is damaged ({error}); rebuilding it", file=sys.stderr)
        return None


def _map(path: Path, n: int, channels: int, size: int) -> np.ndarray:
    """The pixels file as a copy-on-write (n, channels, size, size) uint8 memmap (writable, as
    ``torch.from_numpy`` wants, but never written back)."""
    return np.memmap(path, np.uint8, "c", shape=(n, channels, size, size))


def _remove_stale(folder: Path, keep: str) -> None:
    """Delete the pixels files the manifest no longer names and interrupted builds' leftovers
    (a process still reading an old file keeps its mapping)."""
    for path in [*folder.glob("pixels-*.u8"), *folder.glob(".pixels-*.partial")]:
        if path.name != keep:
            path.unlink(missing_ok=True)

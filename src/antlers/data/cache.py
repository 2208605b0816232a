"""The decoded cache: a class folder's images decoded once, at one size, into a memory-mapped file.

Decoding photos costs milliseconds each, at every run; reading decoded pixels costs microseconds.
The first run that loads a folder at size S decodes every image of both splits, on every core
(``antlers.data.decode``), into one uint8 array (N, C, S, S) on disk; later runs map it and
decode nothing. It lives under ``$ANTLERS_CACHE`` (default ``~/.cache/antlers``), in
``decoded/<folder name>-<hash of its resolved path>-<S>px/``, never in the user's folder::

    manifest.json        what the pixels are: the root, S, C, the pixels file's name, and one
                         entry per file: [relative path, bytes, mtime_ns, gray, reason]
                         (gray: its mode is grayscale, null when unreadable; reason: why it
                         cannot be read, null when decoded). Row k of the pixels is entry k.
    pixels-<token>.u8    the array, C-contiguous, rows of unreadable files left as zeros
    lock                 held (``flock``) by the process that checks or builds the cache

Change detection: a file whose relative path, size and modification time match an entry reuses
that entry's row (copied into the new pixels file); a new or changed file is decoded; a removed
file's row is dropped; a change of C (a colour image added to a gray folder) decodes everything.
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

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from antlers.data.decode import decode_into, is_gray_file
from antlers.io.files import atomic_write
from antlers.io.system import cache_root, gib

__all__ = ["CACHE_MODES", "DecodedFolder", "decoded_cache_folder", "open_decoded"]

CACHE_MODES = ("auto", "on", "off")
VERSION = 1  # of the manifest and of the decoding policy; another version is rebuilt
MANIFEST = "manifest.json"
COPY_ROWS = 1024  # rows copied from the previous pixels file at a time
SPARE_BYTES = 64 * 2**20  # free disk space left after a build


def decoded_cache_folder(root: Path, image_size: int) -> Path:
    """The cache folder of the class folder ``root`` at ``image_size`` px."""
    resolved = Path(root).resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return cache_root() / "decoded" / f"{resolved.name}-{digest}-{image_size}px"


@dataclass(frozen=True)
class DecodedFolder:
    """A class folder's decoded images: ``pixels`` row k is ``files[k]`` of the call.

    pixels: uint8 memmap (N, C, S, S), copy-on-write (a write stays in this process).
    reasons: why file k cannot be read, None when it was decoded (its row is zeros otherwise).
    decoded: how many files this call decoded (0 when the cache held them all).
    """

    pixels: np.ndarray
    reasons: tuple[str | None, ...]
    decoded: int


def open_decoded(
    root: Path,
    files: Sequence[str | Path],
    image_size: int,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> DecodedFolder:
    """The decoded pixels of ``files`` (all under ``root``) at ``image_size``, from the cache,
    after decoding whatever it lacks (see the module docstring). ``progress``: the decoding's
    progress lines, and one line saying what was decoded and where it went."""
    folder = decoded_cache_folder(root, image_size)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = os.path.join(root, "")
    if not all(str(path).startswith(prefix) for path in files):
        raise ValueError(f"{root}: open_decoded's files must lie under it")
    entries = [_stat_entry(prefix, path) for path in files]
    with _locked(folder / "lock"):
        old = _read_manifest(folder, root, image_size)
        reused = _reusable_rows(old, entries)
        gray = [
            old["files"][r][3] if r is not None else is_gray_file(f)  # type: ignore[index]
            for f, r in zip(files, reused, strict=True)
        ]
        channels = 1 if all(g is not False for g in gray) else 3
        if old is not None and old["channels"] != channels:
            old, reused = None, [None] * len(files)  # nothing of it can be reused
        if old is not None and reused == list(range(len(old["files"]))):
            pixels = _map(folder / old["pixels"], len(files), channels, image_size)
            return DecodedFolder(pixels, tuple(e[4] for e in old["files"]), 0)
        shape = (len(files), channels, image_size, image_size)
        name, reasons = _build(folder, files, shape, old, reused, workers, progress)
        files_json = [[*e, g, r] for e, g, r in zip(entries, gray, reasons, strict=True)]
        manifest = {"version": VERSION, "root": str(Path(root).resolve()), "pixels": name}
        manifest |= {"image_size": image_size, "channels": channels, "files": files_json}
        atomic_write(folder / MANIFEST, json.dumps(manifest))
        _remove_stale(folder, keep=name)
    decoded = sum(r is None for r in reused)
    if progress:
        print(
            f"decoded cache: {decoded} of {len(files)} images decoded into {folder} "
            f"({np.prod(shape) / 2**20:.0f} MiB); later runs read them",
            file=sys.stderr,
        )
    return DecodedFolder(_map(folder / name, *shape[:3]), tuple(reasons), decoded)


def _stat_entry(prefix: str, path: str | Path) -> list:
    """[path relative to the root (``prefix``: the root and a slash), bytes, mtime_ns]: what
    identifies a file's version (string operations: 100,000 files are stat'ed at each run)."""
    name = str(path)
    stat = os.stat(name)
    return [name.removeprefix(prefix), stat.st_size, stat.st_mtime_ns]


def _reusable_rows(old: dict | None, entries: list[list]) -> list[int | None]:
    """For each entry, the row of the same file version in the old cache, or None."""
    if old is None:
        return [None] * len(entries)
    rows = {tuple(e[:3]): k for k, e in enumerate(old["files"])}
    return [rows.get(tuple(e)) for e in entries]


def _build(
    folder: Path,
    files: Sequence[str | Path],
    shape: tuple[int, int, int, int],
    old: dict | None,
    reused: list[int | None],
    workers: int | None,
    progress: bool,
) -> tuple[str, list[str | None]]:
    """Write a new pixels file: the reused rows copied, the rest decoded; (its name, reasons)."""
    need, free = int(np.prod(shape)), shutil.disk_usage(folder).free
    if need + SPARE_BYTES > free:
        raise ValueError(
            f"{folder}: the decoded cache needs {gib(need)} and {gib(free)} is free; set "
            "ANTLERS_CACHE to a larger disk or use --data-cache off"
        )
    name = f"pixels-{secrets.token_hex(6)}.u8"
    partial = folder / f".{name}.partial"
    out = np.memmap(partial, np.uint8, "w+", shape=shape)
    reasons = [None if r is None else old["files"][r][4] for r in reused]  # type: ignore[index]
    if old is not None:
        previous = _map(folder / old["pixels"], len(old["files"]), *shape[1:3])
        pairs = np.array([(k, r) for k, r in enumerate(reused) if r is not None]).reshape(-1, 2)
        for start in range(0, len(pairs), COPY_ROWS):
            new_rows, old_rows = pairs[start : start + COPY_ROWS].T
            out[new_rows] = previous[old_rows]
    todo = [k for k, r in enumerate(reused) if r is None]
    failed = decode_into([files[k] for k in todo], todo, out, workers=workers, progress=progress)
    for i, reason in failed.items():
        reasons[todo[i]] = reason
    out.flush()
    del out
    with partial.open("rb+") as f:
        os.fsync(f.fileno())
    partial.rename(folder / name)
    return name, reasons


def _read_manifest(folder: Path, root: Path, image_size: int) -> dict | None:
    """The manifest when it and its pixels file are whole and for this root and size, else
    None (a line on stderr when a damaged one is dropped)."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        expected = (VERSION, str(Path(root).resolve()), image_size)
        if (manifest["version"], manifest["root"], manifest["image_size"]) != expected:
            return None  # another policy version: rebuilt silently
        n, c = len(manifest["files"]), manifest["channels"]
        pixels = folder / Path(manifest["pixels"]).name
        if c not in (1, 3) or pixels.stat().st_size != n * c * image_size * image_size:
            raise ValueError(f"{pixels.name} is not {n} x {c} x {image_size}^2 bytes")
        if any(len(e) != 5 for e in manifest["files"]):
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


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; say so on stderr when another process has it."""
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"decoded cache: waiting for another process building {path.parent}",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

"""Image files to pixels, many at once: every core decodes, one array (N, C, S, S) receives.

One file becomes uint8 (C, S, S) by ``decode_image`` (the class-folder policy of
``antlers.data.folder``: EXIF orientation, 8-bit, gray or RGB, the shorter side scaled to S and
the longer one center-cropped). ``decode_files`` decodes a list of files into rows of an array
the caller owns (in memory, or a ``np.memmap``: only this process writes it): worker processes
(one per core, forked, so nothing is imported again; they use PIL and NumPy only, never torch)
decode chunks of files and send back pixels, and this process writes them into their rows.
Under torchrun every rank decodes its own copy with its own workers and progress lines. A file
that cannot be read is reported to the caller's ``Skips`` (skip and count, or raise when strict)
and its row is left as zeros; the caller keeps only the decoded rows.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from antlers.data.skips import Skips
from antlers.io.images import ImageError, open_image, to_8bit
from antlers.io.progress import Progress

__all__ = [
    "CHUNK",
    "GRAY_MODES",
    "PARALLEL_FROM",
    "available_cores",
    "decode_files",
    "decode_image",
    "decode_into",
    "in_chunks",
    "is_gray_file",
    "report_failures",
]

CHUNK = 64  # files per task sent to a worker: large enough to amortise the messages
PARALLEL_FROM = 256  # fewer files than this are decoded in this process (no workers to start)
IN_FLIGHT = 4  # chunks submitted ahead per worker: they stay busy, and decoded pixels wait in
# memory only for those (a whole folder's would not fit: 100,000 images at 224 px are 15 GB)
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def is_gray_file(path: str | Path) -> bool | None:
    """Whether the file's mode is grayscale, from its header only; None if it cannot be opened."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as f, Image.open(f) as im:
                return im.mode in GRAY_MODES
    except Exception:  # Pillow raises many exception types for malformed files
        return None


def decode_image(path: str | Path, image_size: int, channels: int) -> np.ndarray:
    """One image file as uint8 (image_size, image_size, channels) by the folder policy.

    Raises ``open_image``'s ImageError for a file it refuses.
    """
    im = to_8bit(open_image(path))
    im = im.convert("L" if channels == 1 else "RGB")
    im = ImageOps.fit(im, (image_size, image_size), method=Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8).reshape(image_size, image_size, channels)


def _decode_chunk(
    paths: Sequence[str | Path], image_size: int, channels: int
) -> list[np.ndarray | str]:
    """Each file as uint8 (C, S, S), or the reason it cannot be read (a worker's task)."""
    results: list[np.ndarray | str] = []
    for path in paths:
        try:
            results.append(decode_image(path, image_size, channels).transpose(2, 0, 1))
        except ImageError as error:
            results.append(error.reason)
    return results


def in_chunks(task: Callable[[list], list], items: Sequence, workers: int) -> Iterator[tuple]:
    """(indices of a chunk of ``items``, ``task(chunk's items)``), in the items' order: run here
    for one worker or fewer than ``PARALLEL_FROM`` items, else by ``workers`` forked processes
    (``task`` must pickle: a module-level function or a partial of one), at most ``IN_FLIGHT``
    chunks each ahead, so that results waiting in memory do not grow with the items. A worker
    that dies (killed, out of memory) is a ValueError in one line."""
    chunks = [range(i, min(i + CHUNK, len(items))) for i in range(0, len(items), CHUNK)]
    if workers == 1 or len(items) < PARALLEL_FROM:
        for chunk in chunks:
            yield chunk, task([items[i] for i in chunk])
        return
    done = 0
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            pending: deque[tuple[range, Future]] = deque()
            for chunk in chunks:
                pending.append((chunk, pool.submit(task, [items[i] for i in chunk])))
                while pending and (len(pending) >= IN_FLIGHT * workers or chunk is chunks[-1]):
                    finished, result = pending.popleft()
                    yield finished, result.result()
                    done += len(finished)
    except BrokenProcessPool:
        raise ValueError(
            f"a worker process died (killed, or out of memory?) after {done} of {len(items)} "
            "files; try again with fewer workers"
        ) from None


def decode_into(
    files: Sequence[Any],
    rows: Sequence[int],
    out: np.ndarray,
    *,
    workers: int | None = None,
    progress: bool = True,
    decode: Callable[..., list] | None = None,
    infos: dict[int, Any] | None = None,
) -> dict[int, str]:
    """Decode ``files[i]`` into ``out[rows[i]]``; returns ``{i: reason}`` for the files that
    cannot be read (their rows are left as they were).

    out: uint8 (N, C, S, S), S square, in memory or a writable ``np.memmap``. workers:
    processes (default: every available core; one decodes here, without starting any). A
    worker that dies (killed, out of memory) is a ValueError in one line. ``progress``: a bar or
    plain lines with the rate and the ETA on stderr, for ``PARALLEL_FROM`` files or more.
    decode: how a chunk of ``files`` becomes rows, ``decode(chunk, image_size=S, channels=C)``
    -> uint8 (C, S, S) or a reason each (default: image files by the class-folder policy);
    then ``files`` are whatever it takes (e.g. (image, mask) pairs). A decoder may give
    (row, info) for a file instead of a row: the info is put in ``infos[i]``.
    """
    _, channels, size, _ = out.shape
    shown = progress and len(files) >= PARALLEL_FROM  # a few files need no progress lines
    bar = Progress(len(files), "decoding images", enabled=shown, unit="images")
    task = functools.partial(decode or _decode_chunk, image_size=size, channels=channels)
    failed: dict[int, str] = {}
    try:
        for chunk, results in in_chunks(task, files, workers or available_cores()):
            for i, result in zip(chunk, results, strict=True):
                if isinstance(result, str):
                    failed[i] = result
                elif isinstance(result, tuple):  # (row, what the decoder says of the file)
                    out[rows[i]] = result[0]
                    if infos is not None:
                        infos[i] = result[1]
                else:
                    out[rows[i]] = result
            bar.update(len(chunk))
    finally:
        bar.close()
    return failed


def report_failures(files: Sequence[str | Path], failed: dict[int, str], skips: Skips) -> list[int]:
    """Hand each failed file to ``skips`` in the files' order (strict raises at the first);
    returns the indices of the files that were decoded."""
    for i in sorted(failed):
        skips.skip(Path(files[i]).name, f"{files[i]}: cannot read image: {failed[i]}")
    return [i for i in range(len(files)) if i not in failed]


def decode_files(
    files: Sequence[str | Path],
    rows: Sequence[int],
    out: np.ndarray,
    skips: Skips,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> list[int]:
    """``decode_into``, with the unreadable files handed to ``skips`` (which may raise, when
    strict) in the order of ``files``; returns the ``i`` of the files decoded."""
    failed = decode_into(files, rows, out, workers=workers, progress=progress)
    return report_failures(files, failed, skips)

"""Benchmark: a class folder of photo-sized JPEGs decoded on every core against one process,
in one invocation.

    .venv/bin/python benchmarks/data.py                         # 1,000 photos; records '## data'
    .venv/bin/python benchmarks/data.py --images 200 --no-record

Recipe: (1) write ``--images`` photo-like JPEGs (500x375, smooth colour gradients with noise,
quality 90) into two class folders of a temporary folder; (2) at each training size (64 and
224 px) load the training split with ``load_folder`` (the 80% of a stratified split), once with
every available core (``antlers.data.decode``) and once in this process alone (the baseline:
how every folder was read before); (3) record images/s of each and their ratio. Both sides
produce the same pixels (checked here, and by tests/test_data_decode.py).
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from antlers.data.decode import available_cores
from antlers.data.folder import load_folder
from common import cpu_model, publish


def write_photos(root: Path, count: int, seed: int = 0) -> None:
    """``count`` 500x375 JPEGs, alternately in ``root/a`` and ``root/b``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:375, 0:500].astype(np.float32)
    for i in range(count):
        a, b, c = rng.uniform(0.2, 1.0, 3)
        image = np.stack([x * a / 2, y * b / 1.5, (x + y) * c / 3.5], axis=-1)
        image += rng.normal(0, 12, image.shape).astype(np.float32)
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = image.clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.jpg", quality=90)


def timed_load(root: Path, size: int, workers: int) -> tuple[float, torch.Tensor]:
    """Seconds to load the training split at ``size`` px with ``workers`` processes."""
    start = time.perf_counter()
    images = load_folder(root, "train", image_size=size, progress=False, workers=workers).images
    return time.perf_counter() - start, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    cores = available_cores()
    start = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "photos"
        write_photos(root, args.images)
        for size in (64, 224):
            ours, ours_images = timed_load(root, size, cores)
            base, base_images = timed_load(root, size, 1)
            if not torch.equal(ours_images, base_images):
                raise SystemExit(f"{size} px: parallel and serial decoding differ")
            n = len(ours_images)
            rows.append(
                f"| {size} px | {n} | {n / ours:.0f} | {n / base:.0f} | **{base / ours:.2f}x** |"
            )
            print(rows[-1], flush=True)
    lines = [
        "## data",
        "",
        f"{start:%Y-%m-%d %H:%M} UTC, {cpu_model()}, {cores} cores available, 1-min load "
        f"average {load:.1f} at start, torch {torch.__version__}, Pillow {Image.__version__}; "
        f"{args.images} JPEGs of 500x375 (quality 90), the training split (80%) decoded.",
        "",
        f"| size | images | ours ({cores} processes), images/s | one process, images/s | ratio |",
        "|---|---|---|---|---|",
        *rows,
    ]
    publish(lines, record=not args.no_record)


if __name__ == "__main__":
    main()

"""Benchmark: streaming training batches from a folder of photos against torchvision's
``ImageFolder`` + ``DataLoader`` with the same workers and transforms, in one invocation.

    .venv/bin/python benchmarks/stream.py               # 2,000 photos; records '## data streaming'
    .venv/bin/python benchmarks/stream.py --images 400 --no-record

Recipe: (1) write 1,000 distinct photo-like JPEGs (500x375, quality 90; ``data.py``'s),
hard-linked into two class folders of ``--images`` files; build the decoded cache; (2) at 64
and 224 px, one epoch of the training split (80%) in batches of 256, shuffled, with one worker
process per core, as random resized crops (35-100% of the area, aspect 3/4-4/3, antialiased)
mirrored at random: (a) ours, ``antlers.engine.stream.StreamLoader`` (the files decoded by the
folder policy: EXIF orientation, 8-bit; each sample seeded), (b) the baseline, torchvision's
``ImageFolder`` (PIL's loader) with ``transforms.v2`` (ToImage, RandomResizedCrop,
RandomHorizontalFlip) and ``DataLoader``; each side run twice, alternately, the faster kept;
(3) images/s of each and their ratio.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from antlers.data.decode import available_cores
from antlers.data.folder import load_folder
from antlers.engine.stream import CROP_RATIO, CROP_SCALE, StreamLoader
from cache import write_folder
from common import cpu_model, publish

BATCH = 256


def ours(root: Path, size: int, workers: int) -> float:
    """Images/s of one epoch of our streaming loader over the training split."""
    train = load_folder(root, "train", image_size=size, cache="on", progress=False)
    loader = StreamLoader.of(train, BATCH, workers, shuffle=True, seed=0, flip=True)
    start, count = time.perf_counter(), 0
    for batch in loader.epoch(0):
        count += len(batch["label"])
    return count / (time.perf_counter() - start)


def baseline(root: Path, size: int, workers: int, count: int) -> float:
    """Images/s of torchvision's ImageFolder + DataLoader over ``count`` of the images."""
    transform = v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop((size, size), scale=CROP_SCALE, ratio=CROP_RATIO, antialias=True),
            v2.RandomHorizontalFlip(),
        ]
    )
    data = torch.utils.data.Subset(ImageFolder(str(root), transform=transform), range(count))
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, num_workers=workers)
    start, seen = time.perf_counter(), 0
    for images, labels in loader:
        seen += len(labels)
        images.float().div_(255)  # as ours hands the trainer floats in [0, 1]
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    workers = available_cores()
    start = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        os.environ["ANTLERS_CACHE"] = str(Path(folder) / "cache")
        root = Path(folder) / "photos"
        write_folder(root, args.images)
        for size in (64, 224):
            n = len(load_folder(root, "train", image_size=size, cache="on", progress=False))
            trials = {"ours": [], "torchvision": []}
            for _ in range(2):
                trials["ours"].append(ours(root, size, workers))
                trials["torchvision"].append(baseline(root, size, workers, n))
            a, b = max(trials["ours"]), max(trials["torchvision"])
            rows.append(f"| {size} px | {n:,} | {a:,.0f} | {b:,.0f} | **{a / b:.2f}x** |")
            print(rows[-1], flush=True)
    lines = [
        "## data streaming",
        "",
        f"{start:%Y-%m-%d %H:%M} UTC, {cpu_model()}, {workers} cores, {workers} worker "
        f"processes per side, 1-min load average {load:.1f} at start, torch {torch.__version__}; "
        f"{args.images:,} JPEGs of 500x375, the training split streamed once per trial "
        "(batches of 256, random resized crops and flips); the faster of two trials per side.",
        "",
        "| size | images | ours, images/s | torchvision ImageFolder + DataLoader, images/s "
        "| ratio |",
        "|---|---|---|---|---|",
        *rows,
    ]
    publish(lines, record=not args.no_record)


if __name__ == "__main__":
    main()

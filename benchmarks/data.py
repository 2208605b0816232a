"""Benchmark: a class folder and a mask folder of photo-sized JPEGs decoded on every core
against one process, in one invocation.

    .venv/bin/python benchmarks/data.py                         # 1,000 photos; records '## data'
    .venv/bin/python benchmarks/data.py --images 200 --no-record

Recipe: (1) write ``--images`` photo-like JPEGs (500x375, smooth colour gradients with noise,
quality 90) into two class folders of a temporary folder, and as many again with a 3-class mask
PNG each into a segmentation mask folder (images/, masks/, classes.txt); (2) at each training
size (64 and 224 px) load the training split with ``load_folder`` and with
``load_mask_folder``, once with every available core (``antlers.data.decode``) and once in this
process alone (the baseline: how every folder was read before); (3) record images/s of each
and their ratio. Both sides produce the same pixels and masks (checked here, and by
tests/test_data_decode.py and tests/test_segment_data.py).
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
from antlers.data.mask_folder import load_mask_folder
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


def write_pairs(root: Path, count: int) -> None:
    """``count`` photos in root/images and their masks in root/masks (ids 0-2 from the
    photo's brightness), with root/classes.txt."""
    write_photos(root / "images", count)
    (root / "masks").mkdir(parents=True)
    (root / "classes.txt").write_text("dark\nmid\nbright\n")
    for photo in (root / "images").rglob("*.jpg"):
        with Image.open(photo) as im:
            ids = np.asarray(im.convert("L"), dtype=np.uint8) // 86
        mask = root / "masks" / photo.relative_to(root / "images")
        mask.parent.mkdir(exist_ok=True)
        Image.fromarray(ids, mode="L").save(mask.with_suffix(".png"))


def timed_load(root: Path, size: int, workers: int, masks: bool) -> tuple[float, torch.Tensor]:
    """Seconds to load the training split at ``size`` px with ``workers`` processes, and its
    images (with the masks appended, for a mask folder)."""
    options = {"image_size": size, "progress": False, "workers": workers}
    start = time.perf_counter()
    if masks:
        data = load_mask_folder(root, "train", **options)
        pixels = torch.cat([data.images.flatten(), data.masks.flatten()])
    else:
        pixels = load_folder(root, "train", cache="off", **options).images  # decoded here
    return time.perf_counter() - start, pixels


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
        write_photos(Path(folder) / "photos", args.images)
        write_pairs(Path(folder) / "segments", args.images)
        for kind, masks in (("class folder", False), ("mask folder", True)):
            root = Path(folder) / ("segments" if masks else "photos")
            for size in (64, 224):
                ours, ours_pixels = timed_load(root, size, cores, masks)
                base, base_pixels = timed_load(root, size, 1, masks)
                if not torch.equal(ours_pixels, base_pixels):
                    raise SystemExit(f"{kind}, {size} px: parallel and serial reading differ")
                n = round(args.images * 0.8)
                rows.append(
                    f"| {kind} | {size} px | {n} | {n / ours:.0f} | {n / base:.0f} "
                    f"| **{base / ours:.2f}x** |"
                )
                print(rows[-1], flush=True)
    lines = [
        "## data",
        "",
        f"{start:%Y-%m-%d %H:%M} UTC, {cpu_model()}, {cores} cores available, 1-min load "
        f"average {load:.1f} at start, torch {torch.__version__}, Pillow {Image.__version__}; "
        f"{args.images} JPEGs of 500x375 (quality 90) per folder, the training split (80%) "
        "decoded (a mask folder's images with their masks).",
        "",
        f"| folder | size | images | ours ({cores} processes), images/s | one process, images/s "
        "| ratio |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    publish(lines, record=not args.no_record)


if __name__ == "__main__":
    main()

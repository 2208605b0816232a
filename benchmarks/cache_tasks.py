"""Benchmark: a mask folder (segment) and a COCO file (detect) through the decoded cache against
decoding them at every run, in one invocation.

    .venv/bin/python benchmarks/cache_tasks.py     # records '## data cache, segment and detect'
    .venv/bin/python benchmarks/cache_tasks.py --images 3000 --no-record

Recipe: (1) write 1,000 distinct photo-like JPEGs (500x375; ``data.py``'s) with their masks (ids
from the brightness) and hard-link them, over and over, into a mask folder and a COCO data set of
``--images`` each (decoding costs the same; the disk holds 1,000 files); the COCO file gives each
image two boxes; (2) time the task's ``load_data`` (both splits, the validation split, pixel
statistics) for segment at 64 px and detect at 128 px (a) with ``--data-cache off`` (the
baseline: every image decoded at every run, on every core), (b) with a cold cache (the first run
builds it), (c) with the warm cache (every later run), each in a fresh forked process, and check
that the three give the same first training batch; (3) the peak anonymous memory of each load
over the process's before it (``cache.py``'s PeakMemory; a fresh process, so that memory an
earlier load left to the allocator is not counted; the modules imported beforehand).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from antlers.data.decode import available_cores
from antlers.tasks import default_config, get_task
from cache import DISTINCT, PeakMemory
from common import cpu_model, publish
from data import write_pairs

SIZES = {"segment": 64, "detect": 128}


def write_sets(folder: Path, count: int) -> dict[str, Path]:
    """A mask folder and a COCO file of ``count`` images each, hard links to 1,000 pairs."""
    distinct = folder / "distinct"
    write_pairs(distinct, min(count, DISTINCT))
    photos = sorted((distinct / "images").rglob("*.jpg"))
    masks = folder / "masks"
    for sub in ("images", "masks"):
        (masks / sub).mkdir(parents=True)
    (masks / "classes.txt").write_text((distinct / "classes.txt").read_text())
    images, boxes = [], []
    for i in range(count):
        photo = photos[i % len(photos)]
        mask = (distinct / "masks" / photo.relative_to(distinct / "images")).with_suffix(".png")
        os.link(photo, masks / "images" / f"{i:07d}.jpg")
        os.link(mask, masks / "masks" / f"{i:07d}.png")
        images.append({"id": i, "file_name": f"images/{i:07d}.jpg", "width": 500, "height": 375})
        for k, box in enumerate(([40, 50, 120, 90], [260, 150, 160, 140])):
            boxes.append({"id": 2 * i + k, "image_id": i, "category_id": k + 1, "bbox": box})
    categories = [{"id": 1, "name": "left"}, {"id": 2, "name": "right"}]
    coco = masks / "coco.json"  # beside images/, which its file names start with
    coco.write_text(json.dumps({"images": images, "annotations": boxes, "categories": categories}))
    return {"segment": masks, "detect": coco}


def load(task: str, data: Path, cache: str) -> dict:
    """Seconds to load the task's data, the peak memory over the process's before it, and its
    first training batch (run in a fresh process)."""
    memory = PeakMemory()
    config = default_config(task, data=str(data), image_size=SIZES[task], data_cache=cache)
    memory.reset()
    before = memory.peak
    start = time.perf_counter()
    loaded = get_task(task).load_data(config)
    seconds, peak = time.perf_counter() - start, memory.peak - before
    batch = next(iter(loaded.train))["image"].numpy()  # NumPy: sent to the parent by value
    return {"load": seconds, "peak": peak, "batch": batch}


def in_child(task: str, data: Path, cache: str) -> dict:
    """``load`` in a forked process of its own (not a daemon: the decoding starts workers)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=lambda: send.send(load(task, data, cache)))
    child.start()
    result = receive.recv()
    child.join()
    return result


def measure(task: str, data: Path, count: int) -> list[str]:
    """The table rows and the summary line of one task."""
    runs = {cache: in_child(task, data, cache) for cache in ("off", "on")}
    runs["warm"] = in_child(task, data, "on")
    for name, run in runs.items():
        if not np.array_equal(run["batch"], runs["off"]["batch"]):
            raise SystemExit(f"{task}, cache {name}: the first batch differs from decoding")
    labels = {"off": "decoding at every run (baseline)", "on": "first run: builds the cache"}
    rows = [
        f"| {task} | {SIZES[task]} px | {count:,} | {labels.get(name, 'later runs: warm cache')} "
        f"| {run['load']:.1f} | {count / run['load']:,.0f} | {run['peak'] / 2**30:.2f} |"
        for name, run in runs.items()
    ]
    sooner = runs["off"]["load"] / runs["warm"]["load"]
    summary = f"{task}: the warm cache loads **{sooner:.1f}x** sooner than decoding at every run."
    print(*rows, summary, sep="\n", flush=True)
    return [*rows, summary]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    start = datetime.datetime.now(datetime.UTC)
    load_average = os.getloadavg()[0]
    for task in SIZES:  # imported here, not counted in each load's memory
        get_task(task).load_data  # noqa: B018
    with tempfile.TemporaryDirectory() as folder:
        os.environ["ANTLERS_CACHE"] = str(Path(folder) / "cache")
        sets = write_sets(Path(folder), args.images)
        results = {task: measure(task, sets[task], args.images) for task in SIZES}
    lines = [
        "## data cache, segment and detect",
        "",
        f"{start:%Y-%m-%d %H:%M} UTC, {cpu_model()}, {available_cores()} cores, 1-min load "
        f"average {load_average:.1f} at start, torch {torch.__version__}; JPEGs of 500x375 "
        f"({DISTINCT:,} distinct, hard-linked) with PNG masks (segment) or a COCO file of two "
        "boxes per image (detect). 'load': the task's `load_data` (both splits, the validation "
        "split, pixel statistics), each in a fresh process; memory: the load's peak anonymous "
        "memory over the process's before it (the mapped cache's page cache excluded).",
        "",
        "| task | size | images | run | load, s | images/s loaded | peak memory of the load, GiB |",
        "|---|---|---|---|---|---|---|",
        *[row for lines in results.values() for row in lines[:-1]],
        "",
        *[lines[-1] for lines in results.values()],
    ]
    publish(lines, record=not args.no_record)


if __name__ == "__main__":
    main()

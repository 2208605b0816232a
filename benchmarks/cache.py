"""Benchmark: a large class folder through the decoded cache against decoding it at every run,
in one invocation.

    .venv/bin/python benchmarks/cache.py              # 100,000 photos; records '## data cache'
    .venv/bin/python benchmarks/cache.py --images 5000 --no-record

Recipe: (1) write 1,000 distinct photo-like JPEGs (500x375, quality 90; ``data.py``'s) and
hard-link them, over and over, into two class folders of ``--images`` files (decoding costs the
same; the disk holds 1,000 files); (2) at 64 px (all the files) and at 224 px (a fifth of them):
time classify's ``load_data`` (both splits, the validation split, pixel statistics, the
whitening of the default model) and one training step of the default model on a batch of 64,
(a) with ``--data-cache off`` (the baseline: decoding at every run), (b) with a cold cache (the
first run builds it), (c) with the warm cache (every later run), and check that the three give
the same training batches; (3) the images/s the training loader delivers (batches of 512, flips,
4-pixel random crops) from the cache, against the decoding rate; (4) the peak anonymous memory
of each run's load (RssAnon, sampled every 2 ms: the page cache of the mapped file excluded).
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import threading
import time
from pathlib import Path

import torch

from antlers.config import TrainConfig
from antlers.data.cache import decoded_cache_folder
from antlers.data.decode import available_cores
from antlers.tasks import get_task
from common import cpu_model, publish
from data import write_photos

DISTINCT = 1000
STEP_BATCH = 64  # the first training step's batch: its time, not the data's, grows with it


class PeakMemory:
    """The peak RssAnon of this process since the last ``reset``, sampled in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def now() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            time.sleep(0.002)

    def reset(self) -> None:
        self.peak = self.now()


def write_folder(root: Path, count: int) -> None:
    """``count`` photos in root/a and root/b: 1,000 distinct files and hard links to them."""
    distinct = root.parent / "distinct"
    write_photos(distinct, min(count, DISTINCT))
    sources = sorted(distinct.rglob("*.jpg"))
    for i in range(count):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        os.link(sources[i % len(sources)], folder / f"{i:07d}.jpg")


def first_step(root: Path, size: int, cache: str, memory: PeakMemory) -> dict:
    """Seconds to load the data and to finish one training step, the peak memory, and the
    first training batch, for classify's default model."""
    config = TrainConfig(data=str(root), image_size=size, data_cache=cache, batch_size=STEP_BATCH)
    task = get_task("classify")
    memory.reset()
    start = time.perf_counter()
    data = task.load_data(config)
    loaded, peak = time.perf_counter() - start, memory.peak
    model = task.build_model(data.model_config)
    batch = next(iter(data.train))  # float [0, 1]; the model normalises
    torch.nn.functional.cross_entropy(model(batch["image"]), batch["label"]).backward()
    stepped = time.perf_counter() - start
    return {"load": loaded, "step": stepped, "peak": peak, "batch": batch["image"]}


def loader_rate(loader: object, seconds: float = 10.0) -> float:
    """Images per second the loader yields (epochs repeated until ``seconds`` have passed)."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for batch in loader:  # type: ignore[attr-defined]
            count += len(batch["label"])
            if time.perf_counter() - start >= seconds:
                break
    return count / (time.perf_counter() - start)


def measure(root: Path, size: int, memory: PeakMemory) -> list[str]:
    """The table rows and the summary line of one size."""
    runs = {cache: first_step(root, size, cache, memory) for cache in ("off", "on")}
    runs["warm"] = first_step(root, size, "on", memory)
    for name, run in runs.items():
        if not torch.equal(run["batch"], runs["off"]["batch"]):
            raise SystemExit(f"{size} px, cache {name}: the first batch differs from decoding")
    n = len(list(root.rglob("*.jpg")))
    config = TrainConfig(data=str(root), image_size=size, batch_size=512, crop=4, data_cache="on")
    rate = loader_rate(get_task("classify").load_data(config).train)
    disk = sum(p.stat().st_size for p in decoded_cache_folder(root, size).glob("pixels-*"))
    labels = {"off": "decoding at every run (baseline)", "on": "first run: builds the cache"}
    rows = [
        f"| {size} px | {n:,} | {labels.get(name, 'later runs: warm cache')} | {run['load']:.1f} "
        f"| {run['step']:.1f} | {n / run['load']:,.0f} | {run['peak'] / 2**30:.2f} |"
        for name, run in runs.items()
    ]
    decode_rate = n / runs["off"]["load"]
    build_rate = n / runs["on"]["load"]
    sooner = runs["off"]["step"] / runs["warm"]["step"]
    summary = (
        f"{size} px: the warm cache reaches the first step **{sooner:.1f}x** sooner than "
        f"decoding; it takes {disk / 2**30:.2f} GiB on disk ({disk / n / 1024:.1f} "
        f"KiB per image); the training loader delivers {rate:,.0f} images/s from it, "
        f"**{rate / decode_rate:.0f}x** the decoding rate. A million such photos: "
        f"{disk / n * 1e6 / 2**30:.1f} GiB of cache, built in {1e6 / build_rate / 60:.0f} "
        f"minutes at this rate, then loaded in about {runs['warm']['load'] * 1e6 / n:.0f} s "
        "per run (linear extrapolation)."
    )
    print(*rows, summary, sep="\n", flush=True)
    return [*rows, summary]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    start = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg()[0]
    memory = PeakMemory()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        os.environ["ANTLERS_CACHE"] = str(Path(folder) / "cache")
        for size, count in ((64, args.images), (224, args.images // 5)):
            root = Path(folder) / f"photos{size}"
            write_folder(root, count)
            results[size] = measure(root, size, memory)
    lines = [
        "## data cache",
        "",
        f"{start:%Y-%m-%d %H:%M} UTC, {cpu_model()}, {available_cores()} cores, 1-min load "
        f"average {load:.1f} at start, torch {torch.__version__}, float32; class folders of "
        f"JPEGs of 500x375 ({DISTINCT:,} distinct, hard-linked). 'load': classify's "
        "`load_data` (both splits, the validation split, pixel statistics, whitening); 'first "
        f"step': the model built and one training step of {STEP_BATCH} images; memory: the peak "
        "anonymous memory of the load (the mapped cache's page cache excluded).",
        "",
        "| size | images | run | load, s | to the first step, s | images/s loaded | peak "
        "memory of the load, GiB |",
        "|---|---|---|---|---|---|---|",
        *[row for lines in results.values() for row in lines[:-1]],
        "",
        *[line for lines in results.values() for line in (lines[-1], "")][:-1],
    ]
    publish(lines, record=not args.no_record)


if __name__ == "__main__":
    main()

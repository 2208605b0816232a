"""Benchmark: ``antlers serve`` over loopback against the same work called in-process.

    .venv/bin/python benchmarks/serve.py              # records the '## serve' section
    .venv/bin/python benchmarks/serve.py --no-record

A tiny lecture_cnn run on the 28x28 digits (1 epoch) is trained into a temporary folder. Then:
the start of ``antlers serve`` (a subprocess, until it answers GET /api/runs); the page's first
load in Chromium (headless, the distribution's; from ``goto`` to the Convolution view's output
grid on screen), cold and then the median of 10 reloads; and, over 100 requests each on one
loopback connection, a convolution edit (POST /api/conv with the lecture's 5x6 grid), a predict
of a 28x28 PNG, and feature maps plus Grad-CAM of that image (POST .../explain). The baseline,
in the same process: the same library call without HTTP (``conv_grid``, ``Run.predict_files``,
``look_inside``); the ratio is the cost of the server around the work.
Targets: start < 3 s, first load < 1 s, edit < 50 ms, predict p50 < 100 ms, explain p50 < 300 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from common import cpu_model, record_section

REQUESTS = 100
TARGETS = {"start": 3.0, "load": 1.0, "edit": 0.050, "predict": 0.100, "explain": 0.300}


def train_run(folder: Path) -> Path:
    from antlers.cli import main

    options = ["--data", "digits", "--model", "lecture_cnn", "--image-size", "28", "--epochs", "1"]
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        main(
            ["train", "classify", *options, "--device", "cpu", "--out", str(folder), "--name", "b"]
        )
    return folder / "classify" / "b"


def percentiles(call: Callable[[], object], n: int = REQUESTS) -> tuple[float, float]:
    call()  # warm: the model loaded, the code paths run once
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def start_time(runs: Path) -> float:
    """Seconds from launching ``antlers serve`` to its first answer of GET /api/runs."""
    import httpx

    start = time.perf_counter()
    command = [sys.executable, "-m", "antlers", "serve", str(runs), "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        url = server.stdout.readline().split(" at ")[1].split()[0]
        httpx.get(url + "api/runs", timeout=30).raise_for_status()
        elapsed = time.perf_counter() - start
        server.terminate()
    return elapsed


def page_load(url: str) -> tuple[float, float, float, float]:
    """The cold first load, the median of 10 reloads, and p50 / p95 of 40 edits of an image
    cell until the output grid shows the new value (the browser's whole loop), in Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page()
        times = []
        for _ in range(11):
            start = time.perf_counter()
            page.goto(url + "?view=conv")
            page.wait_for_selector("svg.out g.cell")
            times.append(time.perf_counter() - start)
        edits = []
        for i in range(1, 41):
            start = time.perf_counter()
            page.fill('#image input[data-r="0"][data-c="0"]', str(i))
            page.wait_for_function(  # out[0, 0] = -1 * x[0, 0] with the vertical-line kernel
                "v => document.querySelector('svg.out g.cell').dataset.value === v", arg=str(-i)
            )
            edits.append(time.perf_counter() - start)
        browser.close()
    p50, p95 = np.percentile(edits, [50, 95])
    return times[0], float(np.median(times[1:])), float(p50), float(p95)


def measure(run_dir: Path, runs: Path) -> dict[str, tuple[float, ...]]:
    import httpx
    from PIL import Image

    from antlers.conv import KERNELS, lecture_image
    from antlers.run import Run
    from antlers.serve.app import ServeConfig, create_app
    from antlers.serve.convolution import conv_grid
    from antlers.serve.network import look_inside
    from antlers.serve.server import running

    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), np.uint8))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    data = buffer.getvalue()
    file = runs.parent / "digit.png"
    file.write_bytes(data)
    grid = {"image": lecture_image().tolist(), "kernel": KERNELS["vertical_line"].tolist()}
    run = Run.load(run_dir)
    results: dict[str, tuple[float, ...]] = {"start": (start_time(runs),)}
    with running(create_app(ServeConfig(runs=(str(runs),)))) as url:
        results["load"] = page_load(url)
        with httpx.Client(base_url=url, timeout=60) as client:
            files = {"image": ("digit.png", data, "image/png")}
            results["edit"] = percentiles(lambda: client.post("/api/conv", json=grid))
            results["predict"] = percentiles(
                lambda: client.post("/api/runs/classify-b/predict", files=files)
            )
            results["explain"] = percentiles(
                lambda: client.post("/api/runs/classify-b/explain", files=files)
            )
    results["edit_base"] = percentiles(lambda: conv_grid(grid["image"], grid["kernel"]))
    results["predict_base"] = percentiles(lambda: run.predict_files([str(file)]))
    results["explain_base"] = percentiles(lambda: look_inside(run, picture))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        runs = Path(folder) / "runs"
        run_dir = train_run(runs)
        r = measure(run_dir, runs)
    load_end = os.getloadavg()[0]
    ms = 1000.0
    rows = []
    for key, name in [
        ("edit", "convolution edit (POST /api/conv, 5x6 grid)"),
        ("predict", "predict, one 28x28 PNG"),
        ("explain", "feature maps + Grad-CAM, one 28x28 PNG"),
    ]:
        (p50, p95), (b50, b95) = r[key], r[f"{key}_base"]
        met = "met" if p50 <= TARGETS[key] else "missed"
        rows.append(
            f"| {name} | {p50 * ms:.1f} | {p95 * ms:.1f} | {b50 * ms:.1f} | {b95 * ms:.1f} | "
            f"{p50 / b50:.1f} | < {TARGETS[key] * ms:.0f} ms p50: {met} |"
        )
    start, (cold, warm, edit50, edit95) = r["start"][0], r["load"]
    for row in rows:
        print(row)
    section = [
        "## serve",
        "",
        "`benchmarks/serve.py`: `antlers serve` over loopback (uvicorn in a background thread,",
        "one httpx connection, 100 requests after one warm-up) against the same library call",
        "in the same process without HTTP; a lecture_cnn run on the 28x28 digits (1 epoch).",
        "The server's socket sets TCP_NODELAY (without it every answer waited for the client's",
        "delayed ACK, a constant 40 ms per request on Linux).",
        "",
        f"- machine: {cpu_model()}; threads: {args.threads}; float32; torch {torch.__version__}; "
        f"date: {datetime.date.today()}",
        f"- load average (1 min) at the start / end: {load:.2f} / {load_end:.2f} (other work "
        "on the 2 shared cores skews the times)",
        "",
        "| request | p50 (ms) | p95 (ms) | in-process p50 (ms) | in-process p95 (ms) | "
        "server / in-process (p50) | target |",
        "|---|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"- start of `antlers serve` until it answers GET /api/runs: {start:.2f} s "
        f"(target < 3 s: {'met' if start < TARGETS['start'] else 'missed'})",
        f"- first load of the page in Chromium, to the Convolution view's output on screen: "
        f"{cold:.2f} s cold, {warm:.2f} s median of 10 reloads "
        f"(target < 1 s: {'met' if cold < TARGETS['load'] else 'missed'})",
        f"- a convolution edit in Chromium, from typing into a cell to the new output on screen "
        f"(40 edits): p50 {edit50 * ms:.1f} ms, p95 {edit95 * ms:.1f} ms "
        f"(target < 50 ms: {'met' if edit50 < TARGETS['edit'] else 'missed'})",
    ]
    print("\n".join(section[6:]))
    if not args.no_record:
        record_section(section)
        print("recorded in docs/benchmarks.md", file=sys.stderr)


if __name__ == "__main__":
    main()

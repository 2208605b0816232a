"""Benchmark: one process against several (torchrun, gloo) on this machine's CPU cores, with the
same recipe, data and time budget, in one invocation.

    .venv/bin/python benchmarks/scale.py                  # records '## scale'
    .venv/bin/python benchmarks/scale.py --seconds 10 --repeats 1 --no-record

Each run is ``antlers train classify --data fashion-mnist --time T`` (the default recipe), as
one process with all ``--threads`` threads, and under ``torchrun --nproc-per-node P`` with
threads / P threads each and the per-process batch divided by P (the same global batch, so the
same schedule). Recorded per side, the median over ``--repeats`` seeds: training images per
second (from the run's summary line: all ranks' images), the time at which validation accuracy
first reached 91% (epoch ends only, so an upper bound), and the test accuracy of the epoch chosen
on validation. On two shared cores expect little or no gain: the processes split the same cores
and add an all-reduce per step.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import cpu_model, matmul_peak, record_section

TARGET = 0.91
RATE = re.compile(r"(\d+) images/s, ([\d.]+) GFLOP/s")


def run(processes: int, threads: int, seconds: float, seed: int, batch: int, out: Path) -> dict:
    """One training run; its images/s, time to ``TARGET`` on validation and test accuracy."""
    name = f"p{processes}_s{seed}"
    args = [
        "train", "classify", "--data", "fashion-mnist", "--time", str(seconds), "--seed",
        str(seed), "--batch-size", str(batch // processes), "--device", "cpu", "--out", str(out),
        "--name", name,
    ]  # fmt: skip
    launcher = [sys.executable, "-m", "antlers"]
    if processes > 1:
        launcher = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}",
            "--standalone", "-m", "antlers",
        ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads // processes)}
    done = subprocess.run([*launcher, *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        sys.exit(f"scale: run {name} failed ({done.returncode}): " + " | ".join(tail))
    folder = out / "classify" / name
    with (folder / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    reached = [float(r["seconds"]) for r in rows if float(r["val_accuracy"]) >= TARGET]
    return {
        "images_per_s": float(RATE.findall(done.stdout)[-1][0]),
        "gflops": float(RATE.findall(done.stdout)[-1][1]),
        "time_to_target": min(reached) if reached else None,
        "test_accuracy": json.loads((folder / "metrics.json").read_text())["test_accuracy"],
    }


def _median(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if len(known) < len(values):
        return f"not reached in {len(values) - len(known)} of {len(values)}"
    return f"{statistics.median(known):.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="training budget per run")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=2, help="threads in all, per run")
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    peak = matmul_peak()
    results: dict[int, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.repeats):
            for p in args.processes:  # the sides alternate, so a slow minute hits both
                r = run(p, args.threads, args.seconds, seed, args.batch_size, Path(tmp))
                results.setdefault(p, []).append(r)
                print(f"{p} process(es), seed {seed}: {r}", flush=True)
    lines = [
        "## scale",
        "",
        f"`benchmarks/scale.py`: `antlers train classify --data fashion-mnist --time "
        f"{args.seconds:g}` as one process and under torchrun (gloo), global batch "
        f"{args.batch_size}, {args.threads} threads in all; medians of {args.repeats} seeds.",
        "",
        f"- machine: {cpu_model()}; torch {torch.__version__}; float32; load average (1 min) at "
        f"the end: {os.getloadavg()[0]:.1f}; float32 matmul peak at {args.threads} threads, "
        f"measured in this run: {peak:.0f} GFLOP/s",
        "",
        "| processes | threads each | images/s | GFLOP/s | time to 91% on validation (s) "
        "| test accuracy |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for p, runs in results.items():
        lines.append(
            f"| {p} | {args.threads // p} | "
            f"{statistics.median(r['images_per_s'] for r in runs):.0f} | "
            f"{statistics.median(r['gflops'] for r in runs):.1f} | "
            f"{_median([r['time_to_target'] for r in runs])} | "
            f"{statistics.median(r['test_accuracy'] for r in runs):.4f} |"
        )
    one = statistics.median(r["images_per_s"] for r in results[args.processes[0]])
    lines.append("")
    for p in args.processes[1:]:
        many = statistics.median(r["images_per_s"] for r in results[p])
        lines.append(f"- images/s with {p} processes / with {args.processes[0]}: {many / one:.2f}x")
    print("\n".join(lines))
    if not args.no_record:
        record_section(lines)


if __name__ == "__main__":
    main()

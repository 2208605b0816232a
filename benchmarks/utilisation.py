"""Benchmark: how close each task's training comes to this machine's arithmetic limit, on the CPU.

    .venv/bin/python benchmarks/utilisation.py   # records the '## utilisation' section
    .venv/bin/python benchmarks/utilisation.py --no-record --seconds 1 --steps 5 --tasks classify

Per task (its model, data, batch and image size as ``antlers train <task>`` has them; classify on
Fashion-MNIST where installed, else on its default data) and precision (float32; bf16 autocast
where the CPU has native bf16): a fresh model seeded as ``fit`` seeds it, channels_last where the
config says, the task's optimizer at its schedule's learning rate 5% into training. A step is
``fit``'s: forward under the precision, the task's loss, zero_grad, backward, clipping and EMA
where the task has them, optimizer step; on the first ``BATCHES`` training batches of epoch 0,
taken once and cycled (loading is not timed). 3 warm-up steps, the first counted by
``FlopCounterMode`` (``antlers.engine.flops.counted``: matmuls and convolutions, forward and
backward); then at least ``--steps`` steps and ``--seconds`` s timed; images/s = batch / the
median step time. Share of the peak: GFLOP/s over the fastest 2048 x 2048 matmul in the same dtype
at the same thread count, measured in this run (``common.matmul_peak``).

OMP_WAIT_POLICY is PASSIVE unless set, as in benchmarks/generate.py (on a shared machine spinning
OpenMP threads waste the CPU); the section records it and the load average at the start.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see the module docstring

import argparse
import datetime
import statistics
import time
from itertools import islice
from typing import Any

import torch
from torch import nn

from antlers.config import TrainConfig
from antlers.engine.flops import counted
from antlers.engine.precision import autocast, cpu_has_bf16
from antlers.engine.schedule import learning_rate
from antlers.engine.training import build_optimizer, make_ema, to_device
from antlers.tasks import TASK_NAMES, default_config, get_task
from common import cpu_model, matmul_peak, publish

BATCHES = 8  # training batches taken once and cycled by the timed steps
WARMUP = 3
PRECISIONS: dict[str, torch.dtype | None] = {"float32": None, "bf16": torch.bfloat16}


def fashion_mnist_installed() -> bool:
    """Whether Fashion-MNIST's files are on disk (Debian's package, the cache or $ANTLERS_DATA)."""
    from antlers.data.fetch import DatasetNotFoundError
    from antlers.data.mnist import FASHION_MNIST, locate_idx

    try:
        for split in ("train", "test"):
            locate_idx(FASHION_MNIST, split, None, download=False)
    except (DatasetNotFoundError, OSError):
        return False
    return True


def task_config(name: str) -> TrainConfig:
    """``antlers train <name>``'s config on the CPU; classify on Fashion-MNIST when installed."""
    options: dict[str, Any] = {"device": "cpu", "out": "/tmp/util/runs"}
    if name == "classify" and fashion_mnist_installed():
        options["data"] = "fashion-mnist"
    return default_config(name, **options)


def train_batches(data: Any, config: TrainConfig) -> list[dict[str, Any]]:
    """The first ``BATCHES`` training batches of epoch 0, in the trainer's memory format."""
    first = islice(data.train.epoch(0, 0), BATCHES)
    cpu = torch.device("cpu")
    return [{k: to_device(v, cpu, config.channels_last) for k, v in b.items()} for b in first]


def measure(
    task: Any, config: TrainConfig, data: Any, batches: list, dtype: torch.dtype | None, args: Any
) -> dict[str, Any]:
    """Images/s (batch / median step time) and FLOP per image of training in ``dtype``."""
    torch.manual_seed(config.seed)  # the same initial weights for every precision
    model = task.build_model(data.model_config)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config.schedule, 0.05, config.peak_lr, config.warmup)
    parts = (task, model, optimizer, make_ema(model, config.ema), config.clip_grad, dtype)
    _, flops = step(parts, batches[0], count=True)  # the first warm-up step
    for i in range(1, WARMUP):
        step(parts, batches[i % len(batches)])
    times: list[float] = []
    while len(times) < args.steps or sum(times) < args.seconds:
        start = time.perf_counter()
        loss, _ = step(parts, batches[(WARMUP + len(times)) % len(batches)])
        times.append(time.perf_counter() - start)
    images = len(batches[0]["image"])
    return {
        "images_per_s": images / statistics.median(times),
        "flop_per_image": flops / images,
        "steps": len(times),
        "finite": bool(torch.isfinite(loss)),
    }


def step(parts: tuple, batch: dict, count: bool = False) -> tuple[torch.Tensor, int]:
    """One training step as ``fit`` runs it; the loss (read, as the trainer reads it) and, with
    ``count``, the FLOPs of its forward and backward pass (else 0)."""
    task, model, optimizer, ema, clip, dtype = parts

    def forward_backward() -> torch.Tensor:
        with autocast(torch.device("cpu"), dtype):
            loss = task.loss(model, batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return loss.detach()

    loss, flops = counted(forward_backward) if count else (forward_backward(), 0)
    if clip:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    if ema is not None:
        ema.update_parameters(model)
    loss.item()
    return loss, flops


def task_rows(name: str, precisions: list[str], args: Any) -> list[dict[str, Any]]:
    """One row per precision for task ``name``: its figures and what it trained on."""
    config = task_config(name)
    task = get_task(name).configure(config)
    data = task.load_data(config)
    batches = train_batches(data, config)
    image = batches[0]["image"]
    shape = f"{len(image)} x {'x'.join(map(str, image.shape[1:]))}"
    about = {"task": name, "model": data.model_config.model, "data": config.data, "shape": shape}
    rows = []
    for precision in precisions:
        result = measure(task, config, data, batches, PRECISIONS[precision], args)
        rows.append({**about, "precision": precision, **result})
        print(f"{name} {precision}: {result}", flush=True)
    return rows


def table(rows: list[dict[str, Any]], peaks: dict[str, float]) -> list[str]:
    """The markdown table and one line per task naming its faster precision."""
    lines = [
        "| task | model | batch x input | precision | images/s | MFLOP per image | GFLOP/s | "
        "share of the peak | vs float32 |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    base = {r["task"]: r["images_per_s"] for r in rows if r["precision"] == "float32"}
    for r in rows:
        rate = r["images_per_s"]
        gflops = rate * r["flop_per_image"] / 1e9
        lines.append(
            f"| {r['task']} | {r['model']} | {r['shape']} | {r['precision']} | "
            f"{rate:.{0 if rate >= 100 else 1}f} | {r['flop_per_image'] / 1e6:.1f} | "
            f"{gflops:.1f} | {gflops / peaks[r['precision']]:.1%} | {rate / base[r['task']]:.2f}x |"
        )
    lines.append("")
    for name in dict.fromkeys(r["task"] for r in rows):
        bf16 = (r for r in rows if r["task"] == name and r["precision"] == "bf16")
        ratio = next((r["images_per_s"] / base[name] for r in bf16), None)
        fastest = "float32" + (f" (bf16 at {ratio:.2f}x)" if ratio else " (bf16 not measured)")
        if ratio and ratio > 1:
            fastest = f"bf16 ({ratio:.2f}x)"
        lines.append(f"- {name}: fastest precision here: {fastest}")
    lines += [
        f"- {r['task']}, {r['precision']}: the loss was not finite at the end of the timed steps"
        for r in rows
        if not r["finite"]
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0, help="least timed seconds per row")
    parser.add_argument("--steps", type=int, default=20, help="least timed steps per row")
    parser.add_argument("--tasks", default=",".join(TASK_NAMES), help="comma-separated")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    if unknown := [n for n in names if n not in TASK_NAMES]:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASK_NAMES)}")
    torch.set_num_threads(args.threads)
    load, bf16 = os.getloadavg()[0], cpu_has_bf16()
    precisions = ["float32", "bf16"] if bf16 else ["float32"]
    peaks = {p: matmul_peak(PRECISIONS[p] or torch.float32) for p in precisions}
    for precision, peak in peaks.items():
        print(f"{precision} matmul peak: {peak:.1f} GFLOP/s", flush=True)
    rows = [row for name in names for row in task_rows(name, precisions, args)]
    publish(
        heading(args, names, rows, peaks, load, bf16) + table(rows, peaks) + [""],
        record=not args.no_record,
    )


def heading(
    args: Any, names: list[str], rows: list, peaks: dict[str, float], load: float, bf16: bool
) -> list[str]:
    """The section's heading, protocol, machine and peak lines."""
    data = ", ".join(dict.fromkeys(f"{r['task']} on {r['data']}" for r in rows))
    lines = [
        "## utilisation",
        "",
        f"`benchmarks/utilisation.py --threads {args.threads} --seconds {args.seconds:g} "
        f"--steps {args.steps} --tasks {','.join(names)}`: each task's default model, data, "
        f"batch and image size as `antlers train <task>` ({data}); a fresh model per precision, "
        f"the first {BATCHES} training batches cycled, {WARMUP} warm-up steps (the first counted "
        "by FlopCounterMode: matmuls and convolutions, forward and backward), then at least "
        f"{args.steps} steps and {args.seconds:g} s timed; images/s = batch / the median step "
        "time; share of the peak = GFLOP/s / the matmul peak of the same dtype.",
        "",
        f"- machine: {cpu_model()}; native bf16 (AVX512-BF16 or AMX): {'yes' if bf16 else 'no'}; "
        f"threads: {args.threads}; torch {torch.__version__}; date: {datetime.date.today()}; "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; 1-min load average at the start "
        f"{load:.1f}",
        *(
            f"- {precision} matmul peak (2048 x 2048, the fastest of 10): {peak:.1f} GFLOP/s"
            for precision, peak in peaks.items()
        ),
    ]
    if not bf16:
        lines.append("- no native bf16 on this CPU: bf16 autocast not measured")
    if "classify on fashion-mnist" not in data and "classify" in names:
        lines.append("- Fashion-MNIST is not installed: classify ran on its default data")
    return [*lines, ""]


if __name__ == "__main__":
    main()

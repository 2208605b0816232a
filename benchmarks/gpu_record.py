"""Benchmark: issue 26's GPU record, on one GPU, in one invocation (the device's time is short).

    python benchmarks/gpu_record.py --data-dir DIR        # prints the '## gpu record' section
    python benchmarks/gpu_record.py --device cpu --data-dir DIR --budgets 2 4 --seeds 2 \
        --segment-budget 3 --candidates 256:fp32 512:fp32        # a smoke run of the script

DIR holds Fashion-MNIST's four IDX files; segmentation uses the built-in scenes. Steps:

1. The GPU's own limit: the fastest of ten 8192 x 8192 matmuls in bf16 and in TF32.
2. For each classification budget, the recipe: each ``--candidates`` batch size and precision
   (the learning rate scaled as the square root of the batch from 0.3 at 256) trained once
   with seed 0; the best validation accuracy chooses (the test split is not looked at).
3. Classification: the chosen recipe, ``--seeds`` runs per budget; the median test accuracy of
   the epoch chosen on validation. Segmentation: the default U-Net, ``--seeds`` runs of
   ``--segment-budget`` s; the median test mIoU.

Images/s and GFLOP/s are each run's own (``FitResult``, its summary line's): training time only,
so loading and evaluation are not in them and a run's first steps (warm-up, cuDNN's tuning)
are; the share of each peak is GFLOP/s over it. Targets (issue 26): Fashion-MNIST 0.940 within 5 s
and 0.950 within 20 s, the U-Net's mIoU 0.90 within 20 s, medians over 5 seeds.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from typing import Any

import torch

from common import matmul_peak

TARGETS = {("classify", 5.0): 0.94, ("classify", 20.0): 0.95, ("segment", 20.0): 0.90}
METRIC = {"classify": "test_accuracy", "segment": "test_miou"}


def peak(dtype: str, device: str, n: int = 8192, repeats: int = 10) -> float:
    """GFLOP/s of the fastest of ``repeats`` n x n matmuls in ``dtype`` (bf16 or tf32)."""
    if device != "cuda":  # smoke run: the CPU's float32 and bf16 peaks
        return matmul_peak(torch.bfloat16 if dtype == "bf16" else None, n=1024)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    kind = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = (torch.randn(n, n, device="cuda", dtype=kind) for _ in range(2))
    a @ b  # warm-up: cuBLAS picks its kernel
    best = float("inf")
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    torch.backends.cuda.matmul.allow_tf32 = previous  # the training runs keep their default
    return 2 * n**3 / best / 1e9


def train_once(task: str, budget: float, seed: int, args: Any, **fields: Any) -> dict[str, Any]:
    """One ``fit`` run: its best validation score, test metric, images/s and GFLOP/s."""
    from antlers.engine.fit import fit
    from antlers.tasks import default_config, get_task

    options: dict[str, Any] = {"time": budget, "seed": seed, "device": args.device, **fields}
    if task == "classify":
        options |= {"data": "fashion-mnist", "data_dir": args.data_dir}
    with tempfile.TemporaryDirectory() as out:
        config = default_config(task, out=out, **options)
        result = fit(get_task(task), config, log=lambda *_, **__: None)
    key = "val_" + METRIC[task].removeprefix("test_")
    row = {
        "task": task,
        "budget": budget,
        "seed": seed,
        "val": max((h.get(key, float("nan")) for h in result.history), default=float("nan")),
        "metric": result.test.get(METRIC[task], float("nan")),
        "images_per_s": result.images_per_s,
        "gflops": result.gflop_per_s or float("nan"),
        **fields,
    }
    print(f"  {row}", flush=True)
    return row


def candidate(text: str) -> dict[str, Any]:
    """'1024:amp' -> the batch size, its learning rate and the precision of one recipe."""
    batch, precision = text.split(":")
    if precision not in ("fp32", "amp"):
        raise ValueError(f"precision {precision!r} in {text!r}; allowed: fp32, amp")
    b = int(batch)
    return {"batch_size": b, "lr": round(0.3 * (b / 256) ** 0.5, 4), "amp": precision == "amp"}


def choose(budget: float, args: Any) -> dict[str, Any]:
    """The candidate recipe with the best validation accuracy after ``budget`` s, seed 0."""
    rows = [train_once("classify", budget, 0, args, **candidate(c)) for c in args.candidates]
    best = max(rows, key=lambda r: r["val"])
    return {k: best[k] for k in ("batch_size", "lr", "amp")}


def table_row(rows: list[dict[str, Any]], peaks: dict[str, float]) -> str:
    """One budget's runs as a row: the recipe, medians, each seed's metric and the verdict."""
    first, median = rows[0], statistics.median(r["metric"] for r in rows)
    flops = statistics.median(r["gflops"] for r in rows)
    recipe = "default"
    if "batch_size" in first:
        recipe = f"batch {first['batch_size']}, lr {first['lr']}, "
        recipe += "amp" if first["amp"] else "fp32"
    target = TARGETS.get((first["task"], first["budget"]))
    verdict = "-"
    if target is not None:
        verdict = f">= {target}: " + ("met" if median >= target else "MISSED")
    each = ", ".join(format(r["metric"], ".4f") for r in rows)
    return (
        f"| {first['task']} | {first['budget']:g} | {recipe} | "
        f"{statistics.median(r['images_per_s'] for r in rows):.0f} | {flops:.0f} | "
        f"{flops / peaks['bf16']:.1%} / {flops / peaks['tf32']:.1%} | "
        f"{each} | **{median:.4f}** | {verdict} |"
    )


TABLE_HEAD = [
    "| task | budget (s) | recipe | images/s | GFLOP/s | share of bf16 / TF32 peak "
    "| metric of each seed | median | target |",
    "|---|---:|---|---:|---:|---|---|---:|---|",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with Fashion-MNIST's IDX files")
    parser.add_argument("--device", default="cuda", help="cpu: a smoke run of the script itself")
    parser.add_argument("--budgets", type=float, nargs="+", default=[5.0, 20.0])
    parser.add_argument("--segment-budget", type=float, default=20.0)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--candidates", nargs="+", default=["256:fp32", "1024:fp32", "1024:amp", "2048:amp"]
    )
    args = parser.parse_args()
    for c in args.candidates:
        candidate(c)  # a bad candidate fails here, before the GPU's time is spent
    start = time.perf_counter()
    peaks = {d: peak(d, args.device) for d in ("bf16", "tf32")}
    groups, seeds = [], range(args.seeds)
    for budget in args.budgets:
        recipe = choose(budget, args)
        groups.append([train_once("classify", budget, s, args, **recipe) for s in seeds])
    groups.append([train_once("segment", args.segment_budget, s, args) for s in seeds])
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (smoke run)"
    print("\n".join([
        "## gpu record",
        "",
        f"- machine: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}; "
        f"date: {datetime.date.today()}; the whole script {time.perf_counter() - start:.0f} s",
        f"- matmul peak (8192 x 8192, the fastest of 10): bf16 {peaks['bf16']:.0f} GFLOP/s, "
        f"TF32 {peaks['tf32']:.0f} GFLOP/s",
        "",
        *TABLE_HEAD,
        *(table_row(rows, peaks) for rows in groups),
    ]))  # fmt: skip


if __name__ == "__main__":
    main()

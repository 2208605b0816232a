"""Benchmark: the CUDA path, one GPU. Each task's default model trained by ``fit`` for a fixed
wall time in fp32, with AMP, and with AMP + channels_last (classification also with
``torch.compile``), each ``--repeats`` times with seeds 0, 1, ...; the median images per second
of training and the median test metric of the model chosen on the validation split, the ratio
to fp32 printed. Before timing, a numerical check: the same weights and batch on CPU (float32)
and on CUDA (float32, then autocast) give the same outputs and gradients within a relative
error.

    python benchmarks/cuda.py --data-dir DIR     # records the '## cuda' section (needs a GPU)
    python benchmarks/cuda.py --no-record --seconds 10 --tasks classify --repeats 1

DIR holds Fashion-MNIST's four IDX files (classification and generation); segmentation uses the
built-in scenes. Training time excludes data loading and evaluation, as the engine counts it;
with ``torch.compile`` it includes the compilation.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from typing import Any

import torch

from common import record_section

TASKS = ("classify", "segment", "generate")
MODES = {  # name -> TrainConfig fields
    "fp32": {"amp": False, "channels_last": False},
    "amp": {"amp": True, "channels_last": False},
    "amp+cl": {"amp": True, "channels_last": True},
    "amp+cl+compile": {"amp": True, "channels_last": True, "compile": True},
}
METRIC = {"classify": "test_accuracy", "segment": "test_miou", "generate": "test_loss"}
_DATA: dict[str, Any] = {}


def _task(name: str) -> Any:
    """The task, with its data loaded once and reused by every mode (same seed, same data)."""
    from antlers.tasks import get_task

    base = get_task(name)

    class Cached(type(base)):
        def load_data(self, config, rank=0, world_size=1):
            if name not in _DATA:
                _DATA[name] = type(base).load_data(self, config, rank, world_size)
            return _DATA[name]

    return Cached()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in float64."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _forward(name: str, model: torch.nn.Module, batch: dict, device: str) -> torch.Tensor:
    images = batch["image"].to(device)
    if name != "generate":
        return model(images).float()
    g = torch.Generator().manual_seed(0)  # t drawn on the CPU: the same on both devices
    t = torch.randint(0, 1000, (len(images),), generator=g).to(device)
    return model(images * 2 - 1, t, batch["label"].to(device)).float()


def check(name: str, config: Any, device: str) -> dict[str, float]:
    """Relative error of ``device``'s fp32 and autocast against CPU fp32: outputs and gradients."""
    task = _task(name)
    data = task.load_data(config)
    batch = next(iter(data.train.epoch(0)))
    torch.manual_seed(0)
    cpu = task.build_model(data.model_config).eval()  # eval: no dropout, fixed BN statistics
    with torch.no_grad():  # zero-initialised layers (a diffusion U-Net's output) would hide
        for p in cpu.parameters():  # every gradient behind them: give them small values
            if not p.any():
                p.normal_(0, 0.02)
    out: dict[str, float] = {}
    ref = _forward(name, cpu, batch, "cpu")
    ref.square().mean().backward()
    ref_grads = [p.grad.clone() for p in cpu.parameters() if p.grad is not None]
    for mode, amp in (("fp32", False), ("amp", True)):
        gpu = task.build_model(data.model_config).eval().to(device)
        gpu.load_state_dict(cpu.state_dict())
        bf16 = device == "cpu" or torch.cuda.is_bf16_supported()
        dtype = torch.bfloat16 if bf16 else torch.float16
        with torch.autocast(device, dtype=dtype, enabled=amp):
            y = _forward(name, gpu, batch, device)
        y.square().mean().backward()
        grads = [p.grad for p in gpu.parameters() if p.grad is not None]
        out[f"{mode}_out"] = _rel(y, ref)
        out[f"{mode}_grad"] = max(_rel(g, r) for g, r in zip(grads, ref_grads, strict=True))
    return out


def run(
    name: str, mode: str, seconds: float, seed: int, out: str, args: argparse.Namespace
) -> dict:
    """One training run; its images/s and the test metric of the validation-chosen epoch."""
    from antlers.engine.fit import fit
    from antlers.tasks import default_config

    if "compile" in mode:
        seconds *= 3  # compilation counts as training time
    options: dict[str, Any] = {"time": seconds, "out": out, "device": args.device, "seed": seed}
    if name != "segment":
        options |= {"data": "fashion-mnist", "data_dir": args.data_dir}
    config = default_config(name, **options, **MODES[mode])
    task = _task(name)
    result = fit(task, config, log=lambda *_: None)
    first, last = result.history[0], result.history[-1]
    steady = None  # after the first epoch: no compilation, cuDNN autotuning or warm-up
    if last["seconds"] > first["seconds"]:
        steady = (last["step"] - first["step"]) / (last["seconds"] - first["seconds"])
    row = {
        "task": name,
        "mode": mode,
        "model": _DATA[name].model_config.model,
        "steps": last["step"],
        "seconds": last["seconds"],
        "images_per_s": last["step"] * config.batch_size / last["seconds"],
        "steady_per_s": steady * config.batch_size if steady else float("nan"),
        "metric": result.test.get(METRIC[name], float("nan")),
        "seed": seed,
    }
    print(
        f"{name:9s} {mode:15s} seed {seed} {row['images_per_s']:9.0f} img/s "
        f"({row['steady_per_s']:.0f} after epoch 1), {row['steps']} steps, "
        f"{METRIC[name]} {row['metric']:.4f}",
        flush=True,
    )
    return row


def median_rows(rows: list[dict]) -> list[dict]:
    """One row per (task, mode): the median of each figure over the seeds, in run order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["mode"]), []).append(r)
    medians = []
    for (name, mode), group in groups.items():
        row = {"task": name, "mode": mode, "model": group[0]["model"], "runs": len(group)}
        for key in ("steps", "seconds", "images_per_s", "steady_per_s", "metric"):
            row[key] = statistics.median(r[key] for r in group)
        medians.append(row)
    return medians


def _section(rows: list[dict], checks: dict, seconds: float) -> list[str]:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU (smoke run)"
    lines = [
        "## cuda",
        "",
        "`benchmarks/cuda.py`: each task's default recipe trained by `fit` for "
        f"{seconds:.0f} s of training time on one GPU, fp32 against AMP and AMP + channels_last;",
        "`torch.compile` gets three times that (compilation counts as training time). Each row",
        f"is the median of {rows[0]['runs'] if rows else 0} runs (seeds 0, 1, ...). The ratio "
        "compares images/s after the first",
        "epoch where there is one (compilation and warm-up excluded); the metric is the test",
        "split's, scored once with the epoch chosen on the validation split (classification:",
        "Fashion-MNIST test accuracy; segmentation: scenes mIoU; generation: the noise loss,",
        "lower is better).",
        "",
        f"- machine: {gpu}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"bf16 autocast: {torch.cuda.is_available() and torch.cuda.is_bf16_supported()}; "
        f"date: {datetime.date.today()}",
        "",
        "| task | model | mode | seconds | images/s | after epoch 1 | vs fp32 | steps | metric |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    fp32 = {r["task"]: r for r in rows if r["mode"] == "fp32"}
    for r in rows:
        key = "steady_per_s" if r["steady_per_s"] == r["steady_per_s"] else "images_per_s"
        base = fp32[r["task"]][key] if r["task"] in fp32 else float("nan")
        lines.append(
            f"| {r['task']} | {r['model']} | {r['mode']} | {r['seconds']:.0f} | "
            f"{r['images_per_s']:.0f} | {r['steady_per_s']:.0f} | {r[key] / base:.2f}x | "
            f"{r['steps']:.0f} | {r['metric']:.4f} |"
        )
    lines += [
        "",
        "Agreement with the CPU (float32) on one training batch, the same weights: relative",
        "error ||cuda - cpu|| / ||cpu|| of the outputs and the largest over parameter gradients.",
        "",
        "| task | fp32 output | fp32 gradients | AMP output | AMP gradients |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, c in checks.items():
        lines.append(
            f"| {name} | {c['fp32_out']:.1e} | {c['fp32_grad']:.1e} | {c['amp_out']:.1e} | "
            f"{c['amp_grad']:.1e} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    parser.add_argument("--data-dir", default=None, help="folder with Fashion-MNIST's IDX files")
    parser.add_argument("--device", default="cuda", help="cpu: a smoke run of the script itself")
    parser.add_argument("--repeats", type=int, default=3, help="runs per row (seeds 0, 1, ...)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--json-out", default=None, help="append each run's row to this file")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU", file=sys.stderr)
        return 1
    from antlers.tasks import default_config

    rows, checks = [], {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        for name in args.tasks:
            options = {} if name == "segment" else {"data": "fashion-mnist"}
            config = default_config(name, data_dir=args.data_dir, **options)
            checks[name] = check(name, config, args.device)
            print(name, {k: f"{v:.1e}" for k, v in checks[name].items()}, flush=True)
            modes = [m for m in args.modes if name == "classify" or "compile" not in m]
            for seed in range(args.repeats):
                for mode in modes:
                    rows.append(run(name, mode, args.seconds, seed, out, args))
                    if args.json_out:
                        with open(args.json_out, "a") as f:
                            f.write(json.dumps(rows[-1]) + "\n")
    section = _section(median_rows(rows), checks, args.seconds)
    print("\n".join(section))
    print(f"total {time.perf_counter() - start:.0f} s")
    if not args.no_record:
        record_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

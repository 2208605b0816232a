"""Benchmark: each task's exported ONNX file in onnxruntime against PyTorch eager, on 2 threads.

    .venv/bin/python benchmarks/export.py              # records the '## export' section
    .venv/bin/python benchmarks/export.py --no-record

Speed: each task's default model at its default input size, initialised with seed 0 (weights do
not change the time): batch-1 latency (p50, p95) and batch-64 throughput, onnxruntime (the
graph ``antlers export`` writes, 2 intra-op threads) against the same PyTorch call in eager mode
(``task.logits``, ``task.detections``, the denoiser; 2 threads; flip averaging on for classify
and segment, as their default recipes train with flips). The detector's graph takes one image:
its batch of 64 is 64 calls, eager's one call. Parity: a quickly trained small run per task,
scored on its test split by PyTorch and by onnxruntime (``OnnxModel`` in the model's place);
for generate, DDIM samples with the same seed. Goal: onnxruntime >= 1.5x eager's batch-1
throughput for classify and segment.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from common import cpu_model, record_section

THREADS = 2
TASKS = ("classify", "segment", "detect", "generate")


def default_run(task_name: str, folder: Path) -> Any:
    """What ``export_onnx`` needs of a run, for the task's default model, random weights."""
    from antlers.tasks import get_task
    from antlers.tasks.classify.models import ClassifyConfig
    from antlers.tasks.detect.model import DetectConfig, DetectorConfig
    from antlers.tasks.generate.task import GenerateConfig
    from antlers.tasks.segment.models import SegmentConfig

    classes = tuple(str(i) for i in range(10))
    gray = {"in_channels": 1, "image_size": (28, 28), "classes": classes, "data": "fashion-mnist"}
    rgb = {"in_channels": 3, "mean": (0.5,) * 3, "std": (0.25,) * 3, "data": "scenes"}
    configs = {
        "classify": ClassifyConfig(
            task="classify", model="fast_resnet", **gray, mean=(0.29,), std=(0.35,), tta_flip=True
        ),
        "segment": SegmentConfig(
            task="segment",
            model="unet",
            image_size=(64, 64),
            classes=classes[:8],
            **rgb,
            tta_flip=True,
        ),
        "detect": DetectConfig(
            task="detect",
            model="two_stage",
            image_size=(128, 128),
            classes=classes,
            **rgb,
            detector=DetectorConfig(num_classes=10),
        ),
        "generate": GenerateConfig(task="generate", model="unet", **gray),
    }
    task = get_task(task_name)
    torch.manual_seed(0)
    model = task.build_model(configs[task_name]).eval()
    weights = folder / f"{task_name}.safetensors"  # never written: names the export's file
    return SimpleNamespace(
        task=task,
        model=model,
        model_config=configs[task_name],
        weights_path=weights,
        classes=list(classes),
    )


def calls(run: Any, session: Any, batch: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(eager, onnxruntime) callables for one batch of ``batch`` inputs."""
    config, task, model = run.model_config, run.task, run.model
    x = torch.rand(batch, config.in_channels, *config.image_size)
    if task.name == "generate":
        inputs = {"images": x * 2 - 1, "timesteps": torch.arange(batch) % 1000}
        inputs["labels"] = torch.arange(batch) % 10
        eager = lambda: model(inputs["images"], inputs["timesteps"], inputs["labels"])  # noqa: E731
    elif task.name == "detect":
        inputs = {"images": x}
        eager = lambda: task.detections(model, x)  # noqa: E731
    else:
        inputs = {"images": x}
        eager = lambda: task.logits(model, x)  # noqa: E731
    feed = {k: v.numpy() for k, v in inputs.items()}
    if task.name == "detect":  # the graph takes one image at a time
        singles = [{"images": feed["images"][i : i + 1]} for i in range(batch)]
        return eager, lambda: [session.run(None, f) for f in singles]
    return eager, lambda: session.run(None, feed)


@torch.no_grad()
def latency(call: Callable[[], Any], budget: float = 2.0) -> tuple[float, float]:
    """(p50, p95) in milliseconds over at least 20 calls and about ``budget`` seconds."""
    for _ in range(5):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 20 or (time.perf_counter() - start < budget and len(times) < 500):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    cuts = statistics.quantiles(times, n=20)
    return statistics.median(times), cuts[18]


@torch.no_grad()
def throughput(call: Callable[[], Any], batch: int, repeats: int = 3) -> float:
    """Images per second: the best of ``repeats`` calls on a batch, after one warm-up call."""
    call()
    best = min(_timed(call) for _ in range(repeats))
    return batch / best


def _timed(call: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def speed(task_name: str, folder: Path) -> dict[str, Any]:
    import onnxruntime

    from antlers.export import export_onnx

    run = default_run(task_name, folder)
    exported = export_onnx(run, folder / f"{task_name}.onnx")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    session = onnxruntime.InferenceSession(
        str(exported.path), options, providers=["CPUExecutionProvider"]
    )
    eager1, ort1 = calls(run, session, 1)
    eager64, ort64 = calls(run, session, 64)
    row = {"task": task_name, "model": run.model_config.model, "exporter": exported.exporter}
    row["eager_p50"], row["eager_p95"] = latency(eager1)
    row["ort_p50"], row["ort_p95"] = latency(ort1)
    row["eager_64"], row["ort_64"] = throughput(eager64, 64), throughput(ort64, 64)
    print(row, file=sys.stderr)
    return row


def trained_parity(task_name: str, folder: Path) -> str:
    """A small run trained for seconds, its test-split score by PyTorch and by onnxruntime."""
    import antlers
    from antlers.export import OnnxRun, export_onnx

    options = {
        "classify": {"data": "fashion-mnist", "time": 20},
        "segment": {"time": 20},
        "detect": {"time": 30},
        "generate": {"data": "digits", "model": "unet_tiny", "epochs": 1},
    }[task_name]
    run = antlers.train(task_name, out=str(folder / "runs"), name=task_name, **options)
    onnx_run = OnnxRun(export_onnx(run, folder / f"{task_name}-trained.onnx").path, THREADS)
    if task_name == "generate":
        ours = onnx_run.sample(16, steps=20, seed=0)
        theirs = run.sample(16, steps=20, seed=0)
        diff = (ours - theirs).abs().max().item()
        return f"| generate | 16 DDIM samples (20 steps, seed 0) | max pixel diff {diff:.1e} | |"
    metric = {"classify": "accuracy", "segment": "miou", "detect": "ap"}[task_name]
    loader = run.task.eval_loader(run.model_config, run.model_config.data, "test")
    with torch.no_grad():
        theirs = run.task.evaluate(run.model, loader)[metric]
        ours = run.task.evaluate(onnx_run.model, loader)[metric]
    gap = abs(ours - theirs) * 100
    verdict = "met" if gap <= 0.1 else "missed"
    return f"| {task_name} | {metric} {theirs:.4f} | {ours:.4f} | {gap:.3f} points: {verdict} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [speed(t, Path(tmp)) for t in TASKS]
        parity = [trained_parity(t, Path(tmp)) for t in TASKS]
    load_end = os.getloadavg()[0]
    import onnxruntime

    lines = []
    for r in rows:
        ratio = r["eager_p50"] / r["ort_p50"]
        lines.append(
            f"| {r['task']} | {r['model']} | {r['exporter']} | {r['eager_p50']:.2f} / "
            f"{r['eager_p95']:.2f} | {r['ort_p50']:.2f} / {r['ort_p95']:.2f} | {ratio:.2f}x | "
            f"{r['eager_64']:.0f} | {r['ort_64']:.0f} | {r['ort_64'] / r['eager_64']:.2f}x |"
        )
    goal = {r["task"]: r["eager_p50"] / r["ort_p50"] for r in rows}
    met = all(goal[t] >= 1.5 for t in ("classify", "segment"))
    section = [
        "## export",
        "",
        f"- machine: {cpu_model()}; threads: {THREADS} (torch intra-op, onnxruntime intra-op); "
        f"precision: float32; torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}; OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}; date: {datetime.date.today()}",
        f"- load average (1 min) at the start / end: {load:.2f} / {load_end:.2f} (other work "
        "on the 2 shared cores skews the times)",
        "",
        "| task | model | exporter | eager batch 1 p50 / p95 (ms) | onnxruntime batch 1 p50 / "
        "p95 (ms) | batch-1 speed-up | eager batch 64 (img/s) | onnxruntime batch 64 (img/s) "
        "| batch-64 speed-up |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
        *lines,
        "",
        "| task | PyTorch on the test split | onnxruntime | difference |",
        "|---|---|---|---|",
        *parity,
        "",
        f"- goal, onnxruntime >= 1.5x eager at batch 1 for classify and segment: classify "
        f"{goal['classify']:.2f}x, segment {goal['segment']:.2f}x: {'met' if met else 'missed'}",
    ]
    print("\n".join(section))
    if not args.no_record:
        record_section(section)
        print("recorded in docs/benchmarks.md", file=sys.stderr)


if __name__ == "__main__":
    main()

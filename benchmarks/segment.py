"""Benchmark: U-Net and SegNet against torchvision's LR-ASPP on the built-in street scenes,
mIoU on the scenes' test split after 300 s of training (and other budgets on request), CPU, in
one invocation, the median of three seeds per model and budget.

    .venv/bin/python benchmarks/segment.py                 # records the '## segment' section
    .venv/bin/python benchmarks/segment.py --no-record --budgets 30 --models unet --repeats 1

Every run is ``fit`` through the segment task with the task's defaults (AdamW, one-cycle schedule
planned for the budget, flips) and ``--time T``: ``--repeats`` runs (seeds 0, 1, ...) per model and
budget, the schedule planned for that budget. The baseline is ``torchvision.models.segmentation.
lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)`` (registered in the task as model
``lraspp``), trained by the same loop for the same wall time. The score is the mIoU (pooled over
the test pixels) of the epoch chosen on the validation split (carved from the training scenes),
scored once on the test split; a row is the median over the seeds, and its per-class IoU that of
the median run. Training time excludes data generation and evaluation.

Precision: each model trains in the one that is faster for it on this machine, as every run
chooses by default (engine/precision.py): on the AVX512-BF16 host bf16 autocast made a U-Net
step faster, a SegNet step about as fast and an LR-ASPP step slower
(docs/experiments/cpu-precision.md). The section records what each model ran in.

OpenMP's wait policy is left as ``antlers train`` leaves it (unset: libgomp's threads spin a
little before they sleep) unless OMP_WAIT_POLICY is set, and the section records which. On an
idle machine the default makes a U-Net step faster than OMP_WAIT_POLICY=PASSIVE; with another
process busy on one of the two cores it is the other way round, and one thread is faster still
(docs/experiments/openmp-threads.md). So record on an idle machine (the load average before
each run is in the section; a warning is printed when the machine is busy) and run with
OMP_WAIT_POLICY=PASSIVE, or --threads 1, on a shared one.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import statistics
import sys
import tempfile
import time

import torch

from common import cpu_model, record_section, warn_if_busy

BUDGETS = (300,)
MODELS = ("unet", "segnet", "lraspp")
TARGET = 0.90
_CACHE: dict = {}


def _task():
    """The segment task, with the generated scenes kept between runs (same seed, same data)."""
    from antlers.tasks.segment.task import SegmentTask

    class CachedTask(SegmentTask):
        def load_data(self, config, rank=0, world_size=1):
            key = (config.image_size, config.seed)
            if key not in _CACHE:
                _CACHE[key] = SegmentTask.load_data(self, config, rank, world_size)
            data = _CACHE[key]
            model = config.model or self.default_model
            data.model_config = dataclasses.replace(data.model_config, model=model)
            return data

    return CachedTask()


def run(model: str, budget: float, seed: int, out: str, image_size: int | None) -> dict:
    """One run: the test mIoU of the epoch chosen on validation, and each class's IoU."""
    from antlers.config import load_run_config
    from antlers.engine.fit import fit
    from antlers.tasks import default_config
    from antlers.tasks.segment.loader import SegmentLoader

    load = os.getloadavg()[0]
    config = default_config(
        "segment",
        model=model,
        time=budget,
        out=out,
        image_size=image_size,
        seed=seed,
    )
    start = time.perf_counter()
    task = _task()
    result = fit(task, config, log=lambda *_: None)
    last = result.history[-1]
    test = _CACHE[(config.image_size, seed)].test_set  # the chosen model, each class's IoU
    per_class = SegmentLoader(test.images, test.masks, 100, per_class=True)
    scores = task.evaluate(result.model, per_class)
    row = {
        "model": model,
        "budget": budget,
        "seed": seed,
        "miou": result.test["test_miou"],
        "pixel_accuracy": result.test["test_pixel_accuracy"],
        "epochs": last["epoch"],
        "steps": last["step"],
        "seconds": last["seconds"],
        "wall": time.perf_counter() - start,
        "load": load,
        "precision": "bf16" if load_run_config(result.run_dir).cpu_amp else "float32",
        "iou": {k[4:]: v for k, v in scores.items() if k.startswith("iou_")},
    }
    print(
        f"{model:7s} {budget:4.0f} s seed {seed}: test mIoU {row['miou']:.4f}, pixel accuracy "
        f"{row['pixel_accuracy']:.4f}, {row['steps']} steps, {row['precision']}, "
        f"load {load:.1f}",
        flush=True,
    )
    return row


def median_runs(rows: list[dict]) -> dict[tuple[str, float], dict]:
    """Per (model, budget): the median mIoU and steps over the seeds, with the per-class IoU of
    the run whose mIoU is the median (the lower middle one for an even count)."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["budget"]), []).append(r)
    out = {}
    for key, group in groups.items():
        middle = sorted(group, key=lambda r: r["miou"])[(len(group) - 1) // 2]
        out[key] = {
            **middle,
            "miou": statistics.median(r["miou"] for r in group),
            "steps": int(statistics.median(r["steps"] for r in group)),
            "runs": sorted(r["miou"] for r in group),
        }
    return out


def _section(rows: list[dict], threads: int, image_size: int) -> list[str]:
    loads = [r["load"] for r in rows]
    by = median_runs(rows)
    repeats = max(len(r["runs"]) for r in by.values())
    budgets = sorted({r["budget"] for r in rows})
    models = [m for m in MODELS if any(r["model"] == m for r in rows)]
    lines = [
        "## segment",
        "",
        "`benchmarks/segment.py`: the built-in `scenes` (4000 training and 500 test street",
        f"scenes, {image_size}x{image_size}, 8 classes), test mIoU (pooled over the test pixels)",
        "of the epoch chosen on the validation split, the median of "
        f"{repeats} seeds per model and budget",
        "(each schedule planned for its budget); training time only (data generation and",
        "evaluation excluded). The models",
        f"are the defaults: {_default_names()}.",
        "",
        f"- machine: {cpu_model()}, 2 cores shared with other jobs (see the load average);",
        f"  threads: {threads}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
        f"torch {torch.__version__}; "
        f"date: {datetime.date.today()}",
        f"- load average (1 min) before each run: {', '.join(f'{v:.1f}' for v in loads)}",
        "",
        "| model | precision | "
        + " | ".join(f"mIoU at {b:.0f} s" for b in budgets)
        + " | steps at the last | runs at the last |",
        "|---|---|" + "---:|" * (len(budgets) + 1) + "---|",
    ]
    for m in models:
        cells = [f"{by[(m, b)]['miou']:.4f}" if (m, b) in by else "-" for b in budgets]
        last_row = by.get((m, budgets[-1]), {})
        precision = next(r["precision"] for r in rows if r["model"] == m)
        lines.append(
            f"| {m} | {precision} | "
            + " | ".join(cells)
            + f" | {last_row.get('steps', '-')} | "
            + ", ".join(f"{v:.4f}" for v in last_row.get("runs", []))
            + " |"
        )
    last = budgets[-1]
    finals = [by[(m, last)] for m in models if (m, last) in by]
    if finals:
        classes = list(finals[0]["iou"])
        lines += ["", f"Per-class IoU at {last:.0f} s (the median run):", ""]
        lines += ["| model | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
        for r in finals:
            lines.append(
                f"| {r['model']} | " + " | ".join(f"{r['iou'][c]:.3f}" for c in classes) + " |"
            )
    lines += ["", *_verdicts(by, budgets, models)]
    return lines


def _default_names() -> str:
    from antlers.tasks.segment.models import DEFAULTS

    return ", ".join(
        f"{m} = {m}-w{o['width']}-d{o['depth']}" + (" (residual)" if o.get("residual") else "")
        for m, o in DEFAULTS.items()
        if o
    )


def _verdicts(by: dict, budgets: list[float], models: list[str]) -> list[str]:
    out = []
    if ("unet", 300) in by:
        miou = by[("unet", 300)]["miou"]
        met = "met" if miou >= TARGET else "missed"
        out.append(f"- U-Net mIoU within 300 s: {miou:.4f} (target >= {TARGET}): {met}")
    for m in ("unet", "segnet"):
        pairs = [
            (by[(m, b)], by[("lraspp", b)]) for b in budgets if (m, b) in by and ("lraspp", b) in by
        ]
        if pairs:
            ahead = sum(a["miou"] > b["miou"] for a, b in pairs)
            out.append(f"- {m} ahead of lraspp at equal time: {ahead} of {len(pairs)} budgets")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=BUDGETS)
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="runs per row (seeds 0, 1, ...)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warn_if_busy()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for seed in range(args.repeats):
            for budget in args.budgets:
                for model in args.models:
                    rows.append(run(model, budget, seed, out, args.image_size))
    section = _section(rows, args.threads, args.image_size)
    print("\n".join(section))
    if not args.no_record:
        record_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

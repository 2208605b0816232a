"""Benchmark: antlers' class-conditional diffusion model against diffusers' UNet2DModel +
DDPMScheduler, on Fashion-MNIST, on the CPU, in one invocation.

    .venv/bin/pip install diffusers                 # the baseline (pyproject's `bench` extra)
    .venv/bin/python benchmarks/generate.py         # 3 seeds x 10 min each; '## generate'
    .venv/bin/python benchmarks/generate.py --minutes 0.5 --repeats 2 --n 20 --n-ddpm 4 \
        --n-class 10 --classifier-seconds 10 --no-record

Recipe: (1) train the FID feature network, antlers' default classifier, for
``--classifier-seconds`` (its checkpoint chosen on validation); then for each of ``--repeats``
seeds: (2) train ours, ``antlers.train("generate", model=--model)``, for
``--minutes``; (3) train diffusers' UNet2DModel (similar parameter count, class embeddings,
mid-block attention) with its DDPMScheduler (linear betas) for the same wall time, with the same
optimizer, learning-rate schedule, batch, flips and EMA as ours; (4) sample, time and score:
FID on the classifier's penultimate features against 10 000 train images, beside the
real-vs-real floor (as many test images as samples), and the share of conditional samples the
classifier assigns to the requested class. DDIM runs at eta 0 (deterministic given x_T, Song et
al. 2021) and eta 1 (DDPM's variance at each of the S steps), for both models. DDPM-1000 is slow on
a CPU, so it gets fewer samples (``--n-ddpm``) and DDIM-50 is also scored on the same number for the
paired comparison (FID grows as n shrinks, so only equal-n rows compare). Each figure recorded
is the median over the seeds; FID is also given per seed.

OpenMP's wait policy is left as ``antlers train`` leaves it (unset) unless OMP_WAIT_POLICY is
set, and the section records which: spinning threads are faster on an idle machine, several
times slower on a shared one (docs/experiments/openmp-threads.md). Record on an idle machine (a
warning is printed when it is busy); run with OMP_WAIT_POLICY=PASSIVE on a shared one.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch import Tensor

from antlers.data import load_dataset
from antlers.engine.flops import counted
from antlers.io.files import atomic_write
from antlers.run import train
from antlers.tasks.generate.figures import grid_image
from antlers.tasks.generate.quality import classifier_features, frechet_distance
from antlers.viz.images import save_png
from common import cpu_model, matmul_peak, record_section, warn_if_busy
from diffusers_baseline import (
    baseline_step_flops,
    require_diffusers,
    sample_baseline,
    train_baseline,
)

DATA = "fashion-mnist"
ETAS = (0.0, 1.0)


class Scorer:
    """FID against 10 000 train images' features (computed once) and the real-vs-real floor."""

    def __init__(self, classifier: torch.nn.Module):
        self.classifier = classifier
        train_set, test_set = load_dataset(DATA, "train"), load_dataset(DATA, "test")
        self.reference, _ = classifier_features(classifier, train_set.images[:10000] / 255)
        self.real, _ = classifier_features(classifier, test_set.images / 255)

    def score(self, images: Tensor, labels: Tensor) -> dict[str, float]:
        features, logits = classifier_features(self.classifier, images)
        return {
            "fid": frechet_distance(features, self.reference),
            "floor": frechet_distance(self.real[: len(images)], self.reference),
            "class_accuracy": float((logits.argmax(1) == labels).float().mean()),
        }


def _measure(name: str, fn: object, labels: Tensor, scorer: Scorer, out: Path) -> dict:
    start = time.perf_counter()
    images = fn(labels)
    seconds = time.perf_counter() - start
    save_png(grid_image(images[:100], nrow=10), out / f"{name}.png")
    row = {"name": name, "n": len(labels), "seconds": round(seconds, 1)}
    row |= {"samples_per_s": len(labels) / seconds, **scorer.score(images, labels)}
    print(
        f"{name:<34} n={row['n']:<4} {row['samples_per_s']:7.2f} samples/s  FID "
        f"{row['fid']:8.2f} (floor {row['floor']:.2f})  class acc {row['class_accuracy']:.1%}",
        flush=True,
    )
    return row


def _plans(args: argparse.Namespace, ours: object, baseline: torch.nn.Module, seed: int) -> list:
    """(row name, sampler function of the labels, n) for every row of the table."""

    def ours_fn(sampler: str, steps: int, guidance: float, eta: float = 0.0) -> object:
        def fn(labels: Tensor) -> Tensor:
            return ours.sample(
                len(labels), sampler=sampler, steps=steps, guidance=guidance, eta=eta, seed=seed,
                label=None,
            )  # fmt: skip

        return fn

    plans = [("ours DDPM-1000", ours_fn("ddpm", 1000, 1.0), args.n_ddpm)]
    for eta in ETAS:  # DDIM's eta: 0 deterministic (Song et al.), 1 DDPM's variance
        plans += [
            (f"ours DDIM-50 eta {eta:g}", ours_fn("ddim", 50, 1.0, eta), args.n),
            (f"ours DDIM-20 eta {eta:g}", ours_fn("ddim", 20, 1.0, eta), args.n),
            (f"ours DDIM-50 eta {eta:g} (n as DDPM)", ours_fn("ddim", 50, 1.0, eta), args.n_ddpm),
        ]
    plans.append(
        (f"ours DDIM-50 eta 1 guidance {args.guidance:g}", ours_fn("ddim", 50, args.guidance, 1.0),
         args.n_class)
    )  # fmt: skip
    for eta in ETAS:
        plans.append(
            (f"diffusers DDIM-50 eta {eta:g}",
             lambda y, eta=eta: sample_baseline(baseline, y, 50, seed, eta), args.n)
        )  # fmt: skip
    if args.n_baseline_ddpm:
        plans.append(
            ("diffusers DDPM-1000", lambda y: sample_baseline(baseline, y, 1000, seed),
             args.n_baseline_ddpm)
        )  # fmt: skip
    return plans


def _step_flops(task: object, model: torch.nn.Module, batch: dict) -> int:
    """FLOPs of one training step's forward and backward, on a copy of ``model``."""
    twin = copy.deepcopy(model).train()
    with torch.random.fork_rng(devices=[]):
        return counted(lambda: task.loss(twin, batch)["loss"].backward())[1]


def _one_seed(args: argparse.Namespace, seed: int, scorer: Scorer, out: Path) -> dict:
    """Train both models with ``seed`` for the same time, then sample and score every row."""
    seconds = args.minutes * 60
    ours = train(
        "generate", data=DATA, model=args.model, time=seconds, batch_size=args.batch_size,
        seed=seed, out=str(out), name=f"ours_seed{seed}",
    )  # fmt: skip
    steps = {"ours": int(ours.metrics[-1]["step"])}
    baseline, steps["diffusers"] = train_baseline(seconds, ours.config, seed)
    images = load_dataset(DATA, "train").images[: args.batch_size].float() / 255
    batch = {"image": images, "label": torch.arange(args.batch_size) % 10}
    flops = {  # per training image, forward and backward, counted by FlopCounterMode
        "ours": _step_flops(ours.task, ours.model, batch) / args.batch_size,
        "diffusers": baseline_step_flops(baseline, args.batch_size) / args.batch_size,
    }
    print(f"seed {seed}: steps {steps}; load {os.getloadavg()}", flush=True)
    balanced = lambda n: torch.arange(n) % 10  # noqa: E731 - every class in turn
    folder = out / f"samples_seed{seed}"
    rows = [
        _measure(name, fn, balanced(n), scorer, folder)
        for name, fn, n in _plans(args, ours, baseline, seed)
    ]
    params = {
        "ours": sum(p.numel() for p in ours.model.parameters()),
        "diffusers": sum(p.numel() for p in baseline.parameters()),
    }
    return {"seed": seed, "steps": steps, "flops": flops, "params": params, "rows": rows}


def median_rows(runs: list[dict]) -> list[dict]:
    """Per row name: the median of each figure over the seeds, with every seed's FID."""
    rows = []
    for i, first in enumerate(runs[0]["rows"]):
        group = [run["rows"][i] for run in runs]
        row = {"name": first["name"], "n": first["n"], "fids": [r["fid"] for r in group]}
        for key in ("samples_per_s", "fid", "floor", "class_accuracy"):
            row[key] = statistics.median(r[key] for r in group)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time of each model")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side (seeds 0, 1, ...)")
    parser.add_argument("--classifier-seconds", type=float, default=120.0)
    parser.add_argument("--model", default="unet_small")
    parser.add_argument("--n", type=int, default=400, help="samples for DDIM-50 / DDIM-20")
    parser.add_argument("--n-ddpm", type=int, default=100, help="samples for DDPM-1000")
    parser.add_argument("--n-class", type=int, default=200, help="samples with guidance")
    parser.add_argument("--batch-size", type=int, default=64, help="both models")
    parser.add_argument("--n-baseline-ddpm", type=int, default=0, help="diffusers DDPM-1000")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/bench_generate")
    parser.add_argument("--label", default="", help="text added to the recorded heading")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    require_diffusers()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    warn_if_busy()
    load_start = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC)
    print(f"load average at start: {load_start}", flush=True)

    classifier = train(
        "classify", data=DATA, time=args.classifier_seconds, out=str(out), name="classifier"
    )
    scorer = Scorer(classifier.model)
    peak = matmul_peak()
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s", flush=True)
    runs = [_one_seed(args, seed, scorer, out) for seed in range(args.repeats)]
    result = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "threads": args.threads,
        "torch": torch.__version__,
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "minutes": args.minutes,
        "classifier_accuracy": classifier.test_metrics["test_accuracy"],
        "steps": {side: [run["steps"][side] for run in runs] for side in ("ours", "diffusers")},
        "params": runs[0]["params"],
        "model": args.model,
        "batch_size": args.batch_size,
        "runs": runs,
        "peak_gflops": peak,
        "rows": median_rows(runs),
    }
    atomic_write(out / "result.json", json.dumps(result, indent=2))
    section = _section(result, args.label)
    print("\n".join(section))
    if not args.no_record:
        record_section(section)


def _heading(r: dict, label: str) -> list[str]:
    steps = lambda side: ", ".join(map(str, r["steps"][side]))  # noqa: E731
    return [
        f"## generate{label}",
        "",
        f"{r['date']}, {r['cpu']}, {r['threads']} threads, torch {r['torch']}; 1-min "
        f"load average {r['load_start'][0]:.1f} at start, {r['load_end'][0]:.1f} at the end; "
        f"OMP_WAIT_POLICY={r['omp_wait_policy']}.",
        f"Each model trained {r['minutes']:g} min on Fashion-MNIST (28 px) with each of "
        f"{len(r['runs'])} seeds: ours ({r['model']}, {r['params']['ours'] / 1e6:.2f} M "
        f"parameters) {steps('ours')} steps; diffusers UNet2DModel + DDPMScheduler "
        f"({r['params']['diffusers'] / 1e6:.2f} M) {steps('diffusers')} steps, batch "
        f"{r['batch_size']} both. Each figure is the median over the seeds. FID on the "
        "penultimate features of antlers' classifier (chosen on validation, test accuracy "
        f"{r['classifier_accuracy']:.1%}) vs 10 000 train images; floor = as many test "
        "images as samples.",
        "",
        *_utilisation(r),
        "",
        "| sampler | n | samples/s | FID | FID per seed | real-vs-real floor | class accuracy |",
        "|---|---|---|---|---|---|---|",
    ]


def _utilisation(r: dict) -> list[str]:
    """Training speed per side: images/s, GFLOP/s and its share of the measured matmul peak."""
    lines = []
    for side in ("ours", "diffusers"):
        rate = statistics.median(run["steps"][side] for run in r["runs"])
        rate *= r["batch_size"] / (r["minutes"] * 60)
        gflops = rate * r["runs"][0]["flops"][side] / 1e9
        lines.append(
            f"- training, {side}: {rate:.0f} images/s, "
            f"{r['runs'][0]['flops'][side] / 1e6:.0f} MFLOP per image (forward and backward), "
            f"{gflops:.1f} GFLOP/s = {gflops / r['peak_gflops']:.1%} of the float32 matmul "
            f"peak measured in this run ({r['peak_gflops']:.0f} GFLOP/s)"
        )
    return lines


def _section(r: dict, label: str) -> list[str]:
    rows = {row["name"]: row for row in r["rows"]}
    lines = _heading(r, label)
    for row in r["rows"]:
        fids = ", ".join(f"{f:.2f}" for f in row["fids"])
        lines.append(
            f"| {row['name']} | {row['n']} | {row['samples_per_s']:.2f} | {row['fid']:.2f} | "
            f"{fids} | {row['floor']:.2f} | {row['class_accuracy']:.1%} |"
        )
    ddpm = rows["ours DDPM-1000"]
    guided = next(row for name, row in rows.items() if "guidance" in name)
    ok = lambda flag: "met" if flag else "MISSED"  # noqa: E731
    lines += ["", "Targets (on the medians):", ""]
    lines.append(
        f"- conditional samples judged as their class >= 85%: {guided['class_accuracy']:.1%} "
        f"({guided['name']}): {ok(guided['class_accuracy'] >= 0.85)}"
    )
    for eta in ETAS:
        paired = rows[f"ours DDIM-50 eta {eta:g} (n as DDPM)"]
        ratio = paired["fid"] / ddpm["fid"]
        lines.append(
            f"- DDIM-50 eta {eta:g} FID within 15% of DDPM-1000 (same n): {paired['fid']:.2f} vs "
            f"{ddpm['fid']:.2f}, ratio {ratio:.2f}: {ok(ratio <= 1.15)}"
        )
    for eta in ETAS:
        ours50, theirs50 = rows[f"ours DDIM-50 eta {eta:g}"], rows[f"diffusers DDIM-50 eta {eta:g}"]
        wins = sum(a < b for a, b in zip(ours50["fids"], theirs50["fids"], strict=True))
        lines.append(
            f"- our FID below diffusers' at equal time (DDIM-50 eta {eta:g}, same n): "
            f"{ours50['fid']:.2f} vs {theirs50['fid']:.2f}, {wins} of {len(ours50['fids'])} "
            f"seeds: {ok(ours50['fid'] < theirs50['fid'])}"
        )
    return lines


if __name__ == "__main__":
    main()

"""Benchmark: antlers' class-conditional diffusion model against diffusers' UNet2DModel +
DDPMScheduler, on Fashion-MNIST, on the CPU, in one invocation.

    .venv/bin/pip install diffusers                 # the baseline (pyproject's `bench` extra)
    .venv/bin/python benchmarks/generate.py         # 20 min each; records '## generate'
    .venv/bin/python benchmarks/generate.py --minutes 0.5 --n 20 --n-ddpm 4 --no-record

Recipe: (1) train the FID feature network, antlers' default classifier, for
``--classifier-seconds``; (2) train ours, ``antlers.train("generate", model=--model)``, for
``--minutes``; (3) train diffusers' UNet2DModel (similar parameter count, class embeddings,
mid-block attention) with its DDPMScheduler (linear betas) for the same wall time, with the same
optimizer, learning-rate schedule, batch, flips and EMA as ours; (4) sample, time and score:
FID on the classifier's penultimate features against 10 000 train images, beside the
real-vs-real floor (as many test images as samples), and the share of conditional samples the
classifier assigns to the requested class. DDIM runs at eta 0 (deterministic given x_T, Song et
al. 2021) and eta 1 (DDPM's variance at each of the S steps), for both models. DDPM-1000 is slow on
a CPU, so it gets fewer samples (``--n-ddpm``) and DDIM-50 is also scored on the same number for the
paired comparison (FID grows as n shrinks, so only equal-n rows compare).
"""

from __future__ import annotations

import os

# On a shared, oversubscribed machine OpenMP's spinning threads waste most of the CPU; on idle
# cores passive waiting costs some speed instead (docs/experiments/openmp-threads.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from antlers.data import load_dataset
from antlers.engine.loader import TensorLoader
from antlers.engine.schedule import learning_rate
from antlers.engine.training import make_ema
from antlers.run import train
from antlers.tasks.generate.figures import grid_image
from antlers.tasks.generate.quality import classifier_features, frechet_distance
from antlers.viz.images import save_png
from common import cpu_model, record_section

DATA = "fashion-mnist"
ETAS = (0.0, 1.0)


def _require_diffusers() -> None:
    try:
        import diffusers  # noqa: F401
    except ImportError:
        sys.exit(
            "benchmarks/generate.py needs diffusers for its baseline: "
            ".venv/bin/pip install diffusers (or pip install -e '.[bench]')"
        )


def baseline_unet() -> torch.nn.Module:
    """diffusers' UNet2DModel at about our unet_small's parameter count (0.38 M vs 0.37 M)."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        block_out_channels=(16, 24, 48),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 3,
        up_block_types=("UpBlock2D",) * 3,
        norm_num_groups=8,
        attention_head_dim=8,
        num_class_embeds=10,
    )


def train_baseline(seconds: float, config: object, seed: int) -> tuple[torch.nn.Module, int]:
    """diffusers' model and DDPMScheduler, trained with our recipe for ``seconds``; returns the
    EMA model and the number of steps."""
    from diffusers import DDPMScheduler

    torch.manual_seed(seed)
    model = baseline_unet()
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.peak_lr, weight_decay=0.0)
    ema = make_ema(model, config.ema)
    data = load_dataset(DATA, "train")
    loader = TensorLoader(
        data.images, data.labels, config.batch_size, shuffle=True, seed=seed, flip=True,
        drop_last=True,
    )  # fmt: skip
    start, step, epoch = time.perf_counter(), 0, 0
    while time.perf_counter() - start < seconds:
        for batch in loader.epoch(epoch):
            progress = (time.perf_counter() - start) / seconds
            if progress >= 1:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config.schedule, progress, config.peak_lr)
            x0 = batch["image"] * 2 - 1
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (len(x0),))
            x_t = scheduler.add_noise(x0, noise, t)
            pred = model(x_t, t, class_labels=batch["label"]).sample
            loss = F.mse_loss(pred, noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update_parameters(model)
            step += 1
        epoch += 1
    return ema.module.eval(), step


@torch.no_grad()
def sample_baseline(
    model: torch.nn.Module, labels: Tensor, steps: int, seed: int, eta: float = 0.0
) -> Tensor:
    """DDPM-1000 (DDPMScheduler) or DDIM-``steps`` (DDIMScheduler with ``eta``) from diffusers."""
    from diffusers import DDIMScheduler, DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=1000)
    if steps != 1000:
        scheduler = DDIMScheduler.from_config(scheduler.config)
    scheduler.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((len(labels), 1, 28, 28), generator=g)
    extra = {"eta": eta} if steps != 1000 else {}
    for t in scheduler.timesteps:
        eps = model(x, t, class_labels=labels).sample
        x = scheduler.step(eps, t, x, generator=g, **extra).prev_sample
    return ((x + 1) / 2).clamp(0, 1)


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training time of each model")
    parser.add_argument("--classifier-seconds", type=float, default=120.0)
    parser.add_argument("--model", default="unet_small")
    parser.add_argument("--n", type=int, default=250, help="samples for DDIM-50 / DDIM-20")
    parser.add_argument("--n-ddpm", type=int, default=40, help="samples for DDPM-1000")
    parser.add_argument("--n-class", type=int, default=100, help="samples with guidance")
    parser.add_argument("--batch-size", type=int, default=64, help="both models")
    parser.add_argument("--n-baseline-ddpm", type=int, default=0, help="diffusers DDPM-1000")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/bench_generate")
    parser.add_argument("--label", default="", help="text added to the recorded heading")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    _require_diffusers()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    load_start = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC)
    print(f"load average at start: {load_start}", flush=True)

    classifier = train(
        "classify", data=DATA, time=args.classifier_seconds, out=str(out), name="classifier"
    )
    classifier_acc = classifier.metrics[-1]["val_accuracy"]
    seconds = args.minutes * 60
    ours = train(
        "generate", data=DATA, model=args.model, time=seconds, batch_size=args.batch_size,
        out=str(out), name="ours",
    )  # fmt: skip
    ours_steps = int(ours.metrics[-1]["step"])
    config = ours.config
    baseline, baseline_steps = train_baseline(seconds, config, config.seed)
    load_trained = os.getloadavg()
    print(f"steps: ours {ours_steps}, diffusers {baseline_steps}; load {load_trained}", flush=True)

    scorer = Scorer(classifier.model)
    balanced = lambda n: torch.arange(n) % 10  # noqa: E731 - every class in turn
    rows = []

    def ours_fn(sampler: str, steps: int, guidance: float, eta: float = 0.0) -> object:
        def fn(labels: Tensor) -> Tensor:
            return ours.sample(
                len(labels), sampler=sampler, steps=steps, guidance=guidance, eta=eta, seed=1,
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
             lambda y, eta=eta: sample_baseline(baseline, y, 50, 1, eta), args.n)
        )  # fmt: skip
    if args.n_baseline_ddpm:
        plans.append(
            ("diffusers DDPM-1000", lambda y: sample_baseline(baseline, y, 1000, 1),
             args.n_baseline_ddpm)
        )  # fmt: skip
    for name, fn, n in plans:
        rows.append(_measure(name, fn, balanced(n), scorer, out))

    params = {
        "ours": sum(p.numel() for p in ours.model.parameters()),
        "diffusers": sum(p.numel() for p in baseline.parameters()),
    }
    result = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "threads": args.threads,
        "torch": torch.__version__,
        "load_start": load_start,
        "load_after_training": load_trained,
        "load_end": os.getloadavg(),
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "minutes": args.minutes,
        "classifier_accuracy": classifier_acc,
        "steps": {"ours": ours_steps, "diffusers": baseline_steps},
        "params": params,
        "model": args.model,
        "batch_size": args.batch_size,
        "rows": rows,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    section = _section(result, args.label)
    print("\n".join(section))
    if not args.no_record:
        record_section(section)


def _section(r: dict, label: str) -> list[str]:
    rows = {row["name"]: row for row in r["rows"]}
    lines = [
        f"## generate{label}",
        "",
        f"{r['date']}, {r['cpu']}, {r['threads']} threads, torch {r['torch']}; 1-min "
        f"load average {r['load_start'][0]:.1f} at start, "
        f"{r['load_after_training'][0]:.1f} after training, {r['load_end'][0]:.1f} at the end; "
        f"OMP_WAIT_POLICY={r['omp_wait_policy']}.",
        f"Each model trained {r['minutes']:g} min on Fashion-MNIST (28 px): ours ({r['model']}, "
        f"{r['params']['ours'] / 1e6:.2f} M parameters) {r['steps']['ours']} steps; diffusers "
        f"UNet2DModel + DDPMScheduler ({r['params']['diffusers'] / 1e6:.2f} M) "
        f"{r['steps']['diffusers']} steps, batch {r['batch_size']} both. FID on the "
        f"penultimate features of antlers' classifier (test accuracy "
        f"{r['classifier_accuracy']:.1%}) vs 10 000 train images; floor = as many test "
        "images as samples.",
        "",
        "| sampler | n | samples/s | FID | real-vs-real floor | class accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['name']} | {row['n']} | {row['samples_per_s']:.2f} | {row['fid']:.2f} | "
            f"{row['floor']:.2f} | {row['class_accuracy']:.1%} |"
        )
    ddpm = rows["ours DDPM-1000"]
    guided = next(row for name, row in rows.items() if "guidance" in name)
    ok = lambda flag: "met" if flag else "MISSED"  # noqa: E731
    lines += ["", "Targets:", ""]
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
        lines.append(
            f"- our FID below diffusers' at equal time (DDIM-50 eta {eta:g}, same n): "
            f"{ours50['fid']:.2f} vs {theirs50['fid']:.2f}: {ok(ours50['fid'] < theirs50['fid'])}"
        )
    return lines


if __name__ == "__main__":
    main()

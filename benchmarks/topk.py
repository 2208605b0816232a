"""Benchmark: top-k activating images per channel over the 60,000 Fashion-MNIST training images.

    .venv/bin/python benchmarks/topk.py              # records the '## topk' section
    .venv/bin/python benchmarks/topk.py --no-record

Ours: ``antlers.explain.top_k_activations`` (streaming: a channels_last copy of the model in
batches of 2000, stops the forward pass after the layer, keeps a running (C, k + batch) candidate
set, then the receptive-field windows). The baseline,
in the same process: the naive way, a forward hook that collects the layer's activations for
the whole dataset through the whole network, then the max over positions and ``torch.topk``
per channel. Both must give the same values. Target: ours <= 30 s on 2 threads.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import torch

from common import cpu_model, record_section

K = 8


def build_model(seed: int) -> torch.nn.Module:
    from antlers.tasks.classify.models import ClassifyConfig, build_classifier

    torch.manual_seed(seed)
    config = ClassifyConfig(
        task="classify",
        model="fast_resnet",
        data="fashion-mnist",
        in_channels=1,
        image_size=(28, 28),
        classes=tuple(str(i) for i in range(10)),
        mean=(0.286,),
        std=(0.353,),
    )
    return build_classifier(config).eval()


def naive(model: torch.nn.Module, layer: str, images: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every activation of the layer kept, then topk: values (C, K) and the bytes it held."""
    kept: list[torch.Tensor] = []
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda _m, _a, out: kept.append(out.detach().clone()))
    try:
        with torch.no_grad():
            for start in range(0, len(images), 500):
                model(images[start : start + 500].float() / 255)
    finally:
        handle.remove()
    acts = torch.cat(kept)  # (N, C, H, W)
    values = acts.flatten(2).amax(dim=2).topk(K, dim=0).values.T  # (C, K)
    return values, acts.numel() * acts.element_size()


def measure(layer: str, images: torch.Tensor) -> dict:
    from antlers.explain import top_k_activations

    model = build_model(0)
    times = []
    for run in ("ours", "naive", "ours"):  # ours on both sides of naive: load changes show
        start = time.perf_counter()
        if run == "ours":
            ours = top_k_activations(model, layer, images, k=K)
        else:
            values, held = naive(model, layer, images)
        times.append(time.perf_counter() - start)
    torch.testing.assert_close(ours.values, values)  # the same answer
    return {
        "layer": layer,
        "channels": ours.values.shape[0],
        "rf": ours.rf[0].size,
        "ours": min(times[0], times[2]),
        "ours_runs": (times[0], times[2]),
        "naive": times[1],
        "held_mb": held / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from antlers.data import load_dataset

    images = load_dataset("fashion-mnist", "train", download=False).images
    load = os.getloadavg()[0]
    rows = [measure(layer, images) for layer in ("1.6",)]
    load_end = os.getloadavg()[0]
    lines = []
    for r in rows:
        line = (
            f"| {r['layer']} | {r['channels']} | {r['rf']} | "
            f"{r['ours_runs'][0]:.2f} / {r['ours_runs'][1]:.2f} | "
            f"{r['naive']:.2f} | {r['naive'] / r['ours']:.2f} | {r['held_mb']:.0f} |"
        )
        print(line)
        lines.append(line)
    deep = rows[0]
    met = "met" if deep["ours"] <= 30 else "missed"
    section = [
        "## topk",
        "",
        "`benchmarks/topk.py`: top-8 images per channel of one layer of `fast_resnet` (width 8,",
        f"initialised with seed 0) over the {len(images):,} Fashion-MNIST training images, against",
        "the naive way in the same process (a hook keeps the layer's activations for the whole",
        "dataset through the whole network, NCHW, batches of 500, then max over positions and",
        "`torch.topk`); both give the same values. Ours streams: a channels_last copy of the",
        "model, batches of 2000, the forward pass stopped after the layer.",
        "",
        f"- machine: {cpu_model()}; threads: {args.threads}; torch {torch.__version__}; "
        f"date: {datetime.date.today()}",
        f"- load average (1 min) at the start / end: {load:.2f} / {load_end:.2f} (other work "
        "on the 2 shared cores skews the times)",
        "",
        "| layer | channels | receptive field | ours (s), before / after naive | naive (s) | "
        "naive / best of ours | "
        "naive holds (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *lines,
        "",
        f"- target: layer 1.6 over 60,000 images in <= 30 s: {deep['ours']:.1f} s, {met}",
        "- ours holds (C, k + batch) candidates, not the activations: its memory does not grow "
        "with the dataset",
    ]
    if not args.no_record:
        record_section(section)
        print("recorded in docs/benchmarks.md", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Benchmark: training throughput of the default classifier on the CPU, by memory format and dtype.

    .venv/bin/python benchmarks/cpu_formats.py          # records the '## cpu formats' section

The engine's choices on the CPU rest on these numbers: channels_last is used on CPU as on CUDA
because it measures faster here; bf16 autocast is used on the CPU only where it measures faster
(this benchmark is how to find out). Baseline: float32, contiguous (NCHW), same process.
"""

from __future__ import annotations

import argparse
import datetime
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from common import cpu_model, record_section


def images_per_second(channels_last: bool, bf16: bool, batch: int, steps: int) -> float:
    from antlers.tasks.classify.models import fast_resnet

    torch.manual_seed(0)
    model = fast_resnet(1, 10)
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            start = time.perf_counter()
        with cast:
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    from antlers.engine.precision import cpu_has_bf16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = {
        "float32, NCHW (baseline)": (False, False),
        "float32, channels_last": (True, False),
        "bf16 autocast, channels_last": (True, True),
    }
    rates = {
        name: images_per_second(*flags, args.batch, args.steps) for name, flags in cases.items()
    }
    base = rates["float32, NCHW (baseline)"]
    section = [
        "## cpu formats",
        "",
        "`benchmarks/cpu_formats.py`: training steps of the default `fast_resnet` on 28x28 "
        f"grayscale, batch {args.batch}.",
        "",
        f"- machine: {cpu_model()}; native bf16 (AVX512-BF16 or AMX): "
        f"{'yes' if cpu_has_bf16() else 'no'}; threads: {args.threads}; "
        f"torch {torch.__version__}; date: {datetime.date.today()}",
        "",
        "| case | images/s | vs baseline |",
        "|---|---:|---:|",
        *(f"| {name} | {rate:.0f} | {rate / base:.2f}x |" for name, rate in rates.items()),
        "",
    ]
    print("\n".join(section))
    if not args.no_record:
        record_section(section)


if __name__ == "__main__":
    main()

"""Benchmark: antlers' default classification recipe against PyTorch's examples/mnist recipe,
on Fashion-MNIST, on the CPU, in one invocation.

    .venv/bin/python benchmarks/classify.py            # records the '## classify' section
    .venv/bin/python benchmarks/classify.py --no-record --budgets 60

The reference is a faithful reimplementation of github.com/pytorch/examples/mnist/main.py: its
``Net`` (conv 32, conv 64, max pool, dropout 0.25, fc 128, dropout 0.5, fc 10, log-softmax),
``Normalize((0.1307,), (0.3081,))``, batch 64, Adadelta lr 1.0, StepLR gamma 0.7 per epoch. It is
evaluated on the test set every quarter epoch (the example does so once per epoch; finer is kinder
to it), evaluation time excluded, until it reaches 91% or ``--reference-cap`` seconds of training.

Ours is ``antlers.train("classify", data="fashion-mnist", time=T)``: the engine's default model and
schedule planned for each budget T (one run per budget), evaluated at the end of every epoch and at
the end of the budget. Its time to 91% is the shortest training time, over all runs, at which a run
had reached 91% (each run's schedule is planned for its own budget, as `--time` does).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from common import cpu_model, record_section

TARGET = 0.91


class Net(nn.Module):
    """pytorch/examples mnist/main.py's network, unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(images[i : i + 1000]).argmax(1) == labels[i : i + 1000]).sum().item()
            for i in range(0, len(labels), 1000)
        )
    model.train()
    return correct / len(labels)


def reference(train, test, cap: float) -> dict:
    """Train the reference until 91% test accuracy or ``cap`` seconds; returns its timeline."""
    torch.manual_seed(1)
    normalize = lambda u8: (u8.float() / 255 - 0.1307) / 0.3081  # noqa: E731
    x, y = normalize(train.images), train.labels
    x_test, y_test = normalize(test.images), test.labels
    model = Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    steps = len(y) // 64 + (len(y) % 64 > 0)
    checkpoints = {steps * q // 4 for q in (1, 2, 3, 4)}
    elapsed, timeline = 0.0, []
    for epoch in range(1, 100):
        order = torch.randperm(len(y))
        start = time.perf_counter()
        for step in range(1, steps + 1):
            index = order[(step - 1) * 64 : step * 64]
            loss = F.nll_loss(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step in checkpoints:
                elapsed += time.perf_counter() - start
                timeline.append((round(elapsed, 1), _accuracy(model, x_test, y_test)))
                print(
                    f"reference: {elapsed:.0f} s, test accuracy {timeline[-1][1]:.4f}",
                    file=sys.stderr,
                    flush=True,
                )
                if timeline[-1][1] >= TARGET or elapsed >= cap:
                    return {"timeline": timeline, "epochs": epoch}
                start = time.perf_counter()
        scheduler.step()
    return {"timeline": timeline, "epochs": 99}


def ours(budget: float) -> list[dict]:
    """One antlers run with a time budget; its metrics rows."""
    from antlers.run import train

    with tempfile.TemporaryDirectory() as out:
        run = train("classify", data="fashion-mnist", time=budget, out=out, name=f"t{budget}")
        return run.metrics


def time_to(rows: list[tuple[float, float]]) -> float | None:
    return next((t for t, accuracy in rows if accuracy >= TARGET), None)


def report(ref: dict, runs: dict[float, list[dict]], threads: int) -> list[str]:
    ref_time = time_to(ref["timeline"])
    our_times = [
        time_to([(r["seconds"], r["val_accuracy"]) for r in rows]) for rows in runs.values()
    ]
    our_time = min((t for t in our_times if t is not None), default=None)
    speedup = ref_time / our_time if ref_time and our_time else None
    lines = [
        "## classify",
        "",
        "`benchmarks/classify.py`: Fashion-MNIST, CPU, training time only (evaluation excluded).",
        "",
        f"- machine: {cpu_model()}; threads: {threads}; torch {torch.__version__}; "
        f"date: {datetime.date.today()}",
        "",
        "| recipe | budget (s) | test accuracy | time to 91% (s) |",
        "|---|---:|---:|---:|",
        f"| reference (pytorch/examples mnist) | {ref['timeline'][-1][0]:.0f} | "
        f"{ref['timeline'][-1][1]:.4f} | {ref_time if ref_time is not None else 'not reached'} |",
    ]
    for budget, rows in runs.items():
        reached = time_to([(r["seconds"], r["val_accuracy"]) for r in rows])
        lines.append(
            f"| antlers default | {budget:.0f} | {rows[-1]['val_accuracy']:.4f} | "
            f"{reached if reached is not None else 'not reached'} |"
        )
    best = max(rows[-1]["val_accuracy"] for rows in runs.values())
    lines += [
        "",
        f"- speed-up to 91%: {f'{speedup:.1f}x' if speedup else 'n/a'} (target >= 5x)",
        f"- best test accuracy within the budgets: {best:.4f} (target >= 0.935 within 180 s)",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budgets", type=float, nargs="+", default=[30, 60, 120, 180])
    parser.add_argument("--reference-cap", type=float, default=900)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from antlers.data import load_dataset

    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    runs = {budget: ours(budget) for budget in args.budgets}
    ref = reference(train, test, args.reference_cap)
    section = report(ref, runs, args.threads)
    print("\n".join(section))
    if not args.no_record:
        record_section(section)


if __name__ == "__main__":
    main()

"""Benchmark: antlers' default classification recipe against PyTorch's examples/mnist recipe,
on Fashion-MNIST, on the CPU, in one invocation.

    .venv/bin/python benchmarks/classify.py            # records the '## classify' section
    .venv/bin/python benchmarks/classify.py --no-record --budgets 60 --repeats 1
    .venv/bin/python benchmarks/classify.py --crop 1     # prints only: not the default recipe

Protocol, the same for both sides: the validation split that antlers holds out of the training
split (``antlers.tasks.splits.validation_split``: 5,000 of the 60,000 images, seeded with the
run's seed) is the only split looked at during training; it times when a run reaches 91% and
chooses the checkpoint that is then scored once on the test split. Each side runs ``--repeats``
times with different seeds and the table gives the medians.

The reference is a faithful reimplementation of github.com/pytorch/examples/mnist/main.py: its
``Net`` (conv 32, conv 64, max pool, dropout 0.25, fc 128, dropout 0.5, fc 10, log-softmax),
``Normalize((0.1307,), (0.3081,))``, batch 64, Adadelta lr 1.0, StepLR gamma 0.7 per epoch,
trained on the other 55,000 images. It is evaluated on the validation split every quarter epoch
(the example does so once per epoch; finer is kinder to it), evaluation time excluded, until it
reaches 91% or ``--reference-cap`` seconds of training; its best quarter epoch on validation is
then scored on the test split.

Ours is ``antlers.train("classify", data="fashion-mnist", time=T, seed=s)``: the engine's default
model and schedule planned for each budget T, evaluated on the validation split at the end of
every epoch; the test accuracy is metrics.json's (the epoch chosen on validation). A seed's time
to 91% is the shortest training time, over its budgets, at which a run had reached 91% on
validation (each run's schedule is planned for its own budget, as ``--time`` does).
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
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


def reference(train, val, test, cap: float, seed: int) -> dict:
    """Train the reference until 91% validation accuracy or ``cap`` seconds; its validation
    timeline and the test accuracy of its best quarter epoch on validation."""
    torch.manual_seed(seed)
    normalize = lambda u8: (u8.float() / 255 - 0.1307) / 0.3081  # noqa: E731
    x, y = normalize(train.images), train.labels
    model = Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    steps = len(y) // 64 + (len(y) % 64 > 0)
    checkpoints = {steps * q // 4 for q in (1, 2, 3, 4)}
    elapsed, timeline, best = 0.0, [], (-1.0, None)
    for _ in range(1, 100):
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
                accuracy = _accuracy(model, normalize(val.images), val.labels)
                timeline.append((round(elapsed, 1), accuracy))
                if accuracy > best[0]:
                    best = (accuracy, {k: v.clone() for k, v in model.state_dict().items()})
                print(f"reference {seed}: {elapsed:.0f} s, val {accuracy:.4f}", file=sys.stderr)
                if accuracy >= TARGET or elapsed >= cap:
                    model.load_state_dict(best[1])
                    test_accuracy = _accuracy(model, normalize(test.images), test.labels)
                    return {"timeline": timeline, "test_accuracy": test_accuracy}
                start = time.perf_counter()
        scheduler.step()
    raise RuntimeError("the reference trained 99 epochs without stopping")


def ours(budget: float, seed: int, crop: int = 0) -> dict:
    """One antlers run with a time budget (and ``--crop``): its validation timeline and its test
    accuracy."""
    from antlers.run import train

    with tempfile.TemporaryDirectory() as out:
        run = train("classify", data="fashion-mnist", time=budget, seed=seed, crop=crop, out=out)
        timeline = [(r["seconds"], r["val_accuracy"]) for r in run.metrics]
        precision = "bf16" if run.config.cpu_amp else "float32"  # as the run chose it
        return {
            "timeline": timeline,
            "test_accuracy": run.test_metrics["test_accuracy"],
            "precision": precision,
        }


def time_to(timeline: list[tuple[float, float]]) -> float:
    """Training seconds until the validation accuracy first reached 91% (inf: never)."""
    return next((t for t, accuracy in timeline if accuracy >= TARGET), math.inf)


def _shown(seconds: float) -> str:
    return "not reached" if math.isinf(seconds) else f"{seconds:.1f}"


def _best_within(runs: dict[float, list[dict]], seconds: float) -> float:
    """The best median test accuracy of the budgets up to ``seconds`` (0: none)."""
    within = [b for b in runs if b <= seconds]
    return max((statistics.median(r["test_accuracy"] for r in runs[b]) for b in within), default=0)


def report(
    refs: list[dict], runs: dict[float, list[dict]], threads: int, crop: int = 0
) -> list[str]:
    """The recorded lines: medians over the repeats of each side."""
    ref_time = statistics.median(time_to(r["timeline"]) for r in refs)
    ref_test = statistics.median(r["test_accuracy"] for r in refs)
    seeds = range(len(next(iter(runs.values()))))
    our_time = statistics.median(
        min(time_to(rs[i]["timeline"]) for rs in runs.values()) for i in seeds
    )
    speedup = ref_time / our_time if math.isfinite(ref_time) and math.isfinite(our_time) else None
    precisions = sorted({r["precision"] for rows in runs.values() for r in rows})
    lines = [
        "## classify",
        "",
        "`benchmarks/classify.py`: Fashion-MNIST, CPU, training time only (evaluation excluded);",
        f"the median of {len(refs)} runs per row, each with its own seed. Precision: ours "
        f"{' and '.join(precisions)} (chosen by each run, engine/precision.py), the reference "
        "float32.",
        "",
        f"- machine: {cpu_model()}; threads: {threads}; torch {torch.__version__}; "
        f"date: {datetime.date.today()}",
        "",
        "| recipe | budget (s) | test accuracy | time to 91% on validation (s) |",
        "|---|---:|---:|---:|",
        f"| reference (pytorch/examples mnist) | until 91% | {ref_test:.4f} | {_shown(ref_time)} |",
    ]
    for budget, rows in runs.items():
        test = statistics.median(r["test_accuracy"] for r in rows)
        reached = statistics.median(time_to(r["timeline"]) for r in rows)
        recipe = f"antlers --crop {crop}" if crop else "antlers default"
        lines.append(f"| {recipe} | {budget:.0f} | {test:.4f} | {_shown(reached)} |")
    best = _best_within(runs, 180)
    short = _best_within(runs, 20)
    lines += [
        "",
        f"- median time to 91% on validation (s): ours {_shown(our_time)} (the shortest of each "
        f"seed's budgets), the reference {_shown(ref_time)}",
        f"- speed-up to 91%: {f'{speedup:.1f}x' if speedup else 'n/a'} (target >= 5x)",
        f"- median test accuracy within 20 s: {short:.4f} (target >= 0.91)",
        f"- median test accuracy within 180 s: {best:.4f} (target >= 0.943)",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budgets", type=float, nargs="+", default=[20, 60, 120, 180])
    parser.add_argument("--repeats", type=int, default=3, help="runs per row (seeds 0, 1, ...)")
    parser.add_argument("--reference-cap", type=float, default=900)
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument(
        "--crop", type=int, default=0, help="ours with --crop N (N > 0: prints only)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from antlers.data import load_dataset
    from antlers.tasks.splits import validation_split

    whole, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    seeds = range(args.repeats)
    runs = {budget: [ours(budget, seed, args.crop) for seed in seeds] for budget in args.budgets}
    refs = [reference(*validation_split(whole, s), test, args.reference_cap, s) for s in seeds]
    section = report(refs, runs, args.threads, args.crop)
    print("\n".join(section))
    if not (args.no_record or args.crop):
        record_section(section)


if __name__ == "__main__":
    main()

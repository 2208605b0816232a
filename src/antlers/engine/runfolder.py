"""The run folder, Ultralytics-style: ``runs/<task>/<name>/`` and what goes in it.

config.json                the resolved TrainConfig
metrics.csv                one row per epoch
curves.png                 loss and metrics against epochs
weights/best.safetensors   the best evaluated weights (EMA weights when EMA is on)
weights/last.safetensors   the last evaluated weights
state/last.pt              everything else needed to resume exactly
kernels/epoch_NNN.safetensors  the first convolution's kernels at the start and after each epoch
grad_norms.csv, .png       per-layer gradient norms at sampled steps (engine/monitor.py)
report.html                links to all of it (written by the task at the end)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from antlers.io.files import atomic_write

__all__ = ["new_run_dir", "write_curves", "write_metrics_csv"]


def new_run_dir(out: str | Path, task: str, name: str | None) -> Path:
    """Create and return ``out/task/name`` (reused when it exists); with no name, the first of
    exp, exp2, exp3, ... that this call creates itself: ``mkdir`` is exclusive, so two runs
    started at once with the same ``out`` never share a folder."""
    parent = Path(out) / task
    parent.mkdir(parents=True, exist_ok=True)
    if name is not None:
        (parent / name).mkdir(parents=True, exist_ok=True)
        return parent / name
    for i in range(1, 10_000):
        candidate = parent / ("exp" if i == 1 else f"exp{i}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise ValueError(f"{parent}: no free run name among exp .. exp9999")


def write_metrics_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """All epochs' rows as CSV (columns: the union of keys, in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write(path, buffer.getvalue())


def write_curves(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Training loss and every validation metric against the epoch, one panel each."""
    from matplotlib.figure import Figure

    from antlers.viz.figures import save_figure

    keys = [k for k in rows[0] if k == "train_loss" or k.startswith("val_")]
    fig = Figure(figsize=(3.6 * len(keys), 3.2), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    epochs = [row["epoch"] for row in rows]
    for ax, key in zip(axes, keys, strict=True):
        ax.plot(epochs, [row.get(key, float("nan")) for row in rows], marker="o")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    save_figure(fig, path)

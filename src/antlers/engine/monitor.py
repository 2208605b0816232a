"""What the engine records about learning besides the metrics: kernels and gradient norms.

* ``kernels/epoch_NNN.safetensors``: the first convolution's weights ``(Cout, Cin, K, K)`` at the
  start (epoch 0) and after every epoch, to watch edge and colour detectors form (the lecture's
  AlexNet kernels). Tensor ``"weight"``; metadata: the layer's name and the epoch.
* ``grad_norms.csv`` / ``grad_norms.png``: the L2 norm of the gradient of every weight matrix and
  kernel (parameters with ``ndim >= 2``), at a few sampled steps per epoch: vanishing or exploding
  gradients show up layer by layer. The rows live in the training state, so a resumed run
  continues the same file.

Rank 0 writes, atomically. Recording never touches the RNG or the weights: exact resume holds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from antlers.io.files import atomic_write

__all__ = [
    "GRAD_SAMPLES_PER_EPOCH",
    "first_conv",
    "grad_norm_row",
    "grad_sample_every",
    "load_kernels",
    "plot_grad_norms",
    "read_grad_norms",
    "save_kernels",
    "write_grad_norms",
]

GRAD_SAMPLES_PER_EPOCH = 8


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """``(name, module)`` of the first ``nn.Conv2d`` in definition order, or None."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    return None


def save_kernels(model: nn.Module, run_dir: Path, epoch: int) -> Path | None:
    """Write the first convolution's weights to ``run_dir/kernels/epoch_NNN.safetensors``."""
    found = first_conv(model)
    if found is None:
        return None
    name, conv = found
    weight = conv.weight.detach().float().cpu().contiguous()
    payload = safetensors_bytes({"weight": weight}, metadata={"layer": name, "epoch": str(epoch)})
    return atomic_write(run_dir / "kernels" / f"epoch_{epoch:03d}.safetensors", payload)


def load_kernels(run_dir: str | Path) -> dict[int, torch.Tensor]:
    """``{epoch: weight (Cout, Cin, K, K)}`` from ``run_dir/kernels``, sorted by epoch."""
    snapshots = {}
    for path in sorted(Path(run_dir, "kernels").glob("epoch_*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as f:
                snapshots[int(f.metadata()["epoch"])] = f.get_tensor("weight")
        except Exception as error:  # a corrupt file: say which, never half-load
            raise ValueError(f"{path}: not a kernel snapshot ({error})") from error
    return dict(sorted(snapshots.items()))


def grad_sample_every(batches_per_epoch: int) -> int:
    """Record the gradient norms every this many steps (about 8 times per epoch)."""
    return max(1, batches_per_epoch // GRAD_SAMPLES_PER_EPOCH)


def grad_norm_row(model: nn.Module, step: int, epoch: int, scale: float = 1.0) -> dict[str, Any]:
    """``{"step", "epoch", <parameter name>: ||grad||_2, ...}`` for parameters with ndim >= 2.

    ``scale`` undoes loss scaling (fp16 autocast): the norms are of the true gradients.
    """
    named = [(n, p.grad) for n, p in model.named_parameters() if p.ndim >= 2 and p.grad is not None]
    norms = torch.stack([g.detach().float().norm() for _, g in named]) / scale if named else []
    values = norms.tolist() if named else []
    row: dict[str, Any] = {"step": step, "epoch": epoch}
    row.update({n.removesuffix(".weight"): v for (n, _), v in zip(named, values, strict=True)})
    return row


def write_grad_norms(rows: Sequence[dict[str, Any]], run_dir: Path, plot: bool = False) -> None:
    """``grad_norms.csv`` (one row per sampled step); with ``plot``, ``grad_norms.png`` too."""
    if not rows:
        return
    columns = list(rows[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write(run_dir / "grad_norms.csv", buffer.getvalue())
    if plot:
        plot_grad_norms(rows, run_dir / "grad_norms.png")


def read_grad_norms(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of ``run_dir/grad_norms.csv`` as floats ([] when there is none)."""
    path = Path(run_dir, "grad_norms.csv")
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]


def plot_grad_norms(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """One line per layer (input side dark, output side light), log scale, against the step."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from antlers.viz.figures import save_figure

    layers = [k for k in rows[0] if k not in ("step", "epoch")]
    fig = Figure(figsize=(7.5, 4), layout="constrained")
    ax = fig.subplots()
    steps = [row["step"] for row in rows]
    colours = colormaps["viridis"]
    for i, layer in enumerate(layers):
        values = [row.get(layer, float("nan")) for row in rows]
        ax.plot(steps, values, color=colours(i / max(len(layers) - 1, 1)), label=layer, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("gradient L2 norm")
    ax.set_title("per-layer gradient norms (dark: first layer, light: last)")
    ax.grid(alpha=0.3)
    if len(layers) <= 16:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save_figure(fig, path)

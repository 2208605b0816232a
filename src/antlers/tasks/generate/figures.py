"""Diffusion pictures: sample grids, trajectory strips and GIFs, and the noising-schedule plot.

Images are float tensors in [0, 1], (N, C, H, W); grids use ``torchvision.utils.make_grid``;
PNGs and GIFs are written atomically with Pillow (``antlers.io.files``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from antlers.io.files import atomic_write
from antlers.tasks.generate.schedule import NoiseSchedule

__all__ = [
    "grid_image",
    "save_gif",
    "save_png",
    "schedule_figure",
    "trajectory_image",
    "write_report_figures",
    "write_samples",
]


def grid_image(images: Tensor, nrow: int = 8, upscale: int = 2) -> Any:
    """A PIL image of ``images`` (N, C, H, W) in [0, 1] as a grid, ``nrow`` per row, enlarged
    ``upscale`` times with nearest neighbours so 28-px samples stay visible."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(images.float().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    array = (grid * 255).round().byte().permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if images.shape[1] == 1 else array)
    return image.resize((image.width * upscale, image.height * upscale), Image.NEAREST)


def save_png(image: Any, path: str | Path) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic_write(path, buffer.getvalue())


def trajectory_image(trajectory: Tensor, rows: int = 8) -> Any:
    """Strip: one row per sample (up to ``rows``), columns from x_T (left) to x_0 (right).
    trajectory: (K, n, C, H, W) as in ``diffusion_sampling.Sample``."""
    k, n = trajectory.shape[:2]
    rows = min(rows, n)
    frames = trajectory[:, :rows].transpose(0, 1).reshape(rows * k, *trajectory.shape[2:])
    return grid_image(frames, nrow=k)


def save_gif(trajectory: Tensor, path: str | Path, nrow: int = 8, ms: int = 120) -> Path:
    """Animated GIF of the trajectory: each frame the grid of all samples at one timestep;
    the last frame (x_0) is held three times as long."""
    frames = [grid_image(step, nrow=nrow).convert("P") for step in trajectory]
    durations = [ms] * (len(frames) - 1) + [ms * 3]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0
    )
    return atomic_write(path, buffer.getvalue())


def schedule_figure(schedules: dict[str, NoiseSchedule]) -> Any:
    """Signal level sqrt(alpha-bar_t) and noise level sqrt(1 - alpha-bar_t) over t."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.subplots()
    for name, s in schedules.items():
        t = range(s.timesteps)
        ax.plot(t, s.signal.numpy(), label=f"{name}: signal sqrt(ᾱ_t)")
        ax.plot(t, s.noise.numpy(), "--", label=f"{name}: noise sqrt(1-ᾱ_t)")
    ax.set_xlabel("timestep t")
    ax.set_ylabel("factor of x_0 / of ε in x_t")
    ax.set_title("Noising schedule: x_t = sqrt(ᾱ_t) x_0 + sqrt(1-ᾱ_t) ε")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def write_report_figures(run_dir: Path, model: nn.Module, meta: dict[str, Any]) -> dict[str, Any]:
    """samples.png (a row per class, DDIM-50, guidance 3), schedule.png, trajectory.png."""
    from antlers.tasks.generate.sampling import sample
    from antlers.viz.figures import save_figure

    model.eval()
    unet = getattr(model, "module", model)
    classes, size = meta["classes"], meta["image_size"][0]
    per_class = 6 if len(classes) <= 10 else 3
    labels = torch.arange(len(classes)).repeat_interleave(per_class)
    shape = (len(labels), meta["in_channels"], size, size)
    device = next(model.parameters()).device
    result = sample(
        model, unet.schedule, shape, labels=labels, guidance=3.0, steps=50, device=device
    )
    save_png(grid_image(result.images, nrow=per_class), run_dir / "samples.png")
    save_png(trajectory_image(result.trajectory[:, ::per_class]), run_dir / "trajectory.png")
    names = {"linear", "cosine"} | {unet.schedule.name}
    schedules = {n: NoiseSchedule.make(n, unet.schedule.timesteps) for n in sorted(names)}
    save_figure(schedule_figure(schedules), run_dir / "schedule.png")
    return {"figures": ["samples.png", "trajectory.png", "schedule.png"]}


def write_samples(
    images: Tensor, trajectory: Tensor, labels: Tensor, classes: list[str], out: str | Path
) -> list[Path]:
    """``antlers sample``'s files in ``out``: grid.png, <class>/<i>.png for each sample,
    trajectory.png (x_T -> x_0, one row per sample, up to 8) and trajectory.gif."""
    from PIL import Image

    out = Path(out)
    nrow = 8 if len(images) >= 8 else len(images)
    written = [save_png(grid_image(images, nrow=nrow), out / "grid.png")]
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        array = (image * 255).round().byte().permute(1, 2, 0).numpy()
        pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        written.append(save_png(pil, out / classes[int(label)] / f"{i:04d}.png"))
    written.append(save_png(trajectory_image(trajectory), out / "trajectory.png"))
    written.append(save_gif(trajectory, out / "trajectory.gif", nrow=nrow))
    return written

"""Diffusion pictures: sample grids, trajectory strips and GIFs, and the noising-schedule plot.

Images are float tensors in [0, 1], (N, C, H, W); grids use ``torchvision.utils.make_grid``;
PNGs are written by :func:`antlers.viz.images.save_png`, GIFs atomically with Pillow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from antlers.io.files import atomic_write_with
from antlers.tasks.generate.schedule import NoiseSchedule
from antlers.viz.figures import new_figure
from antlers.viz.images import to_pil

__all__ = [
    "grid_image",
    "save_gif",
    "schedule_figure",
    "trajectory_image",
]


def grid_image(images: Tensor, nrow: int = 8, upscale: int = 2) -> Any:
    """A PIL image of ``images`` (N, C, H, W) in [0, 1] as a grid, ``nrow`` per row, enlarged
    ``upscale`` times with nearest neighbours so 28-px samples stay visible."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(images.float().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    image = to_pil(grid[:1] if images.shape[1] == 1 else grid)  # make_grid gives 3 channels
    return image.resize((image.width * upscale, image.height * upscale), Image.NEAREST)


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
    return atomic_write_with(
        path,
        lambda f: frames[0].save(
            f, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0
        ),
    )


def schedule_figure(schedules: dict[str, NoiseSchedule]) -> Any:
    """Signal level sqrt(alpha-bar_t) and noise level sqrt(1 - alpha-bar_t) over t."""
    fig = new_figure(6, 3.5)
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

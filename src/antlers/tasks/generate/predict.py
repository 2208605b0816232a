"""``antlers sample``'s files: what a diffusion run makes, written into a folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from antlers.tasks.generate.figures import grid_image, save_gif, trajectory_image
from antlers.viz.images import save_png

__all__ = ["prompt_folder", "write_prompt_samples", "write_samples"]


def write_samples(
    images: Tensor, trajectory: Tensor, labels: Tensor, classes: Sequence[str], out: str | Path
) -> list[Path]:
    """``antlers sample``'s files in ``out``: grid.png, <class>/<i>.png for each sample,
    trajectory.png (x_T -> x_0, one row per sample, up to 8) and trajectory.gif."""
    return _write(images, trajectory, [classes[int(label)] for label in labels], out)


def prompt_folder(prompt: str) -> str:
    """A folder name for a prompt: its words joined by "_" ("unconditional" for "")."""
    return "_".join(prompt.lower().split()) or "unconditional"


def write_prompt_samples(
    images: Tensor, trajectory: Tensor, prompt: str, out: str | Path
) -> list[Path]:
    """As ``write_samples`` for a caption run: the samples go to <prompt_folder(prompt)>/<i>.png."""
    return _write(images, trajectory, [prompt_folder(prompt)] * len(images), out)


def _write(
    images: Tensor, trajectory: Tensor, folders: Sequence[str], out: str | Path
) -> list[Path]:
    out = Path(out)
    nrow = 8 if len(images) >= 8 else len(images)
    written = [save_png(grid_image(images, nrow=nrow), out / "grid.png")]
    for i, (image, folder) in enumerate(zip(images, folders, strict=True)):
        written.append(save_png(image, out / folder / f"{i:04d}.png"))
    written.append(save_png(trajectory_image(trajectory), out / "trajectory.png"))
    written.append(save_gif(trajectory, out / "trajectory.gif", nrow=nrow))
    return written

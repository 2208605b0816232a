"""The end-of-training report of a diffusion run: class-conditional samples (a row per class; a
caption run: a row per prompt), a trajectory strip x_T -> x_0, the noising schedules, and
report.html linking them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from antlers.tasks.generate.figures import grid_image, schedule_figure, trajectory_image
from antlers.tasks.generate.schedule import NoiseSchedule
from antlers.viz.figures import save_figure
from antlers.viz.html import write_report_html
from antlers.viz.images import save_png

__all__ = ["write_report"]

REPORT_FIGURES = ("curves", "samples", "trajectory", "schedule")
GUIDANCE, STEPS = 3.0, 50
# a caption run's report rows: one prompt of each type, then two with held-out colour-shape pairs
REPORT_PROMPTS = (
    "a circle",
    "a triangle and a square",
    "two red squares",
    "a green circle",
    "a red circle left of a blue square",
    "a yellow square and a green triangle",
    "a blue triangle",
    "a yellow circle above a red square",
)
PROMPT_GUIDANCE = 4.0


@torch.no_grad()
def write_report(task: Any, run_dir: Path, model: nn.Module, data: Any) -> dict[str, Any]:
    """samples.png (a row per class, DDIM-50, guidance 3), trajectory.png, schedule.png and
    report.html; returns the figures' names."""
    config = data.model_config
    if config.vocabulary:
        return _write_prompt_report(task, run_dir, model, config)
    per_class = 6 if len(config.classes) <= 10 else 3
    labels = torch.arange(len(config.classes)).repeat_interleave(per_class)  # a row per class
    result = task.sample(model, config, labels, guidance=GUIDANCE, steps=STEPS)
    save_png(grid_image(result.images, nrow=per_class), run_dir / "samples.png")
    save_png(trajectory_image(result.trajectory[:, ::per_class]), run_dir / "trajectory.png")
    names = {"linear", "cosine"} | {config.noise_schedule}
    schedules = {n: NoiseSchedule.make(n, config.timesteps) for n in sorted(names)}
    save_figure(schedule_figure(schedules), run_dir / "schedule.png")
    summary = (
        f"samples of the saved model: DDIM, {STEPS} steps, guidance {GUIDANCE:g}, "
        f"{config.noise_schedule} schedule (T = {config.timesteps})"
    )
    rows = {c: f"row {i + 1} of samples.png" for i, c in enumerate(config.classes)}
    write_report_html(run_dir, summary, "samples", rows, REPORT_FIGURES)
    return {"figures": [f"{name}.png" for name in REPORT_FIGURES[1:]]}


def _write_prompt_report(task: Any, run_dir: Path, model: nn.Module, config: Any) -> dict[str, Any]:
    """A caption run's samples.png (a row per prompt of ``REPORT_PROMPTS``), trajectory.png,
    schedule.png and report.html."""
    from antlers.tasks.generate.captioned import prompt_tokens

    per_prompt = 6
    prompts = [p for p in REPORT_PROMPTS for _ in range(per_prompt)]
    tokens = prompt_tokens(config, len(prompts), prompts)
    result = task.sample(model, config, tokens, guidance=PROMPT_GUIDANCE, steps=STEPS)
    save_png(grid_image(result.images, nrow=per_prompt), run_dir / "samples.png")
    save_png(trajectory_image(result.trajectory[:, ::per_prompt]), run_dir / "trajectory.png")
    schedules = {n: NoiseSchedule.make(n, config.timesteps) for n in ("linear", "cosine")}
    save_figure(schedule_figure(schedules), run_dir / "schedule.png")
    summary = (
        f"samples of the saved model for the prompts below (the last two name colour-shape "
        f"pairs never seen in training): DDIM, {STEPS} steps, guidance {PROMPT_GUIDANCE:g}"
    )
    rows = {p: f"row {i + 1} of samples.png" for i, p in enumerate(REPORT_PROMPTS)}
    write_report_html(run_dir, summary, "samples", rows, REPORT_FIGURES)
    return {"figures": [f"{name}.png" for name in REPORT_FIGURES[1:]]}

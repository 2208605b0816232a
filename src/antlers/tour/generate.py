"""Tour chapter 8: diffusion — add noise to images, learn to undo it, generate from pure noise.

(1) One image noised step by step by the closed-form forward process, under the linear (DDPM)
and cosine (Improved DDPM) schedules, and the schedules' signal and noise levels; (2) a small
class-conditioned U-Net trained for the chapter's short budget on 28x28 Fashion-MNIST when its
files are here (never downloaded), else on scikit-learn's 8x8 digits, and on the digits in the
quick tour (clearly a short run: a real one is ``antlers train generate --data fashion-mnist
--time 1200``); (3) its denoising trajectory from pure noise and a class-conditional grid with
guidance.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from antlers.io.files import atomic_write
from antlers.tour.page import Chapter, TourContext, fashion_mnist_here, figure, paragraph

__all__ = ["generate_chapter"]

NOISING_STEPS = (0, 50, 100, 200, 300, 500, 700, 999)


# samples.png of the recorded caption run (too long for the tour; docs/benchmarks.md, captions):
# antlers train generate --data captions --time 1200, on two CPU cores
CAPTION_SAMPLES = Path(__file__).parent / "assets" / "caption_samples.png"


def _caption_section(ctx: TourContext) -> str:
    """The answer to "how to input a caption?" in code, and the recorded caption run's
    samples, copied beside the page, with its prompts."""
    from antlers.tasks.generate.report import PROMPT_GUIDANCE, REPORT_PROMPTS, STEPS

    atomic_write(ctx.out / "ch8_captions.png", CAPTION_SAMPLES.read_bytes())
    rows = "; ".join(f"{i + 1}. {prompt}" for i, prompt in enumerate(REPORT_PROMPTS))
    samples = figure(
        "ch8_captions.png",
        "From a recorded run, 20 minutes on two CPU cores (antlers train generate --data "
        f"captions --time 1200): one row per prompt, DDIM-{STEPS}, "
        f"guidance {PROMPT_GUIDANCE:g}. "
        f"Rows: {rows} (the last two name colour-shape pairs never seen in training).",
    )
    answer = paragraph(
        "HOW TO INPUT A CAPTION, in code: antlers train generate --data captions --time "
        "1200 trains on a built-in world of captioned images ('a red circle left of a "
        "blue square'). A word-level tokenizer and a small transformer turn the caption "
        "into one vector per word; the U-Net's low-resolution stages attend to them "
        "(cross-attention: queries from the image and where each pixel is, keys and "
        "values from the words, as in Stable Diffusion), and dropping whole captions in "
        "training gives the unconditional model that guidance needs. Then antlers "
        "sample RUN --prompt 'two red squares' draws what a sentence says, and antlers "
        "eval RUN scores the samples with a judge that finds the objects and checks "
        "count, colour and position (GenEval's rules). It takes longer than this tour (a "
        "recorded run below): docs/benchmarks.md (captions) records what 20 minutes on "
        "two cores reach, and where it still fails (colour-shape pairs never seen in "
        "training)."
    )
    return "\n".join([answer, samples])


def _one_image() -> tuple[Any, str]:
    """A Fashion-MNIST test image (1, C, H, W) in [0, 1] if its files are here (never
    downloaded), else a shape."""
    from antlers.data import DatasetNotFoundError, load_dataset, load_shapes

    try:
        data = load_dataset("fashion-mnist", "test", download=False)
    except DatasetNotFoundError:
        data = load_shapes("test", n=1)
    return data.images[:1].float() / 255, data.name


def _noising_figure(ctx: TourContext) -> str:
    """ch8_noising.png: rows linear and cosine, columns x_t at NOISING_STEPS; ch8_schedule.png."""
    import torch  # lazily: `antlers --help` lists the chapters without importing torch

    from antlers.tasks.generate.figures import grid_image, schedule_figure
    from antlers.tasks.generate.schedule import NoiseSchedule, q_sample
    from antlers.viz.figures import save_figure
    from antlers.viz.images import save_png

    image, name = _one_image()
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(0))
    schedules = {n: NoiseSchedule.make(n, 1000) for n in ("linear", "cosine")}
    rows = []
    for schedule in schedules.values():
        for t in NOISING_STEPS:
            x_t = q_sample(schedule, image * 2 - 1, torch.tensor([t]), noise)
            rows.append(((x_t + 1) / 2).clamp(0, 1))
    save_png(
        grid_image(torch.cat(rows), nrow=len(NOISING_STEPS), upscale=3), ctx.out / "ch8_noising.png"
    )
    save_figure(schedule_figure(schedules), ctx.out / "ch8_schedule.png")
    return name


# data -> (how the page names it, the U-Net, its options): at 28 x 28, unet_small (2 x 2 patches,
# batch 64) makes several times the steps of unet_tiny (full resolution) in the same 45 s
# (docs/benchmarks.md, quickstart)
CHAPTER_DATA = {
    "fashion-mnist": ("Fashion-MNIST 28x28", "unet_small", {"batch_size": 64}),
    "digits": ("digits 8x8", "unet_tiny", {}),
}


def generate_chapter(ctx: TourContext) -> Chapter:
    from antlers.run import train

    name = _noising_figure(ctx)
    seconds = 5 if ctx.quick else 45
    data = "fashion-mnist" if not ctx.quick and fashion_mnist_here() else "digits"
    title, model, options = CHAPTER_DATA[data]
    ctx.log(f"      training a class-conditioned U-Net on {title} for {seconds} s")
    folder = ctx.out / "generate" / "ch8_run"
    shutil.rmtree(folder, ignore_errors=True)
    run = train(
        "generate", data=data, model=model, time=seconds, out=str(ctx.out), name="ch8_run",
        **options,
    )  # fmt: skip
    last = run.metrics[-1]
    steps = ", ".join(str(t) for t in NOISING_STEPS)
    body = "\n".join(
        [
            paragraph(
                "A diffusion model (Ho, Jain, Abbeel 2020) adds noise to good images and trains "
                "a U-Net to undo it. The forward process has a closed form: x_t = sqrt(ᾱ_t) x_0 "
                "+ sqrt(1 − ᾱ_t) ε with ε ~ N(0, I), so any step is one line of code."
            ),
            figure(
                "ch8_noising.png",
                f"A {name} image at t = {steps}: linear schedule (top), cosine (bottom).",
            ),
            figure("ch8_schedule.png", "Signal and noise level over t for both schedules."),
            paragraph(
                "The network sees x_t, the timestep t (a sinusoidal embedding) and the class "
                "(a learned embedding; 10% of the time a 'null' class), and predicts ε with a "
                "per-pixel mean squared error. At test time it starts from pure noise and is "
                "applied again and again (here DDIM, 50 steps). Classifier-free guidance, "
                "ε_null + 3 (ε_class − ε_null), answers the lecture's question 'how to input a "
                "caption?' with a class label."
            ),
            paragraph(
                f"A SHORT RUN: {seconds} s of CPU training ({int(last['step'])} steps) on "
                f"{title}, validation noise loss {last['val_loss']:.3f}. Sharp samples need "
                f"minutes: antlers train generate --data fashion-mnist --time 1200, then "
                f"antlers sample RUN --class Sneaker."
            ),
            figure("generate/ch8_run/trajectory.png", "From pure noise x_T (left) to x_0."),
            figure(
                "generate/ch8_run/samples.png",
                f"One row per class ({', '.join(run.model_config.classes)}), guidance 3.",
            ),
            _caption_section(ctx),
        ]
    )
    steps_done, loss = int(last["step"]), last["val_loss"]
    summary = f"{title}, {steps_done} steps in {seconds} s, val noise loss {loss:.3f}"
    return Chapter(8, "Diffusion", body, summary)
